"""Route policies through the management API, and the API schema against the config checker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from rest_framework.test import APIClient

from routing.configfile.spec import RouteSpec, ServiceSpec, Spec
from routing.configfile.validate import Checker, check_route, check_service
from routing.models import Route, Service

pytestmark = pytest.mark.django_db

POLICIES: dict[str, Any] = {
    "hide_credentials": True,
    "ip_deny": ["203.0.113.0/24", "2001:db8::1"],
    "cors": {
        "origins": ["https://app.example.com"],
        "methods": ["GET"],
        "headers": ["Authorization"],
        "expose_headers": ["X-Request-ID"],
        "credentials": True,
        "max_age": "10m",
    },
    "request_headers": {"set": {"X-Api-Version": "1"}, "remove": ["X-Debug"]},
    "response_headers": {"set": {"Cache-Control": "no-store"}},
    "validate": True,
    "cache": {"ttl": "30s"},
    "websocket": True,
}


@pytest.fixture
def service(db: Any) -> Service:
    return Service.objects.create(name="api", url="http://127.0.0.1:9", openapi="/openapi.json")


def _create(staff: APIClient, **extra: Any) -> Any:
    body = {"path": "/v1/**", "service": "api", **extra}
    return staff.post("/api/gateway/routes/", body, format="json")


def test_a_route_with_every_policy_is_created_and_answered_in_the_file_shape(staff, service):
    response = _create(staff, **POLICIES)
    assert response.status_code == 201, response.content
    route = Route.objects.get()
    expected = {**POLICIES, "ip_deny": ["2001:db8::1/128", "203.0.113.0/24"]}
    assert response.json() == {
        "id": route.pk,
        "path": "/v1/**",
        "service": "api",
        "authentication": "required",
        **expected,
    }
    assert route.cache_ttl_ms == 30_000 and route.validate_requests
    assert staff.get(f"/api/gateway/routes/{route.pk}/").json() == response.json()


def test_a_patch_changes_one_policy_and_null_removes_another(staff, service):
    created = _create(staff, **POLICIES).json()
    url = f"/api/gateway/routes/{created['id']}/"
    response = staff.patch(url, {"cache": {"ttl": "1m"}, "cors": None}, format="json")
    assert response.status_code == 200, response.content
    route = Route.objects.get()
    assert route.cache_ttl_ms == 60_000 and route.cors is None
    assert "cors" not in response.json()


@pytest.mark.parametrize(
    ("policy", "field", "message"),
    [
        ({"ip_allow": ["10.0.0.0/8"], "ip_deny": ["10.1.0.0/16"]}, "ip_deny", "not both"),
        ({"ip_allow": ["10.0.0.999"]}, "ip_allow[0]", "not an IP address"),
        ({"cors": {"origins": ["*"], "credentials": True}}, "cors.credentials", "origins"),
        ({"cors": {"origins": ["https://x.example/path"]}}, "cors.origins[0]", "not an origin"),
        ({"request_headers": {"set": {"Via": "me"}}}, "request_headers.set.Via", "managed"),
        ({"response_headers": {"remove": ["Connection"]}}, "response_headers.remove[0]", "managed"),
        ({"request_headers": {"set": {"X-A": "a\x00b"}}}, "request_headers.set.X-A", "NUL"),
        ({"request_headers": {"set": {"X-A": "a\nb"}}}, "request_headers.set.X-A", "LF"),
        ({"cache": {"ttl": "forever"}}, "cache.ttl", "not a duration"),
        ({"websocket": "yes"}, "websocket", "true or false"),
        ({"cors": {"origins": [f"https://a{i}.example" for i in range(10_000)]}}, "cors.origins",
         "at most 100"),
    ],
)  # fmt: skip
def test_a_bad_policy_is_a_400_problem_naming_the_field(staff, service, policy, field, message):
    response = _create(staff, **policy)
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/problem+json"
    errors = response.json()["errors"]
    assert any(e["field"] == field and message in e["message"] for e in errors), errors
    assert Route.objects.count() == 0


def test_validate_without_the_services_openapi_document_is_refused(staff, service):
    Service.objects.update(openapi="")
    response = _create(staff, validate=True)
    assert response.status_code == 400
    (error,) = response.json()["errors"]
    assert error["field"] == "validate" and "openapi" in error["message"]


# The schema-vs-checker property: every key the checker accepts is in the API's schema, and
# every key in the schema is accepted by the checker, for every entry and nested entry.


def _schema_keys(schema: dict[str, Any], component: str) -> dict[str, Any]:
    return schema["components"]["schemas"][component]["properties"]


def _resolve(schema: dict[str, Any], prop: dict[str, Any]) -> str | None:
    """The entry component a property refers to (directly, in a list, or through allOf)."""
    for candidate in (prop, prop.get("items", {}), *prop.get("allOf", [])):
        name = str(candidate.get("$ref", "")).rsplit("/", 1)[-1]
        if name.endswith("Entry"):  # not the enums of choices
            return name
    return None


_REFUSED_PROBES = ("colour", "_location")  # names the checker must call unknown


def _probe(spec: type[Spec]) -> dict[str, Any]:
    """An entry holding every key of `spec` (nested entries filled in likewise) and two more."""
    probe: dict[str, Any] = dict.fromkeys(_REFUSED_PROBES)
    for key in spec.KEYS:
        if key.entry is None:
            probe[key.name] = None
        else:
            nested = _probe(key.entry)
            probe[key.name] = [nested] if key.kind == "entries" else nested
    return probe


def _checker_view(
    probe: dict[str, Any], path: str, unknown: set[str], out: dict[str, set[str]]
) -> None:
    """The keys the checker accepted at each path of `probe` (path -> keys)."""
    out[path] = {name for name in probe if f"{path}.{name}".lstrip(".") not in unknown}
    for name, value in probe.items():
        if isinstance(value, list):
            _checker_view(value[0], f"{path}.{name}[0]".lstrip("."), unknown, out)
        elif isinstance(value, dict):
            _checker_view(value, f"{path}.{name}".lstrip("."), unknown, out)


def _schema_view(
    schema: dict[str, Any], component: str, path: str, out: dict[str, set[str]]
) -> None:
    """The writable keys of the schema's entry at each path (path -> keys)."""
    properties = _schema_keys(schema, component)
    out[path] = {name for name, prop in properties.items() if not prop.get("readOnly")}
    for name, prop in properties.items():
        nested = _resolve(schema, prop)
        if nested is not None:
            suffix = "[0]" if prop.get("type") == "array" else ""
            _schema_view(schema, nested, f"{path}.{name}{suffix}".lstrip("."), out)


def _compare(schema: dict[str, Any], component: str, spec: type[Spec], check: Any) -> None:
    checker = Checker({})
    probe = _probe(spec)
    check(checker, "", probe)
    unknown = {e.location for e in checker.errors if e.message.startswith("unknown key")}
    accepted: dict[str, set[str]] = {}
    _checker_view(probe, "", unknown, accepted)
    described: dict[str, set[str]] = {}
    _schema_view(schema, component, "", described)
    assert described == accepted
    # The probe really reached every level: the extra names were refused everywhere.
    assert all(not set(_REFUSED_PROBES) & keys for keys in accepted.values())
    assert len(accepted) > 1


def test_the_schema_and_the_checker_accept_the_same_keys_for_services_and_routes():
    schema = APIClient().get("/api/openapi.json").json()
    _compare(schema, "ServiceEntry", ServiceSpec, check_service)
    _compare(schema, "RouteEntry", RouteSpec, check_route)
    for policy in ("cors", "request_headers", "cache", "ip_allow", "validate", "websocket"):
        assert policy in _schema_keys(schema, "RouteEntry")
    assert "load_balancing" in _schema_keys(schema, "ServiceEntry")  # the drift issue 16 found


def test_the_api_docs_and_the_readme_name_every_key_of_services_and_routes():
    root = Path(__file__).resolve().parents[2]
    rows = {
        line.split("|")[1].strip(): line
        for line in (root / "docs" / "api.md").read_text().splitlines()
        if line.startswith("| `/api/gateway/")
    }
    readme = (root / "README.md").read_text()
    for resource, spec in (("services", ServiceSpec), ("routes", RouteSpec)):
        for key in spec.KEYS:
            assert f"`{key.name}" in rows[f"`/api/gateway/{resource}/`"], key.name
    for key in RouteSpec.KEYS[RouteSpec.KEYS.index(RouteSpec.key("hide_credentials")) :]:
        assert f"| `{key.name}` |" in readme, key.name
