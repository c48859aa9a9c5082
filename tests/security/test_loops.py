"""Loop detection: the gateway's own Via entry coming back is 508 loop_detected, never forwarded."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from rest_framework.test import APIClient

from routing.loops import came_back, via_name, via_with_ours
from routing.models import Route, Service
from routing.table import route_tables
from tests.security.wire import get, header_of, problem_of, raw_exchange, status_of
from tests.support.gateway_server import GatewayServer
from tests.support.tcp_cutter import TcpCutter


@pytest.fixture
def node_name(settings) -> Iterator[str]:
    """A fixed GATEWAY_NODE_NAME for the test (the Via name is cached per process)."""
    settings.GATEWAY_NODE_NAME = "edge-7"
    via_name.cache_clear()
    yield "edge-7"
    via_name.cache_clear()


def test_via_name_is_a_pseudonym_without_a_node_name(settings):
    via_name.cache_clear()
    try:
        name = via_name()
        assert name.startswith("gw-") and len(name) == 15
        assert settings.SECRET_KEY[:6] not in name
    finally:
        via_name.cache_clear()


def test_came_back_finds_only_this_gateways_own_entry(node_name):
    assert came_back("1.1 edge-7")
    assert came_back("1.0 cdn, HTTP/1.1 EDGE-7 (gateway)")
    assert not came_back("1.1 edge-70, 1.1 my-edge-7")
    assert not came_back(None) and not came_back("")
    assert via_with_ours("1.0 cdn") == "1.0 cdn, 1.1 edge-7"


@pytest.mark.django_db
def test_a_request_carrying_our_via_is_508_and_never_forwarded(node_name, upstream):
    service = Service.objects.create(name="looped", url=upstream.url)
    Route.objects.create(path="/looped/**", service=service, authentication="none")
    route_tables.reset()
    client = APIClient()
    response = client.get("/looped/echo", HTTP_VIA="1.1 cdn, 1.1 edge-7")
    assert response.status_code == 508
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "loop_detected"
    assert upstream.count() == 0
    forwarded = client.get("/looped/echo", HTTP_VIA="1.1 cdn")
    assert forwarded.status_code == 200
    assert upstream.received[-1].headers["via"] == "1.1 cdn, 1.1 edge-7"
    assert forwarded["Via"] == "1.1 edge-7"


@pytest.fixture(scope="module")
def looping_gateway(django_db_setup, django_db_blocker, upstream_server) -> Iterator[GatewayServer]:
    """A gateway with a route whose service is the gateway itself, through a port forward."""
    server = GatewayServer()
    with TcpCutter("127.0.0.1", server.port) as forward, django_db_blocker.unblock():
        looped = Service.objects.create(name="self-loop", url=f"http://127.0.0.1:{forward.port}")
        Route.objects.create(path="/loop/**", service=looped, authentication="none")
        fine = Service.objects.create(name="beside-loop", url=upstream_server.url)
        Route.objects.create(path="/fine/**", service=fine, authentication="none")
        try:
            with server:
                yield server
        finally:
            Route.objects.filter(service__in=[looped, fine]).delete()
            looped.delete()
            fine.delete()


@pytest.mark.e2e
@pytest.mark.django_db
def test_a_self_loop_through_a_port_forward_is_508_after_one_hop(looping_gateway, upstream):
    # A loop would hold the connection silent (it once looped for 56 s): raw_exchange's 10 s
    # read timeout fails the test then. How fast the 508 comes is not measured.
    answer = raw_exchange(looping_gateway.port, get("/loop/anything"))
    assert status_of(answer) == 508, answer[:400]
    assert problem_of(answer)["code"] == "loop_detected"
    # The first pass added its Via to the answer; the second pass (the loop) answered 508 itself.
    # One entry means exactly one upstream hop happened.
    via = header_of(answer, "Via") or ""
    assert via.count("gw-") == 1, via
    # Other routes are unaffected.
    fine = raw_exchange(looping_gateway.port, get("/fine/echo"))
    assert status_of(fine) == 200
    assert json.loads(fine.split(b"\r\n\r\n", 1)[1] or b"{}")  # a complete JSON echo
