"""Policy steps compiled per route in the contract's order; explain reports each verdict."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from routing.explain import explain_request
from routing.pipeline import build_steps
from routing.table import route_tables

pytestmark = pytest.mark.django_db


def _route(make_route, path: str, **fields):
    make_route(path, "http://127.0.0.1:9", **fields)
    route_tables.reset()
    return route_tables.get().match("GET", path.replace("**", "x"))


def _names(steps) -> list[str]:
    return [step.name for step in steps]


def test_route_without_policies_gets_only_the_core_steps(make_route):
    steps = build_steps(_route(make_route, "/plain/**"))
    assert _names(steps.request) == ["authenticate", "authorize", "limit", "forward"]
    assert _names(steps.response) == ["respond"]


def test_every_policy_is_a_step_in_the_contracts_order(make_route):
    route = _route(
        make_route,
        "/all/**",
        ip_allow=["10.0.0.0/8"],
        cors={"origins": ["https://app.example.com"]},
        validate_requests=True,
        cache_ttl_ms=30_000,
        request_headers={"set": [["X-A", "1"]], "remove": []},
        response_headers={"set": [], "remove": ["X-Powered-By"]},
        websocket=True,
    )
    steps = build_steps(route)
    assert _names(steps.request) == [
        "ip_rules",
        "cors",
        "authenticate",
        "authorize",
        "limit",
        "validate",
        "cache",
        "request_headers",
        "websocket",
        "forward",
    ]
    assert _names(steps.response) == ["response_headers", "cors", "cache", "respond"]


def test_explain_reports_an_ip_refusal_before_authentication(make_route):
    _route(make_route, "/ipx/**", ip_allow=["10.0.0.0/8"], authentication="required")
    report = explain_request(method="GET", path="/ipx/a", headers={})
    assert report.status == 403
    assert any(step.strip().startswith("ip rules:") and "refused" in step for step in report.steps)


def test_explain_reports_a_preflight_answered_by_the_gateway(make_route):
    _route(
        make_route,
        "/cx/**",
        cors={"origins": ["https://app.example.com"]},
        authentication="required",
    )
    report = explain_request(
        method="OPTIONS",
        path="/cx/a",
        headers={"Origin": "https://app.example.com", "Access-Control-Request-Method": "GET"},
    )
    assert report.status == 204
    assert "preflight" in report.verdict
    assert any("preflight answered 204" in step for step in report.steps)


def test_explain_reports_a_cache_lookup_without_storing(make_route):
    _route(make_route, "/cachex/**", cache_ttl_ms=30_000)
    report = explain_request(method="GET", path="/cachex/a", headers={})
    assert report.status == 200
    assert any(step.strip() == "cache:      MISS" for step in report.steps)


def test_a_gateway_without_validating_routes_never_loads_the_openapi_validator():
    # openapi-core loaded at start made every request of a route without policies ~10% more
    # expensive (callgrind); it must load only when a route validates.
    script = (
        "import sys, django; django.setup()\n"
        "from gateway_project.wsgi import application\n"
        "import gateway_project.urls, routing.pipeline, routing.explain\n"
        "from django.urls import get_resolver\n"
        "get_resolver().url_patterns\n"
        "print(sorted(m for m in ('openapi_core', 'jsonschema', 'werkzeug') if m in sys.modules))\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "gateway_project.settings", "SECRET_KEY": "x"}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
