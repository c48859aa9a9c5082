"""The proxy against a real upstream server: forwarding fidelity, routing and every error."""

from __future__ import annotations

import hashlib
import json

import pytest
from django.http.response import HttpResponseBase

from routing.proxy import BufferedProxiedResponse, StreamedProxiedResponse
from tests.support.upstream import UpstreamServer

pytestmark = pytest.mark.django_db


def _json(response):
    return json.loads(
        b"".join(response.streaming_content) if response.streaming else response.content
    )


def _problem(response, status: int) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = json.loads(response.content)
    assert set(body) >= {"type", "title", "status", "detail", "code", "request_id"}
    assert body["status"] == status
    assert body["request_id"] == response["X-Request-ID"]
    return body


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_method_path_query_headers_and_body_reach_the_upstream(
    gateway, make_route, upstream, method
):
    make_route("/api/v1/rd/**", upstream.url)
    payload = b'{"title": "write tests"}' * 100
    response = gateway.generic(
        method,
        "/api/v1/rd/echo/tasks/7?sort=name&x=%C3%A9",
        payload,
        content_type="application/json",
        HTTP_X_CUSTOM="kept",
    )
    assert response.status_code == 200
    seen = upstream.received[-1]
    assert seen.method == method
    assert seen.path == "/api/v1/rd/echo/tasks/7"
    assert seen.query == "sort=name&x=%C3%A9"
    assert seen.headers["x-custom"] == "kept"
    assert seen.headers["content-type"] == "application/json"
    assert seen.body_length == len(payload)
    assert seen.body_sha256 == hashlib.sha256(payload).hexdigest()


def test_upstream_status_headers_and_body_come_back_unchanged(gateway, make_route, upstream):
    make_route("/svc/**", upstream.url)
    response = gateway.get("/svc/status/418")
    assert response.status_code == 418
    assert response["X-Upstream"] == "upstream-a"
    assert json.loads(response.content) == {"status": 418}


def test_no_content_answer_has_no_body(gateway, make_route, upstream):
    make_route("/svc/**", upstream.url)
    response = gateway.delete("/svc/status/204")
    assert response.status_code == 204
    assert response.content == b""
    assert "Content-Type" not in response  # the upstream sent none; the gateway adds none


def test_upstream_redirect_is_passed_back_not_followed(gateway, make_route, upstream):
    make_route("/svc/**", upstream.url)
    response = gateway.get("/svc/redirect")
    assert response.status_code == 302
    assert response["Location"] == "/echo/redirected"
    assert upstream.count("/echo/redirected") == 0


def test_hop_by_hop_request_headers_are_removed(gateway, make_route, upstream):
    make_route("/svc/**", upstream.url)
    gateway.get(
        "/svc/echo",
        HTTP_CONNECTION="X-Private, keep-alive",
        HTTP_X_PRIVATE="dropped",
        HTTP_KEEP_ALIVE="timeout=5",
        HTTP_TE="trailers",
        HTTP_UPGRADE="websocket",
        HTTP_PROXY_AUTHORIZATION="Basic abc",
        HTTP_PROXY_CONNECTION="keep-alive",
        HTTP_TRAILER="X-Checksum",
    )
    headers = upstream.received[-1].headers
    for name in (
        "x-private",
        "keep-alive",
        "te",
        "upgrade",
        "proxy-authorization",
        "proxy-connection",
        "trailer",
    ):
        assert name not in headers, name


def test_hop_by_hop_response_headers_are_removed(gateway, make_route, upstream):
    make_route("/svc/**", upstream.url)
    response = gateway.get("/svc/echo?hop=1")
    assert response.status_code == 200
    assert not response.has_header("X-Hop")
    assert not response.has_header("Keep-Alive")
    assert not response.has_header("Connection")


def test_forwarded_headers_describe_the_client(gateway, make_route, upstream, settings):
    settings.ALLOWED_HOSTS = ["gw.example.test"]
    make_route("/svc/**", upstream.url)
    gateway.get(
        "/svc/echo",
        REMOTE_ADDR="203.0.113.7",
        HTTP_HOST="gw.example.test",
        HTTP_X_FORWARDED_FOR="10.9.9.9",
        HTTP_X_FORWARDED_HOST="evil.test",
        HTTP_X_FORWARDED_PROTO="https",
    )
    headers = upstream.received[-1].headers
    assert headers["x-forwarded-for"] == "203.0.113.7"  # an untrusted client's copy is dropped
    assert headers["x-forwarded-host"] == "gw.example.test"
    assert headers["x-forwarded-proto"] == "http"
    assert headers["host"] == f"127.0.0.1:{upstream.port}"


def test_forwarded_for_chain_is_kept_from_a_trusted_proxy(gateway, make_route, upstream, settings):
    import ipaddress

    settings.GATEWAY_TRUSTED_PROXIES = (ipaddress.ip_network("10.0.0.0/8"),)
    make_route("/svc/**", upstream.url)
    gateway.get("/svc/echo", REMOTE_ADDR="10.1.1.1", HTTP_X_FORWARDED_FOR="198.51.100.4")
    assert upstream.received[-1].headers["x-forwarded-for"] == "198.51.100.4, 10.1.1.1"


def test_well_formed_request_id_is_kept_and_echoed(gateway, make_route, upstream):
    make_route("/svc/**", upstream.url)
    response = gateway.get("/svc/echo", HTTP_X_REQUEST_ID="client-id-12345")
    assert response["X-Request-ID"] == "client-id-12345"
    assert upstream.received[-1].headers["x-request-id"] == "client-id-12345"


def test_malformed_request_id_is_replaced(gateway, make_route, upstream):
    make_route("/svc/**", upstream.url)
    response = gateway.get("/svc/echo", HTTP_X_REQUEST_ID="bad id\twith spaces")
    generated = response["X-Request-ID"]
    assert generated != "bad id\twith spaces"
    assert upstream.received[-1].headers["x-request-id"] == generated


def test_traceparent_continues_the_clients_trace(gateway, make_route, upstream):
    make_route("/svc/**", upstream.url)
    incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    gateway.get("/svc/echo", HTTP_TRACEPARENT=incoming)
    sent = upstream.received[-1].headers["traceparent"].split("-")
    assert sent[1] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert sent[2] != "00f067aa0ba902b7"
    assert sent[3] == "01"


def test_traceparent_starts_a_trace_when_the_client_sent_none(gateway, make_route, upstream):
    make_route("/svc/**", upstream.url)
    gateway.get("/svc/echo")
    version, trace_id, span_id, flags = upstream.received[-1].headers["traceparent"].split("-")
    assert (version, len(trace_id), len(span_id), flags) == ("00", 32, 16, "01")


def test_client_supplied_consumer_headers_never_reach_the_upstream(gateway, make_route, upstream):
    make_route("/svc/**", upstream.url)
    gateway.get(
        "/svc/echo",
        HTTP_X_CONSUMER_ID="admin",
        HTTP_X_CONSUMER_USERNAME="root",
        HTTP_X_CONSUMER_ROLES="admin",
        HTTP_X_CONSUMER_PERMISSIONS="manage:gateway",
    )
    headers = upstream.received[-1].headers
    assert not any(name.startswith("x-consumer-") for name in headers)


def test_strip_prefix_drops_the_literal_prefix(gateway, make_route, upstream):
    make_route("/api/v1/rd/**", upstream.url, strip_prefix=True)
    gateway.get("/api/v1/rd/echo/tasks?x=1")
    assert upstream.received[-1].path == "/echo/tasks"
    assert upstream.received[-1].query == "x=1"


def test_service_url_path_is_prepended(gateway, make_route, upstream):
    make_route("/api/v1/rd/**", f"{upstream.url}/base", strip_prefix=True)
    gateway.get("/api/v1/rd/echo")
    assert upstream.received[-1].path == "/base/echo"


def test_most_specific_route_wins(gateway, make_route, upstream):
    with UpstreamServer("upstream-b") as other:
        make_route("/api/v1/**", upstream.url, service="broad")
        make_route("/api/v1/rd/echo", other.url, service="narrow")
        assert _json(gateway.get("/api/v1/rd/echo"))["server"] == "upstream-b"
        assert _json(gateway.get("/api/v1/rd/echo/more"))["server"] == "upstream-a"


def test_priority_overrides_specificity(gateway, make_route, upstream):
    with UpstreamServer("upstream-b") as other:
        make_route("/api/v1/**", upstream.url, service="broad", priority=10)
        make_route("/api/v1/rd/echo", other.url, service="narrow")
        assert _json(gateway.get("/api/v1/rd/echo"))["server"] == "upstream-a"


def test_routes_split_by_method(gateway, make_route, upstream):
    with UpstreamServer("upstream-b") as other:
        make_route("/api/tasks/**", upstream.url, service="reader", methods="GET")
        make_route("/api/tasks/**", other.url, service="writer", methods="POST")
        assert _json(gateway.get("/api/tasks/echo"))["server"] == "upstream-a"
        assert _json(gateway.post("/api/tasks/echo"))["server"] == "upstream-b"


def test_unknown_path_is_404_problem(gateway, make_route, upstream):
    make_route("/svc/**", upstream.url)
    body = _problem(gateway.get("/nothing/here"), 404)
    assert body["code"] == "route_not_found"


def test_disabled_route_is_404(gateway, make_route, upstream):
    make_route("/svc/**", upstream.url, enabled=False)
    _problem(gateway.get("/svc/echo"), 404)


def test_wrong_method_is_405_with_allow(gateway, make_route, upstream):
    make_route("/svc/**", upstream.url, methods="GET,POST")
    response = gateway.delete("/svc/echo")
    body = _problem(response, 405)
    assert body["code"] == "method_not_allowed"
    assert response["Allow"] == "GET, HEAD, POST"
    assert upstream.count() == 0


@pytest.mark.parametrize(
    "raw",
    ["/svc/a%2fb", "/svc/a%5Cb", "/svc/a%00", "/svc/%252e%252e/admin", "/svc/a%2F..%2Fb"],
)
def test_hostile_paths_are_rejected_with_400(gateway, make_route, upstream, raw):
    make_route("/svc/**", upstream.url)
    body = _problem(gateway.get("/svc/x", RAW_URI=raw), 400)
    assert body["code"] == "bad_request"
    assert upstream.count() == 0


def test_dot_segments_are_resolved_before_matching(gateway, make_route, upstream):
    make_route("/api/v1/rd/**", upstream.url)
    response = gateway.get("/x", RAW_URI="/api/v1/pm/../rd/./echo//tasks?q=1")
    assert response.status_code == 200
    assert upstream.received[-1].path == "/api/v1/rd/echo/tasks"


def test_dot_segments_cannot_climb_out_of_a_route(gateway, make_route, upstream):
    make_route("/api/v1/rd/**", upstream.url)
    _problem(gateway.get("/x", RAW_URI="/api/v1/rd/../../../etc/passwd"), 404)
    assert upstream.count() == 0


def test_body_over_the_limit_is_413_before_contacting_the_upstream(
    gateway, make_route, upstream, settings
):
    settings.GATEWAY_MAX_BODY_SIZE = 1024
    make_route("/svc/**", upstream.url)
    body = _problem(gateway.post("/svc/echo", b"x" * 1025, content_type="text/plain"), 413)
    assert body["code"] == "payload_too_large"
    assert upstream.count() == 0


def test_body_at_the_limit_passes(gateway, make_route, upstream, settings):
    settings.GATEWAY_MAX_BODY_SIZE = 1024
    make_route("/svc/**", upstream.url)
    assert gateway.post("/svc/echo", b"x" * 1024, content_type="text/plain").status_code == 200


def test_refused_connection_is_502(gateway, make_route):
    server = UpstreamServer("gone")
    server.start()
    url = server.url
    server.stop()
    make_route("/svc/**", url)
    body = _problem(gateway.get("/svc/echo"), 502)
    assert body["code"] == "upstream_unavailable"


def test_slow_upstream_is_504_after_the_route_timeout(gateway, make_route, upstream):
    make_route("/svc/**", upstream.url, timeout_ms=200)
    body = _problem(gateway.get("/svc/slow/2000"), 504)
    assert body["code"] == "upstream_timeout"


def test_idempotent_request_is_retried_until_it_succeeds(gateway, make_route, upstream):
    make_route("/svc/**", upstream.url, retry=3)
    response = gateway.get("/svc/flaky/2/a")
    assert response.status_code == 200
    assert upstream.count("/svc/flaky/2/a") == 3


def test_retries_stop_at_the_configured_count(gateway, make_route, upstream):
    make_route("/svc/**", upstream.url, retry=1)
    _problem(gateway.get("/svc/flaky/5/b"), 502)
    assert upstream.count("/svc/flaky/5/b") == 2


def test_post_is_never_retried_once_sent(gateway, make_route, upstream):
    make_route("/svc/**", upstream.url, retry=3)
    _problem(gateway.post("/svc/flaky/2/c", b"{}", content_type="application/json"), 502)
    assert upstream.count("/svc/flaky/2/c") == 1


def test_large_response_is_streamed(gateway, make_route, upstream):
    make_route("/svc/**", upstream.url)
    size = 8 * 1024 * 1024
    response = gateway.get(f"/svc/big/{size}")
    assert response.streaming
    received = sum(len(chunk) for chunk in response.streaming_content)
    assert received == size


def test_service_url_can_be_overridden_by_the_environment(
    gateway, make_route, upstream, monkeypatch
):
    make_route("/svc/**", "http://127.0.0.1:9", service="billing-api")
    monkeypatch.setenv("GATEWAY_SERVICE_BILLING_API_URL", upstream.url)
    assert gateway.get("/svc/echo").status_code == 200


def test_proxied_request_in_steady_state_makes_no_database_query(
    gateway, make_route, upstream, django_assert_num_queries
):
    make_route("/svc/**", upstream.url)
    assert gateway.get("/svc/echo").status_code == 200  # compiles the route table
    with django_assert_num_queries(0):
        assert gateway.get("/svc/echo").status_code == 200


@pytest.mark.parametrize("method", ["TRACE", "PURGE"])
def test_a_method_the_gateway_does_not_forward_is_405_and_never_reaches_the_upstream(
    gateway, make_route, upstream, method
):
    make_route("/svc/**", upstream.url)
    body = _problem(gateway.generic(method, "/svc/echo"), 405)
    assert body["code"] == "method_not_allowed"
    assert upstream.received == []


def test_unexpected_error_is_500_problem_without_its_text(
    gateway, make_route, upstream, monkeypatch
):
    make_route("/svc/**", upstream.url)

    def explode(*args, **kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr("routing.pipeline.forward", explode)
    response = gateway.get("/svc/echo")
    body = _problem(response, 500)
    assert "secret" not in response.content.decode()
    assert body["code"] == "internal_error"


def test_host_outside_allowed_hosts_is_400_problem(gateway, make_route, upstream):
    make_route("/svc/**", upstream.url)
    _problem(gateway.get("/svc/echo", HTTP_HOST="evil.example"), 400)
    assert upstream.count() == 0


def test_head_answer_has_headers_but_no_body(gateway, make_route, upstream):
    make_route("/svc/**", upstream.url, methods="GET")
    response = gateway.head("/svc/big/1000000")
    assert response.status_code == 200
    assert response["Content-Length"] == "1000000"
    assert response.content == b""


def test_console_security_headers_are_not_added_to_proxied_answers(gateway, make_route, upstream):
    make_route("/svc/**", upstream.url)
    response = gateway.get("/svc/echo")
    assert not response.has_header("X-Frame-Options")
    assert not response.has_header("Referrer-Policy")
    assert gateway.get("/admin/login/").has_header("X-Frame-Options")


def test_service_without_any_target_is_503(gateway, make_route):
    route = make_route("/svc/**", "http://127.0.0.1:9")
    route.service.url = ""
    route.service.save()
    body = _problem(gateway.get("/svc/echo"), 503)
    assert body["code"] == "service_unavailable"


def test_client_address_claims_of_an_untrusted_client_never_reach_the_upstream(
    gateway, make_route, upstream, settings
):
    # Forwarded (RFC 7239) and X-Real-IP say who the client is and how it came; an upstream
    # believes its proxy, so only a trusted proxy's copies are passed on, like X-Forwarded-For.
    import ipaddress

    settings.GATEWAY_TRUSTED_PROXIES = (ipaddress.ip_network("10.0.0.0/8"),)
    make_route("/svc/**", upstream.url)
    claims = {
        "HTTP_FORWARDED": "for=10.0.0.1;host=evil.test;proto=https",
        "HTTP_X_REAL_IP": "10.0.0.1",
    }
    gateway.get("/svc/echo", REMOTE_ADDR="203.0.113.7", **claims)
    headers = upstream.received[-1].headers
    assert "forwarded" not in headers and "x-real-ip" not in headers
    gateway.get("/svc/echo", REMOTE_ADDR="10.1.1.1", **claims)
    headers = upstream.received[-1].headers
    assert headers["forwarded"] == claims["HTTP_FORWARDED"]
    assert headers["x-real-ip"] == "10.0.0.1"


@pytest.mark.parametrize("kind", [BufferedProxiedResponse, StreamedProxiedResponse])
def test_a_proxied_answer_lists_its_headers_as_django_would_plus_repeated_cookies(kind):
    response = kind(status=200) if kind is BufferedProxiedResponse else kind(iter([b"x"]))
    response["X-Mixed-Case"] = "1"
    response["content-type"] = "application/json"
    response["ETag"] = '"a"'
    response.extra_headers = [("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")]

    assert response.items() == [
        *HttpResponseBase.items(response),
        ("Set-Cookie", "a=1"),
        ("Set-Cookie", "b=2"),
    ]


@pytest.mark.parametrize("status", [200, 201, 304, 404, 502])
def test_a_relayed_answer_is_the_response_djangos_constructor_makes(status):
    store = {"content-type": ("Content-Type", "text/plain"), "x-a": ("X-A", "1")}
    made = BufferedProxiedResponse(b"body", status=status)
    made.headers._store = dict(store)

    relayed = BufferedProxiedResponse.relayed(b"body", status, dict(store))

    # Attribute by attribute: a Django release that adds one to its responses fails here.
    assert vars(relayed).keys() == vars(made).keys()
    for name, value in vars(made).items():
        if name in ("headers", "cookies"):
            continue
        assert vars(relayed)[name] == value, name
    assert type(relayed.headers) is type(made.headers)
    assert vars(relayed.headers) == vars(made.headers)
    assert type(relayed.cookies) is type(made.cookies) and not relayed.cookies
    assert relayed.cookies is not BufferedProxiedResponse.relayed(b"", status, {}).cookies
    assert relayed.content == b"body" and relayed.reason_phrase == made.reason_phrase
    assert relayed.items() == made.items() and not relayed.streaming
    assert relayed.serialize() == made.serialize() and list(relayed) == list(made)


def test_a_relayed_answer_without_cookies_shares_no_list_to_change():
    response = BufferedProxiedResponse.relayed(b"", 200, {})
    assert response.extra_headers == ()
    with pytest.raises(AttributeError):
        response.extra_headers.append(("Set-Cookie", "a=1"))  # type: ignore[attr-defined]
