"""The developer portal: services' upstream documents rewritten to what gateway clients see."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import pytest
from django.conf import settings
from django.contrib.staticfiles import finders
from django.core.management import CommandError, call_command
from openapi_spec_validator import validate
from rest_framework.test import APIClient

from routing.models import Route, Service
from routing.table import route_tables

pytestmark = pytest.mark.django_db

ANY_CREDENTIAL: list[dict[str, list[str]]] = [{"jwtAuth": []}, {"oauth2": []}, {"apiKeyAuth": []}]


@pytest.fixture
def rd_service(upstream):
    return Service.objects.create(name="rd-service", url=upstream.url, openapi="/openapi.json")


def _route(service: Service, path: str, **fields) -> Route:
    route = Route.objects.create(path=path, service=service, **fields)
    route_tables.reset()
    return route


def _spec(name: str = "rd-service") -> dict:
    response = APIClient().get(f"/api/docs/services/{name}/openapi.json")
    assert response.status_code == 200, response.content
    return response.json()


def _methods(spec: dict) -> dict[str, set[str]]:
    return {
        path: {m for m in item if m in ("get", "post", "put", "delete")}
        for path, item in spec["paths"].items()
    }


def test_upstream_spec_is_rewritten_under_the_routes_that_expose_it(rd_service, upstream):
    _route(
        rd_service,
        "/api/v1/rd/**",
        strip_prefix=True,
        methods="GET",
        authentication="required",
        rate_limit_requests=100,
        rate_limit_burst=20,
    )
    # A more specific route sends /api/v1/rd/internal/** elsewhere: debug is not exposed.
    other = Service.objects.create(name="other", url=upstream.url)
    _route(other, "/api/v1/rd/internal/**", authentication="none")
    _route(rd_service, "/tasks", methods="POST", authentication="optional")

    spec = _spec()
    validate(spec)
    assert _methods(spec) == {
        "/api/v1/rd/tasks": {"get"},
        "/api/v1/rd/tasks/{id}": {"get"},
        "/tasks": {"post"},
    }
    assert spec["servers"] == [{"url": "http://testserver", "description": "The gateway"}]
    listed = spec["paths"]["/api/v1/rd/tasks"]["get"]
    assert listed["security"] == ANY_CREDENTIAL
    assert "rate limit 100 requests per minute (burst 20)" in listed["description"]
    assert "429" in listed["responses"] and "401" in listed["responses"]
    created = spec["paths"]["/tasks"]["post"]
    assert created["security"] == [*ANY_CREDENTIAL, {}]
    assert "no rate limit" in created["description"]
    assert spec["paths"]["/api/v1/rd/tasks/{id}"]["get"]["parameters"][0]["name"] == "id"
    schemes = spec["components"]["securitySchemes"]
    assert (
        schemes["oauth2"]["flows"]["clientCredentials"]["tokenUrl"] == "http://testserver/o/token/"
    )


def test_without_strip_prefix_only_paths_under_the_prefix_are_exposed(rd_service):
    _route(rd_service, "/tasks/**", authentication="none")
    spec = _spec()
    assert _methods(spec) == {"/tasks": {"get", "post"}, "/tasks/{id}": {"get"}}
    assert spec["paths"]["/tasks"]["get"]["security"] == []


def test_disabled_routes_expose_nothing(rd_service):
    _route(rd_service, "/tasks/**", enabled=False)
    assert _spec()["paths"] == {}


def test_a_failing_upstream_is_shown_not_fatal(upstream):
    Service.objects.create(name="broken", url=upstream.url, openapi="/status/500")
    Service.objects.create(name="closed", url="http://127.0.0.1:9", openapi="/openapi.json")
    response = APIClient().get("/api/docs/services/broken/openapi.json")
    assert response.status_code == 503
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["detail"] == "Docs for broken: the upstream answered 500."
    listing = {row["name"]: row for row in APIClient().get("/api/docs/services/").json()}
    assert listing["broken"]["available"] is False and "500" in listing["broken"]["error"]
    assert listing["closed"] == {
        "name": "closed",
        "spec_url": "/api/docs/services/closed/openapi.json",
        "docs_url": "/api/docs?service=closed",
        "available": False,
        "error": "the upstream could not be reached",  # never the upstream's address
        "policies": [],
    }
    assert APIClient().get("/api/docs").status_code == 200


def test_a_service_without_openapi_is_404(upstream):
    Service.objects.create(name="plain", url=upstream.url)
    assert APIClient().get("/api/docs/services/plain/openapi.json").status_code == 404


def test_the_document_is_cached_until_the_config_changes(rd_service, upstream):
    _route(rd_service, "/tasks/**", authentication="none")
    _spec()
    _spec()
    assert upstream.count("/openapi.json") == 1
    route_tables.reset()
    from routing.config_version import _bump

    _bump()  # what a committed config change does
    _spec()
    assert upstream.count("/openapi.json") == 2


def test_admin_shows_the_docs_status(admin_client, upstream):
    service = Service.objects.create(name="broken", url=upstream.url, openapi="/status/404")
    page = admin_client.get(f"/admin/routing/service/{service.pk}/change/")
    expected = f"Unavailable: GET {upstream.url}/status/404: the upstream answered 404."
    assert expected.encode() in page.content


class _Assets(HTMLParser):
    """Collects script src and link href attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value and (
                (tag == "script" and name == "src") or (tag == "link" and name == "href")
            ):
                self.urls.append(value)


@pytest.mark.parametrize("page", ["/api/docs", "/api/redoc"])
def test_docs_pages_load_everything_from_the_gateway(page, rd_service):
    response = APIClient().get(page)
    assert response.status_code == 200
    html = response.content.decode()
    assert re.findall(r"https?://[^\s\"'<>]+", html) == []
    parser = _Assets()
    parser.feed(html)
    assert parser.urls, "the page references its scripts and styles"
    for url in parser.urls:
        if url == "data:,":  # ReDoc's blank inline icon: nothing is fetched
            continue
        if url == "/api/redoc/redoc.standalone.js":  # ReDoc's bundle, rid of its CDN logo
            assert b"cdn.redoc.ly" not in APIClient().get(url).content
            continue
        assert url.startswith(settings.STATIC_URL if settings.STATIC_URL.startswith("/") else "/")
        path = (
            url.split("?")[0].removeprefix("/").removeprefix(settings.STATIC_URL.strip("/") + "/")
        )
        found = finders.find(path)
        assert found, url
        if path.endswith(".css"):
            with open(found) as css:
                assert not re.search(r"url\(\s*['\"]?https?://", css.read()), url


def test_swagger_ui_offers_every_documented_service_beside_the_gateway_api(rd_service):
    html = APIClient().get("/api/docs?service=rd-service").content.decode()
    assert '"url": "/api/openapi.json", "name": "Gateway management API"' in html
    assert (
        '"url": "/api/docs/services/rd-service/openapi.json", "name": "Service: rd-service"' in html
    )
    assert '"urls.primaryName": "Service: rd-service"' in html
    assert "SwaggerUIStandalonePreset" in html


def test_gateway_docs_command_writes_the_rewritten_document(rd_service, tmp_path):
    _route(rd_service, "/tasks/**", authentication="none")
    output = tmp_path / "rd.json"
    call_command(
        "gateway_docs", "rd-service", "--server", "https://gw.example.com", "--output", str(output)
    )
    spec = json.loads(output.read_text())
    assert spec["servers"][0]["url"] == "https://gw.example.com"
    assert set(spec["paths"]) == {"/tasks", "/tasks/{id}"}
    with pytest.raises(CommandError, match="declares an openapi document"):
        call_command("gateway_docs", "nope")


def test_odd_service_names_are_404_not_errors():
    assert APIClient().get("/api/docs/services/a%00b/openapi.json").status_code == 404
    assert APIClient().get("/api/redoc?service=a%00b").status_code == 200


def test_operation_ids_come_from_route_and_upstream_operation_so_adding_a_route_renames_none(
    rd_service,
):
    _route(rd_service, "/api/v1/rd/**", strip_prefix=True, authentication="none")
    before = {
        (path, method): op["operationId"]
        for path, item in _spec()["paths"].items()
        for method, op in item.items()
        if isinstance(op, dict) and "operationId" in op
    }
    assert before[("/api/v1/rd/tasks", "get")] == "api_v1_rd_listTasks"

    # A second route exposing the same upstream operations, listed before the first.
    _route(rd_service, "/api/v0/rd/**", strip_prefix=True, authentication="none")
    after = {
        (path, method): op["operationId"]
        for path, item in _spec()["paths"].items()
        for method, op in item.items()
        if isinstance(op, dict) and "operationId" in op
    }

    assert {key: after[key] for key in before} == before
    assert after[("/api/v0/rd/tasks", "get")] == "api_v0_rd_listTasks"
    assert len(set(after.values())) == len(after)
    assert not any(re.search(r"_\d+$", name) for name in after.values())


def test_servers_entry_is_the_configured_public_url(rd_service, tmp_path, settings, monkeypatch):
    _route(rd_service, "/api/v1/rd/**", strip_prefix=True, authentication="none")
    output = tmp_path / "rd.json"
    monkeypatch.setenv("GATEWAY_BIND", "0.0.0.0:8123")

    call_command("gateway_docs", "rd-service", "--output", str(output))
    assert json.loads(output.read_text())["servers"][0]["url"] == "http://127.0.0.1:8123"

    settings.GATEWAY_PUBLIC_URL = "https://api.acme.example"
    call_command("gateway_docs", "rd-service", "--output", str(output))
    assert json.loads(output.read_text())["servers"][0]["url"] == "https://api.acme.example"
    assert _spec()["servers"][0]["url"] == "https://api.acme.example"


@pytest.mark.parametrize("value", ["ftp://x.example", "https://x.example/?q=1", "api.example.com"])
def test_bad_public_url_is_refused_naming_the_setting(value, monkeypatch):
    from django.core.exceptions import ImproperlyConfigured

    from gateway_project.env import env_public_url

    monkeypatch.setenv("GATEWAY_PUBLIC_URL", value)
    with pytest.raises(ImproperlyConfigured, match="GATEWAY_PUBLIC_URL"):
        env_public_url("GATEWAY_PUBLIC_URL")


def test_schema_requests_at_once_in_a_fresh_worker_do_not_race(monkeypatch):
    # drf-spectacular imports an extension's target class on first use, without a lock; a
    # second request meeting the first one's failed import half done answered 500.
    import threading
    import time

    from drf_spectacular import plumbing
    from drf_spectacular.extensions import OpenApiSerializerFieldExtension
    from rest_framework.test import APIRequestFactory

    from management.portal.views import GatewaySchemaView

    missing = "not_installed_here.fields.Field"
    importing = {"now": 0, "most": 0}
    real_import = plumbing.import_string

    def slow_failing_import(path: str):
        if path != missing:
            return real_import(path)
        importing["now"] += 1
        importing["most"] = max(importing["most"], importing["now"])
        time.sleep(0.5)  # the window the other request falls into
        importing["now"] -= 1
        raise ImportError(path)

    class NotInstalledField(OpenApiSerializerFieldExtension):
        target_class = missing
        optional = True

        def map_serializer_field(self, auto_schema, direction):
            return {}

    monkeypatch.setattr(plumbing, "import_string", slow_failing_import)
    try:
        view = GatewaySchemaView.as_view()
        statuses: list[int] = []

        def fetch() -> None:
            statuses.append(view(APIRequestFactory().get("/api/openapi.json")).status_code)

        threads = [threading.Thread(target=fetch) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        OpenApiSerializerFieldExtension._registry.remove(NotInstalledField)
    assert statuses == [200, 200]
    assert importing["most"] == 1
