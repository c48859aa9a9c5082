"""Every route policy through real gunicorn and a real upstream (issue 18's list)."""

from __future__ import annotations

import http.client
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from tests.policies.conftest import (
    ALLOWED_ORIGIN,
    api_key,
    import_config,
    policy_config,
    remove_config,
    running_gateway,
)
from tests.policies.policy_upstream import PolicyUpstream
from tests.support.gateway_server import GatewayServer
from tests.support.identity import role

pytestmark = [pytest.mark.e2e, pytest.mark.django_db]

TRUSTED_PROXY = "127.0.0.1"
UNTRUSTED_SOURCE = "127.0.0.2"  # loopback too, but not in GATEWAY_TRUSTED_PROXIES


@pytest.fixture(scope="module")
def setup(django_db_setup, django_db_blocker, policy_servers) -> Iterator[dict[str, Any]]:
    """The policy config imported, two API keys, and one gunicorn gateway trusting 127.0.0.1."""
    with django_db_blocker.unblock():
        import_config(policy_config(policy_servers))
        admin = role("pol-admin", "manage:gateway")
        keys = {
            "alice": api_key("pol-alice"),
            "bob": api_key("pol-bob"),
            "admin": api_key("pol-admin", admin),
        }
        try:
            with running_gateway(GATEWAY_TRUSTED_PROXIES=f"{TRUSTED_PROXY}/32") as server:
                yield {"gateway": server, "keys": keys}
        finally:
            remove_config()
            from accounts.models import ApiClient

            ApiClient.objects.filter(name__startswith="pol-").delete()
            admin.delete()


@pytest.fixture
def gateway(setup: dict[str, Any]) -> GatewayServer:
    return setup["gateway"]


@pytest.fixture
def keys(setup: dict[str, Any]) -> dict[str, str]:
    return setup["keys"]


def call(
    gateway: GatewayServer,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    source: str | None = None,
) -> tuple[int, http.client.HTTPMessage, bytes]:
    connection = http.client.HTTPConnection(
        "127.0.0.1", gateway.port, timeout=15, source_address=(source, 0) if source else None
    )
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


# --- CORS ----------------------------------------------------------------------------------


def test_preflight_from_allowed_origin_is_answered_without_upstream_or_credentials(
    gateway, servers: PolicyUpstream
):
    status, headers, _ = call(
        gateway,
        "OPTIONS",
        "/cors/items",
        {
            "Origin": ALLOWED_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert status == 204
    assert headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    assert headers["Access-Control-Allow-Methods"] == "GET, POST"
    assert headers["Access-Control-Allow-Headers"] == "Authorization, Content-Type, X-API-Key"
    assert headers["Access-Control-Max-Age"] == "600"
    assert headers["Access-Control-Allow-Credentials"] == "true"
    assert servers.count() == 0


def test_preflight_from_refused_origin_gets_no_cors_headers(gateway, servers: PolicyUpstream):
    status, headers, _ = call(
        gateway,
        "OPTIONS",
        "/cors/items",
        {"Origin": "http://evil.test", "Access-Control-Request-Method": "POST"},
    )
    assert status == 204
    assert "Access-Control-Allow-Origin" not in headers
    assert servers.count() == 0


def test_actual_request_from_allowed_origin_carries_cors_headers(gateway, keys, servers):
    status, headers, _ = call(
        gateway, "GET", "/cors/items", {"Origin": ALLOWED_ORIGIN, "X-API-Key": keys["alice"]}
    )
    assert status == 200
    assert headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    assert headers["Access-Control-Expose-Headers"] == "X-Request-ID"
    assert "Origin" in headers["Vary"]


def test_refused_request_still_tells_the_browser_its_origin_is_allowed(gateway, servers):
    status, headers, _ = call(gateway, "GET", "/cors/items", {"Origin": ALLOWED_ORIGIN})
    assert status == 401  # no credentials; the browser may read the problem
    assert headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    assert servers.count() == 0


@pytest.mark.parametrize(
    "origin", ["http://" + "a" * 6000 + ".test", "http://app.test\r\nX-Injected: 1"]
)
def test_hostile_origin_is_neither_echoed_nor_an_error(gateway, servers, origin):
    # CRLF in a header value is refused by the client library: send it raw.
    head = (
        "OPTIONS /open-cors/x HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        f"Origin: {origin}\r\nAccess-Control-Request-Method: GET\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=15) as sock:
        sock.sendall(head)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    assert not status_line.startswith(b"HTTP/1.1 5"), status_line
    assert b"x-injected" not in rest.lower()
    assert b"access-control-allow-origin: http://" not in rest.lower()
    assert servers.count() == 0


# --- header rules and hidden credentials ---------------------------------------------------


def test_request_and_response_headers_are_set_and_removed(gateway, servers):
    status, headers, body = call(gateway, "GET", "/hdr/x", {"X-Debug": "1", "X-Api-Version": "1"})
    assert status == 200
    seen = servers.last().headers
    assert seen["x-api-version"] == "2"
    assert "x-debug" not in seen
    assert headers["Cache-Control"] == "no-store"
    assert "X-Powered-By" not in headers
    assert json.loads(body)["headers"]["x-api-version"] == "2"


def test_response_rules_leave_the_gateways_own_errors_alone(gateway, servers):
    # An error of the gateway itself: 405 for a method the gateway never forwards.
    status, headers, _ = call(gateway, "TRACE", "/hdr/x")
    assert status == 405
    assert headers.get("Cache-Control") != "no-store"
    assert servers.count() == 0


def test_upstream_never_sees_credentials_with_hide_credentials(gateway, keys, servers):
    assert call(gateway, "GET", "/hidden/x", {"X-API-Key": keys["alice"]})[0] == 200
    hidden = servers.last().headers
    assert "x-api-key" not in hidden and "authorization" not in hidden
    assert hidden["x-consumer-username"]  # the upstream still learns who called
    assert call(gateway, "GET", "/shown/x", {"X-API-Key": keys["alice"]})[0] == 200
    assert servers.last().headers["x-api-key"] == keys["alice"]


# --- IP rules --------------------------------------------------------------------------------


def test_ip_allow_with_and_without_a_trusted_proxy(gateway, servers):
    # Directly from 127.0.0.1: not in 10.1.0.0/16.
    status, _headers, body = call(gateway, "GET", "/ipallow/x")
    assert status == 403
    assert json.loads(body)["code"] == "ip_forbidden"
    # Through the trusted proxy (127.0.0.1) for a client in the allowed network.
    assert call(gateway, "GET", "/ipallow/x", {"X-Forwarded-For": "10.1.2.3"})[0] == 200
    # The same claim from an untrusted peer is ignored: its own address is judged.
    status, _, _ = call(
        gateway, "GET", "/ipallow/x", {"X-Forwarded-For": "10.1.2.3"}, source=UNTRUSTED_SOURCE
    )
    assert status == 403
    assert servers.count() == 1


def test_ip_deny_with_and_without_a_trusted_proxy(gateway, servers):
    assert call(gateway, "GET", "/ipdeny/x")[0] == 200
    status, _, body = call(gateway, "GET", "/ipdeny/x", {"X-Forwarded-For": "10.9.0.7"})
    assert status == 403 and json.loads(body)["code"] == "ip_forbidden"
    status, _, _ = call(
        gateway, "GET", "/ipdeny/x", {"X-Forwarded-For": "10.9.0.7"}, source=UNTRUSTED_SOURCE
    )
    assert status == 200


# --- validate --------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["/inv", "/inv31"])
def test_validation_of_path_query_header_and_body(gateway, servers, prefix):
    ok = call(gateway, "GET", f"{prefix}/items/42", {"X-Tenant": "acme"})
    assert ok[0] == 200, ok[2]
    forwarded = servers.count("/items/42")
    cases = [
        ("GET", f"{prefix}/items/abc", {"X-Tenant": "acme"}, None, "path.item_id"),
        ("GET", f"{prefix}/items?limit=1000", {}, None, "query.limit"),
        ("GET", f"{prefix}/items/42", {}, None, "header.X-Tenant"),
        (
            "POST",
            f"{prefix}/items",
            {"Content-Type": "application/json"},
            json.dumps({"name": "bolt", "quantity": 0}).encode(),
            "body.quantity",
        ),
    ]
    for method, path, headers, body, field in cases:
        status, response_headers, answer = call(gateway, method, path, headers, body)
        assert status == 400, (path, answer)
        assert response_headers["Content-Type"] == "application/problem+json"
        problem = json.loads(answer)
        assert field in [error["field"] for error in problem["errors"]], problem
    body = json.dumps({"name": "bolt", "quantity": 2}).encode()
    created = call(gateway, "POST", f"{prefix}/items", {"Content-Type": "application/json"}, body)
    assert created[0] == 200
    assert servers.last().body == body  # the checked body is forwarded unchanged
    assert servers.count("/items/42") == forwarded  # none of the refused reached the upstream


def test_request_matching_no_operation_is_404_operation_not_found(gateway, servers):
    status, _, body = call(gateway, "DELETE", "/inv/items/1")
    assert status == 404
    assert json.loads(body)["code"] == "operation_not_found"
    assert servers.count("/items") == 0


# --- cache -----------------------------------------------------------------------------------


def test_cache_hit_is_served_without_the_upstream(gateway, servers):
    first = call(gateway, "GET", "/cached/hit?x=1")
    second = call(gateway, "GET", "/cached/hit?x=1")
    assert first[1]["X-Cache"] == "MISS"
    assert second[1]["X-Cache"] == "HIT"
    assert second[1]["Age"] is not None
    assert second[2] == first[2]
    assert servers.count("/cached/hit") == 1


def test_cache_is_not_shared_between_consumers(gateway, keys, servers):
    alice = call(gateway, "GET", "/cached/mine", {"X-API-Key": keys["alice"]})
    bob = call(gateway, "GET", "/cached/mine", {"X-API-Key": keys["bob"]})
    assert bob[1]["X-Cache"] == "MISS"
    assert (
        json.loads(bob[2])["headers"]["x-consumer-username"]
        != json.loads(alice[2])["headers"]["x-consumer-username"]
    )
    assert call(gateway, "GET", "/cached/mine", {"X-API-Key": keys["alice"]})[1]["X-Cache"] == "HIT"
    assert servers.count("/cached/mine") == 2


@pytest.mark.parametrize("query", ["cc=no-store", "cookie=1", "cc=private", "status=404"])
def test_not_kept_for_no_store_set_cookie_private_or_non_200(gateway, servers, query):
    call(gateway, "GET", f"/cached/never?{query}")
    assert call(gateway, "GET", f"/cached/never?{query}")[1]["X-Cache"] == "MISS"
    assert servers.count("/cached/never") == 2


def test_unkeyed_header_cannot_poison_the_cache(gateway, servers):
    # The upstream reflects X-Forwarded-Host; a client's copy is dropped, so it cannot plant one.
    call(gateway, "GET", "/cached/poison", {"X-Forwarded-Host": "evil.test"})
    status, _, body = call(gateway, "GET", "/cached/poison")
    assert status == 200
    assert "evil.test" not in body.decode()
    # A header the answer Varys on is part of the key: another value is another entry.
    call(gateway, "GET", "/cached/vary?vary=X-Tenant", {"X-Tenant": "evil"})
    status, headers, body = call(gateway, "GET", "/cached/vary?vary=X-Tenant", {"X-Tenant": "good"})
    assert headers["X-Cache"] == "MISS"
    assert json.loads(body)["headers"]["x-tenant"] == "good"


def test_cache_is_shared_by_workers_and_nodes(gateway, setup, servers, settings):
    if not settings.REDIS_URL:
        pytest.skip("sharing between processes needs Redis")
    # Behind one load balancer both nodes see the same Host.
    host = {"Host": "localhost"}
    call(gateway, "GET", "/cached/shared", host)
    with running_gateway() as second:
        _status, headers, _ = call(second, "GET", "/cached/shared", host)
    assert headers["X-Cache"] == "HIT"
    assert servers.count("/cached/shared") == 1


def test_cache_is_purged_on_config_change(gateway, keys, servers):
    if connection.vendor == "sqlite":
        # The test's transaction holds SQLite's write lock (BEGIN IMMEDIATE) until it ends,
        # so the gateway process could not save the change.
        pytest.skip("a change saved by the gateway process while the test runs needs PostgreSQL")
    call(gateway, "GET", "/cached/purge")
    assert call(gateway, "GET", "/cached/purge")[1]["X-Cache"] == "HIT"
    admin = {"X-API-Key": keys["admin"], "Content-Type": "application/json"}
    status, _, body = call(gateway, "GET", "/api/gateway/routes/?path=/cached/**", admin)
    listed = json.loads(body)
    routes = listed["results"] if isinstance(listed, dict) else listed
    route_id = next(route["id"] for route in routes if route["path"] == "/cached/**")
    change = json.dumps({"description": "changed"}).encode()
    status, _, body = call(gateway, "PATCH", f"/api/gateway/routes/{route_id}/", admin, change)
    assert status == 200, body
    deadline = time.monotonic() + 10
    verdict = "HIT"
    while verdict == "HIT" and time.monotonic() < deadline:
        time.sleep(0.2)
        verdict = call(gateway, "GET", "/cached/purge")[1]["X-Cache"]
    assert verdict == "MISS"


# --- WebSocket -------------------------------------------------------------------------------


def ws_url(gateway: GatewayServer) -> str:
    return f"ws://127.0.0.1:{gateway.port}/ws/echo"


def test_websocket_echo_through_the_gateway_closes_cleanly_from_the_client(gateway, keys):
    with connect(ws_url(gateway), additional_headers={"X-API-Key": keys["alice"]}) as ws:
        for message in ("hello", "x" * 100_000):
            ws.send(message)
            assert ws.recv(timeout=10) == message
        ws.close()
        assert ws.close_code == 1000


def test_websocket_closed_cleanly_when_the_upstream_closes(gateway, keys):
    with connect(ws_url(gateway), additional_headers={"X-API-Key": keys["alice"]}) as ws:
        ws.send("close")
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000


def test_websocket_refused_without_credentials(gateway):
    with pytest.raises(InvalidStatus) as refused:
        connect(ws_url(gateway))
    assert refused.value.response.status_code == 401


def test_upgrade_with_a_body_is_refused(gateway, keys):
    head = (
        "GET /ws/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "X-API-Key: {key}\r\nContent-Length: 5\r\n\r\nhello"
    )
    status, _, _body = _raw_status(gateway, head.replace("{key}", keys["alice"]))
    assert status == 400  # never an upgrade


def _raw_status(gateway: GatewayServer, head: str) -> tuple[int, bytes, bytes]:
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=15) as sock:
        sock.sendall(head.encode())
        answer = sock.recv(65536)
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), status_line, rest


def test_websocket_connections_are_counted_in_metrics(gateway, keys):
    with connect(ws_url(gateway), additional_headers={"X-API-Key": keys["alice"]}) as ws:
        ws.send("ping")
        assert ws.recv(timeout=10) == "ping"
        _, _, metrics = call(gateway, "GET", "/metrics")
    line = next(
        line for line in metrics.decode().splitlines() if line.startswith("gateway_websockets_open")
    )
    assert float(line.split()[-1]) >= 1


def _metric(text: str, name: str, *labels: str) -> float:
    """The sum of a metric's samples whose line holds every one of `labels`."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and all(label in line for label in labels):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_policy_metrics_count_rejections_hits_and_misses(gateway, servers):
    def scrape() -> str:
        return call(gateway, "GET", "/metrics")[2].decode()

    before = scrape()
    call(gateway, "GET", "/ipallow/metrics")  # refused: 127.0.0.1 is not in 10.1.0.0/16
    call(gateway, "GET", "/inv/items/abc", {"X-Tenant": "acme"})  # refused: item_id not an int
    call(gateway, "GET", "/cached/metrics")  # miss
    call(gateway, "GET", "/cached/metrics")  # hit
    after = scrape()
    for name, labels in [
        ("gateway_ip_rejections_total", ('route="ANY /ipallow/**"',)),
        ("gateway_validation_rejections_total", ('route="ANY /inv/**"',)),
        ("gateway_cache_lookups_total", ('route="ANY /cached/**"', 'result="miss"')),
        ("gateway_cache_lookups_total", ('route="ANY /cached/**"', 'result="hit"')),
    ]:
        assert _metric(after, name, *labels) == _metric(before, name, *labels) + 1, name


# --- attacks on the policies -----------------------------------------------------------------


@pytest.mark.parametrize(
    "credential",
    [{"Authorization": "Bearer alice-secret-token"}, {"X-API-Key": "alice-secret-key"}],
    ids=["authorization", "api-key"],
)
def test_answer_to_a_request_with_credentials_is_not_shared_on_an_open_route(
    gateway, servers, credential
):
    # authentication: none forwards the caller's credentials unread; the upstream may answer
    # for that caller, and the next anonymous caller must not get that answer (RFC 9111 3.5).
    path = f"/opencache/me-{next(iter(credential))}"
    status, headers, _ = call(gateway, "GET", path, credential)
    assert status == 200
    status, headers, body = call(gateway, "GET", path)
    assert status == 200
    assert headers["X-Cache"] == "MISS"
    assert "secret" not in body.decode()
    assert servers.count(path) == 2


def test_basic_authorization_on_an_optional_route_is_not_shared(gateway, servers):
    # The gateway reads only Bearer tokens: a Basic header leaves the caller anonymous, but it
    # still reaches the upstream, which may answer for that user.
    call(gateway, "GET", "/cached/basic", {"Authorization": "Basic YWxpY2U6c2VjcmV0"})
    status, headers, body = call(gateway, "GET", "/cached/basic")
    assert status == 200 and headers["X-Cache"] == "MISS"
    assert "YWxpY2U6c2VjcmV0" not in body.decode()


def test_cached_answer_carries_cors_headers_for_the_origin_asking(gateway, servers):
    # First without an Origin (kept without CORS headers), then from the allowed origin: the
    # stored answer must not cost the browser its Access-Control-Allow-Origin.
    assert call(gateway, "GET", "/corscache/a")[1]["X-Cache"] == "MISS"
    status, headers, _ = call(gateway, "GET", "/corscache/a", {"Origin": ALLOWED_ORIGIN})
    assert status == 200
    assert headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    assert "origin" in headers["Vary"].lower()
    # And the other way: kept for the allowed origin, then asked by a refused one.
    call(gateway, "GET", "/corscache/b", {"Origin": ALLOWED_ORIGIN})
    _, headers, _ = call(gateway, "GET", "/corscache/b", {"Origin": "http://evil.test"})
    assert headers["Access-Control-Allow-Origin"] is None
    _, headers, _ = call(gateway, "GET", "/corscache/b")
    assert headers["Access-Control-Allow-Origin"] is None


def test_ip_deny_written_as_ipv4_mapped_ipv6_refuses_the_ipv4_client(gateway, servers):
    status, _, body = call(gateway, "GET", "/ipdeny-mapped/x", {"X-Forwarded-For": "10.9.0.7"})
    assert status == 403 and json.loads(body)["code"] == "ip_forbidden"
    assert call(gateway, "GET", "/ipdeny-mapped/x", {"X-Forwarded-For": "10.8.0.7"})[0] == 200


def test_deeply_nested_json_body_is_a_400_without_the_upstream(gateway, servers):
    body = b"[" * 50_000 + b"]" * 50_000
    status, headers, answer = call(
        gateway, "POST", "/inv/items", {"Content-Type": "application/json"}, body
    )
    assert status == 400, answer[:300]
    assert headers["Content-Type"] == "application/problem+json"
    assert json.loads(answer)["errors"][0]["type"] == "too_deep"
    assert servers.count("/items") == 0


def test_tokens_of_one_user_with_other_roles_do_not_share_an_answer(gateway, servers):
    # The upstream is told the caller's roles and permissions (X-Consumer-*) and may answer by
    # them: a token of the same user with fewer rights must not get the richer stored answer.
    from tests.support.identity import claims, sign

    admin = sign(claims(sub="77", name="carol", roles=["admin"], permissions=["read:all"]))
    plain = sign(claims(sub="77", name="carol", roles=["viewer"], permissions=[]))
    status, _, body = call(gateway, "GET", "/cached/by-role", {"Authorization": f"Bearer {admin}"})
    assert status == 200 and json.loads(body)["headers"]["x-consumer-roles"] == "admin"
    status, headers, body = call(
        gateway, "GET", "/cached/by-role", {"Authorization": f"Bearer {plain}"}
    )
    assert status == 200
    assert headers["X-Cache"] == "MISS"
    assert json.loads(body)["headers"]["x-consumer-roles"] == "viewer"
    # The same rights again is the same consumer: a HIT.
    again = sign(claims(sub="77", name="carol", roles=["admin"], permissions=["read:all"]))
    _, headers, _ = call(gateway, "GET", "/cached/by-role", {"Authorization": f"Bearer {again}"})
    assert headers["X-Cache"] == "HIT"


@pytest.mark.parametrize("origin", [None, "http://evil.test"], ids=["no-origin", "refused"])
def test_answer_without_cors_headers_still_says_it_varies_by_origin(gateway, servers, origin):
    # A shared cache in front of the gateway must not hand this answer (no
    # Access-Control-Allow-Origin) to the allowed origin, nor the allowed origin's to others.
    headers = {"Origin": origin} if origin else {}
    status, answer_headers, _ = call(gateway, "GET", f"/corscache/vary-{bool(origin)}", headers)
    assert status == 200
    assert answer_headers["Access-Control-Allow-Origin"] is None
    assert "origin" in (answer_headers["Vary"] or "").lower()
