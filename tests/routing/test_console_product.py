"""The console as a product: sidebar sections, first run, route page panels, labels, empty states."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from oauth2_provider.models import get_application_model

from accounts.models import ApiClient, Role, User
from audit.roles import OPERATOR, VIEWER
from management.console_site import GATEWAY_SECTIONS
from routing import nodes
from routing.admin import try_path
from routing.models import Route, Service

pytestmark = pytest.mark.django_db


def _client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def root() -> Client:
    return _client(User.objects.create_superuser("root", password="long-test-password-1"))


def _staff(name: str, group: str) -> Client:
    user = User.objects.create_user(name, password="long-test-password-1", is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    return _client(user)


def sidebar(html: str) -> list[str]:
    """The section headings of the navigation sidebar, in order."""
    nav = html[html.index('id="nav-sidebar"') :]
    return re.findall(r'<a href="[^"]*" class="section"[^>]*>([^<]+)</a>', nav)


def test_sidebar_lists_the_gateway_sections_first_and_the_rest_under_advanced(root):
    html = root.get("/admin/routing/route/").content.decode()
    headings = [heading for _, heading, _ in GATEWAY_SECTIONS]
    assert sidebar(html) == [*headings, "Advanced"]
    advanced = html[html.index("app-advanced") :]
    assert "Access attempts (Axes)" in advanced  # third-party pages, named with their app
    assert "Groups (Authentication and Authorization)" in advanced
    gateway = html[html.index('id="nav-sidebar"') : html.index("app-advanced")]
    for name in ("Services", "Routes", "Users", "API clients", "API keys", "Roles", "Quotas"):
        assert f">{name}</a>" in gateway


def test_a_viewer_sidebar_shows_only_what_the_viewer_may_see(root):
    viewer = _staff("vera", VIEWER)
    html = viewer.get("/admin/routing/route/").content.decode()
    assert sidebar(html)[:4] == [heading for _, heading, _ in GATEWAY_SECTIONS]
    assert "/admin/routing/route/add/" not in html  # no add link where the viewer may not add


def test_header_view_site_leads_to_the_api_docs_not_the_proxy(root):
    html = root.get("/admin/").content.decode()
    assert '<a href="/api/docs">View site</a>' in html


def test_home_page_offers_the_first_run_form_until_a_service_exists(root, upstream):
    assert 'id="first-run-form"' in root.get("/admin/").content.decode()
    response = root.post(
        "/admin/gateway/first-run/",
        {"name": "shop", "url": upstream.url, "path": "/api/v1/shop/**", "authentication": "none"},
    )
    assert response.status_code == 302
    route = Route.objects.get(path="/api/v1/shop/**")
    assert (route.service.name, route.service.url, route.authentication) == (
        "shop",
        upstream.url,
        "none",
    )
    done = root.get(response["Location"]).content.decode()
    assert "curl -i http://testserver/api/v1/shop/example" in done
    assert 'id="first-run-form"' not in root.get("/admin/").content.decode()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("name", "Shop Service", "lower-case letters"),
        ("name", "shop\x00", "lower-case letters"),
        ("url", "ftp://example.com", "http"),
        ("path", "/api/**/x", ""),
    ],
)
def test_first_run_form_names_the_field_to_fix_and_adds_nothing(root, field, value, message):
    data = {"name": "shop", "url": "http://10.0.0.5:9001", "path": "/api/v1/shop/**"}
    data["authentication"] = "none"
    data[field] = value
    response = root.post("/admin/gateway/first-run/", data)
    assert response.status_code == 200
    page = response.content.decode()
    assert f'field-{field}"' in page and "errorlist" in page
    assert message.lower() in page.lower()
    assert not Service.objects.exists() and not Route.objects.exists()


def test_first_run_refuses_a_viewer_and_a_name_taken(root, upstream):
    viewer = _staff("vera", VIEWER)
    assert 'id="first-run-form"' not in viewer.get("/admin/").content.decode()
    data = {
        "name": "shop",
        "url": upstream.url,
        "path": "/api/v1/shop/**",
        "authentication": "none",
    }
    assert viewer.post("/admin/gateway/first-run/", data).status_code == 403
    assert not Service.objects.exists()
    operator = _staff("otto", OPERATOR)
    assert operator.post("/admin/gateway/first-run/", data).status_code == 302
    again = root.post("/admin/gateway/first-run/", {**data, "path": "/api/v2/**"})
    assert again.status_code == 200 and "already exists" in again.content.decode()
    assert Service.objects.count() == 1


@pytest.mark.parametrize("value", ["²", "-1", "9" * 40, "1\x00", "abc"])
def test_odd_ids_in_first_run_and_route_urls_are_no_500(root, value):
    assert root.get("/admin/gateway/first-run/", {"route": value}).status_code == 200
    assert root.get(f"/admin/routing/route/{value}/change/").status_code in (302, 404)


def test_curl_line_path_fills_the_wildcards():
    assert try_path("/api/v1/shop/**") == "/api/v1/shop/example"
    assert try_path("/api/*/items") == "/api/example/items"


def test_route_page_shows_its_live_traffic_and_an_explain_box(root, make_route, upstream, client):
    route = make_route("/api/v1/live/**", upstream.url)
    for _ in range(3):
        assert client.get("/api/v1/live/x").status_code == 200
    page = root.get(f"/admin/routing/route/{route.pk}/change/").content.decode()
    traffic = page[page.index('id="route-traffic"') : page.index('id="id_path"')]
    assert re.search(r'data-window="last-hour">.*?class="gw-requests">3<', traffic, re.S)
    explain = page[page.index('id="route-explain"') :]
    assert 'action="/admin/gateway/explain/"' in explain
    assert 'value="/api/v1/live/example"' in explain
    assert page.count('id="id_path"') == 1  # the explain box's fields have their own ids


def test_service_page_names_its_own_url_override_variable(root):
    service = Service.objects.create(name="rd-service", url="http://10.0.0.5:9001")
    page = root.get(f"/admin/routing/service/{service.pk}/change/").content.decode()
    assert "GATEWAY_SERVICE_RD_SERVICE_URL overrides it" in page
    assert ">URL:</label>" in page and ">OpenAPI:</label>" in page
    assert "GATEWAY_SERVICE_{NAME}_URL" in root.get("/admin/routing/service/add/").content.decode()


def test_role_people_rows_and_user_page_read_as_the_gateway_means_them(root):
    role = Role.objects.create(name="developer")
    alice = User.objects.create_user("alice")
    alice.roles.add(role)
    assert (
        "alice holds developer"
        in root.get(f"/admin/accounts/role/{role.pk}/change/").content.decode()
    )
    html = root.get(f"/admin/accounts/user/{alice.pk}/change/").content.decode()
    form = html[html.index('id="user_form"') :]
    assert form.index("Gateway access") < form.index("Console access") < form.index("Advanced")
    assert "Console role" in form
    advanced = form[form.index("Advanced") :]
    assert "<details>" in form[: form.index("Advanced")][-200:]  # collapsed
    assert "id_user_permissions" in advanced


def test_api_client_pages_say_api_client(root):
    ApiClient.objects.create(name="batch")
    page = root.get("/admin/accounts/apiclient/").content.decode()
    assert "Select API client to change" in page and "Api client" not in page


def test_oauth_application_page_has_no_broken_view_on_site(root):
    application = get_application_model().objects.create(
        name="app", client_type="confidential", authorization_grant_type="client-credentials"
    )
    response = root.get(f"/admin/oauth2_provider/application/{application.pk}/change/")
    assert response.status_code == 200
    assert "View on site" not in response.content.decode()


def test_empty_lists_say_what_to_do_next(root):
    page = root.get("/admin/quotas/quota/").content.decode()
    assert 'id="empty-state"' in page and "No quotas yet." in page
    assert 'href="/admin/quotas/quota/add/"' in page
    usage = root.get("/admin/quotas/usage/").content.decode()
    assert "GATEWAY_USAGE_FLUSH_INTERVAL" in usage and 'href="/admin/routing/route/"' in usage
    viewer = _staff("vera", VIEWER)
    seen = viewer.get("/admin/routing/service/").content.decode()
    assert "No services yet." in seen and "/admin/routing/service/add/" not in seen
    Service.objects.create(name="shop", url="http://10.0.0.5:9001")
    filtered = root.get("/admin/routing/service/?q=nothing-matches").content.decode()
    assert 'id="empty-state"' not in filtered and "0 results" in filtered


def test_cluster_page_labels_the_health_checker(root):
    nodes.set_process_role(nodes.HEALTH_CHECKER)
    try:
        nodes.record_check_in(7)
        page = root.get("/admin/gateway/cluster/").content.decode()
    finally:
        nodes.set_process_role(nodes.WORKER)
    assert 'data-role="health checker"' in page and "<td>health checker</td>" in page


def test_redoc_script_is_served_without_any_cdn_address(client):
    page = client.get("/api/redoc").content.decode()
    assert 'src="/api/redoc/redoc.standalone.js"' in page
    script = client.get("/api/redoc/redoc.standalone.js")
    assert script.status_code == 200 and script["Content-Type"].startswith("text/javascript")
    body = script.content
    assert b"cdn.redoc.ly" not in body and b"Redoc" in body


def test_console_pages_declare_their_own_icon_so_the_browser_asks_for_no_favicon(root, client):
    # Without a declared icon every console page makes the browser fetch /favicon.ico: a 404
    # and a console error. The icon must be inline (data:), which the console's CSP allows.
    for page in (root.get("/admin/"), client.get("/admin/login/")):
        icon = re.search(r'<link rel="icon" href="([^"]+)"', page.content.decode())
        assert icon is not None
        assert icon.group(1).startswith("data:image/svg+xml,")
        assert "img-src 'self' data:" in page["Content-Security-Policy"]


def test_route_page_leaves_the_policies_a_route_lacks_empty_not_null(root, make_route, upstream):
    route = make_route("/api/v1/plain/**", upstream.url)
    route.cors = {"origins": ["https://app.example.com"]}
    route.save()
    page = root.get(f"/admin/routing/route/{route.pk}/change/").content.decode()
    for field in ("request_headers_config", "response_headers_config"):
        textarea = re.search(rf'<textarea name="{field}"[^>]*>(.*?)</textarea>', page, re.S)
        assert textarea is not None and textarea.group(1).strip() == "", field
    cors = re.search(r'<textarea name="cors_origins"[^>]*>(.*?)</textarea>', page, re.S)
    assert cors is not None and cors.group(1).strip() == "https://app.example.com"
    for field in ("cors_headers", "cors_max_age"):
        box = re.search(rf'<input type="text" name="{field}"([^>]*)>', page)
        assert box is not None and 'value="' not in box.group(1), field
