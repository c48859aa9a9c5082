"""The docs portal tells callers about route policies: validation, CORS, cache, IP, WebSocket."""

from __future__ import annotations

import json

import pytest
from openapi_spec_validator import validate
from rest_framework.test import APIClient

from routing.models import Route, Service
from routing.table import route_tables

pytestmark = pytest.mark.django_db

CORS = {
    "origins": ["https://app.example.com", "https://admin.example.com"],
    "methods": ["GET", "POST"],
    "headers": ["Authorization", "Content-Type"],
    "expose_headers": ["X-Request-ID"],
    "credentials": True,
    "max_age_ms": 600_000,
}
SECRET_NETWORKS = ["10.23.45.0/24", "2001:db8:dead:beef::/64"]
SECRET_HEADER = ("X-Internal-Token", "s3cr3t-header-value")


@pytest.fixture
def rd_service(upstream):
    return Service.objects.create(name="rd-service", url=upstream.url, openapi="/openapi.json")


def _route(service: Service, path: str, **fields) -> Route:
    route = Route.objects.create(path=path, service=service, authentication="none", **fields)
    route_tables.reset()
    return route


def _spec() -> dict:
    response = APIClient().get("/api/docs/services/rd-service/openapi.json")
    assert response.status_code == 200, response.content
    return response.json()


def _listing() -> dict:
    rows = APIClient().get("/api/docs/services/").json()
    return {row["name"]: row for row in rows}


def test_validated_route_says_so_per_operation_in_its_info_and_in_the_portal_list(rd_service):
    _route(rd_service, "/v/**", strip_prefix=True, validate_requests=True, methods="GET,POST")
    spec = _spec()
    validate(spec)  # the extensions keep the document valid OpenAPI
    for method in ("get", "post"):
        op = spec["paths"]["/v/tasks"][method]
        assert "validated against this operation's schema" in op["description"]
        assert op["x-gateway-policies"] == {"validate": True}
        assert "400" in op["responses"]
    assert spec["x-gateway-route-policies"] == [
        {
            "route": "/v/**",
            "notes": [
                "Requests are validated against the service's OpenAPI schema (400 `errors[]`)."
            ],
            "validated_operations": [
                "GET /v/internal/debug",
                "GET /v/tasks",
                "POST /v/tasks",
                "GET /v/tasks/{id}",
            ],
        }
    ]
    assert "`/v/**`: Requests are validated" in spec["info"]["description"]
    assert "`POST /v/tasks`" in spec["info"]["description"]
    row = _listing()["rd-service"]
    assert row["policies"] == spec["x-gateway-route-policies"]


def test_cors_route_names_its_origins_methods_and_credentials(rd_service):
    _route(rd_service, "/c/**", strip_prefix=True, cors=CORS)
    spec = _spec()
    op = spec["paths"]["/c/tasks"]["get"]
    assert (
        "Browsers may call it from https://admin.example.com, https://app.example.com (CORS: "
        "methods GET, POST; request headers Authorization, Content-Type; readable response "
        "headers X-Request-ID; with credentials (cookies); preflight answers cached by the "
        "browser for 600 s)." in op["description"]
    )
    assert op["x-gateway-policies"]["cors"] == {
        "origins": ["https://admin.example.com", "https://app.example.com"],
        "methods": ["GET", "POST"],
        "headers": ["Authorization", "Content-Type"],
        "expose_headers": ["X-Request-ID"],
        "credentials": True,
        "max_age_seconds": 600,
    }
    assert "https://app.example.com" in _listing()["rd-service"]["policies"][0]["notes"][0]


def test_any_origin_cors_says_any_origin(rd_service):
    _route(rd_service, "/c/**", strip_prefix=True, cors={"origins": ["*"]})
    op = _spec()["paths"]["/c/tasks"]["get"]
    assert "Browsers may call it from any origin" in op["description"]
    assert "without credentials" in op["description"]
    assert op["x-gateway-policies"]["cors"]["origins"] == ["*"]


def test_cache_ip_and_websocket_notes_never_name_networks_or_header_rules(rd_service):
    _route(
        rd_service,
        "/p/**",
        strip_prefix=True,
        cache_ttl_ms=30_000,
        ip_allow=SECRET_NETWORKS,
        websocket=True,
        hide_credentials=True,
        request_headers={"set": [list(SECRET_HEADER)], "remove": ["X-Debug"]},
        response_headers={"set": [["X-Upstream-Secret", "hidden-value"]], "remove": []},
    )
    spec = _spec()
    listed = spec["paths"]["/p/tasks"]["get"]
    assert "Answers may be cached for 30 s" in listed["description"]
    assert "Restricted to some networks" in listed["description"]
    assert "WebSocket upgrade supported" in listed["description"]
    assert listed["x-gateway-policies"] == {
        "cache_ttl_seconds": 30,
        "ip_restricted": True,
        "websocket": True,
    }
    created = spec["paths"]["/p/tasks"]["post"]
    assert "cached" not in created["description"]  # only GET/HEAD answers are kept
    assert "WebSocket" not in created["description"]
    assert created["x-gateway-policies"] == {"ip_restricted": True}
    listing = json.dumps(_listing())
    for text in (json.dumps(spec), listing):
        for leaked in (*SECRET_NETWORKS, "10.23.45", "dead:beef", *SECRET_HEADER):
            assert leaked not in text
        for leaked in ("X-Debug", "X-Upstream-Secret", "hidden-value", "hide_credentials"):
            assert leaked not in text


def test_ip_deny_route_also_keeps_its_networks_secret(rd_service):
    _route(rd_service, "/d/**", strip_prefix=True, ip_deny=SECRET_NETWORKS)
    spec = _spec()
    assert "Restricted to some networks" in spec["paths"]["/d/tasks"]["get"]["description"]
    assert "10.23.45" not in json.dumps(spec)


def test_route_without_policies_adds_nothing(rd_service):
    _route(rd_service, "/plain/**", strip_prefix=True)
    _route(rd_service, "/hidden/**", strip_prefix=True, hide_credentials=True)
    spec = _spec()
    assert "x-gateway-route-policies" not in spec
    assert "Route policies" not in spec["info"]["description"]
    for item in spec["paths"].values():
        for method, op in item.items():
            if method in ("get", "post"):
                assert "x-gateway-policies" not in op
                assert op["description"] == (
                    f"Through the gateway route `{op['x-gateway-route']}`: authentication "
                    "none; no rate limit."
                )
                assert "400" not in op["responses"]
    assert _listing()["rd-service"]["policies"] == []


def test_portal_list_shows_policies_of_a_service_whose_document_is_down(upstream):
    down = Service.objects.create(name="down", url=upstream.url, openapi="/status/500")
    _route(down, "/down/**", validate_requests=True, cors={"origins": ["https://a.example"]})
    row = _listing()["down"]
    assert row["available"] is False
    assert row["policies"][0]["route"] == "/down/**"
    assert row["policies"][0]["validated_operations"] == []
    assert "https://a.example" in row["policies"][0]["notes"][1]
