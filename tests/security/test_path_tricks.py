"""Path tricks on the wire: `;` and double encoding never reach the upstream (real gunicorn).

An open `/api/v1/**` route sits next to a protected `/api/v1/secret/**` one. A Tomcat-style
upstream reads `/api/v1/secret;x=1/x` as `/api/v1/secret/x` and a double-decoding one reads
`/api/v1/%2573ecret/x` the same way, so forwarding these on the open route would serve the
protected path without credentials. The gateway answers 400 problem+json instead.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from routing.models import Route, Service
from tests.security.wire import get, problem_of, raw_exchange, status_of
from tests.support.gateway_server import GatewayServer

# django_db makes pytest-django create the test database the gateway subprocess shares.
pytestmark = [pytest.mark.e2e, pytest.mark.django_db]

SEMICOLON_TRICKS = [
    "/api/v1/secret;x=1/x",
    "/api/v1/secret;/x",
    "/api/v1/public/..;/secret/x",
    "/api/v1/secret;jsessionid=abc/x",
    "/api/v1/secret%3Bx=1/x",
    "/api/v1/secret%3b/x",
]
DOUBLE_ENCODING_TRICKS = [
    "/api/v1/%2573ecret/x",
    "/api/v1/%2573%2565cret/x",
    "/api/v1/public/%252e%252e/secret/x",
    "/api/v1/secre%2574/x",
    "/api/v1/%25%37%33ecret/x",
]


@pytest.fixture(scope="module")
def gateway(django_db_setup, django_db_blocker, upstream_server) -> Iterator[GatewayServer]:
    """A gateway with an open `/api/v1/**` route and a protected `/api/v1/secret/**` one."""
    with django_db_blocker.unblock():
        service = Service.objects.create(name="path-tricks", url=upstream_server.url)
        Route.objects.create(path="/api/v1/**", service=service, authentication="none")
        Route.objects.create(path="/api/v1/secret/**", service=service, authentication="required")
        try:
            with GatewayServer() as server:
                yield server
        finally:
            Route.objects.filter(service=service).delete()
            service.delete()


@pytest.mark.parametrize("path", SEMICOLON_TRICKS)
def test_a_semicolon_in_a_segment_is_400_and_never_forwarded(gateway, upstream, path):
    answer = raw_exchange(gateway.port, get(path))
    assert status_of(answer) == 400, answer[:300]
    problem = problem_of(answer)
    assert problem["code"] == "bad_request"
    assert "';'" in problem["detail"]
    assert upstream.count() == 0


@pytest.mark.parametrize("path", DOUBLE_ENCODING_TRICKS)
def test_double_encoding_is_400_and_never_forwarded(gateway, upstream, path):
    answer = raw_exchange(gateway.port, get(path))
    assert status_of(answer) == 400, answer[:300]
    problem = problem_of(answer)
    assert problem["code"] == "bad_request"
    assert "double-encoded" in problem["detail"]
    assert upstream.count() == 0


def test_the_open_route_still_forwards_and_the_protected_one_still_asks_for_credentials(
    gateway, upstream
):
    # The controls: without them the refusals above could come from a broken route table.
    open_answer = raw_exchange(gateway.port, get("/api/v1/public/x"))
    assert status_of(open_answer) == 200, open_answer[:300]
    assert [r.path for r in upstream.received] == ["/api/v1/public/x"]
    secret_answer = raw_exchange(gateway.port, get("/api/v1/secret/x"))
    assert status_of(secret_answer) == 401, secret_answer[:300]
    assert upstream.count() == 1


def test_a_lone_percent_25_is_still_forwarded_as_sent(gateway, upstream):
    # "%25" not followed by two hex digits decodes to a plain "%" once and stays that way.
    answer = raw_exchange(gateway.port, get("/api/v1/100%25/off"))
    assert status_of(answer) == 200, answer[:300]
    assert [r.path for r in upstream.received] == ["/api/v1/100%25/off"]
