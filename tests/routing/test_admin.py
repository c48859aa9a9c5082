"""The console's service and route pages."""

from __future__ import annotations

import pytest

from accounts.models import Permission, Role
from routing.models import Route, Service

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client, django_user_model):
    user = django_user_model.objects.create_superuser("root", password="long-test-password-1")
    client.force_login(user)
    return client


def test_route_list_and_forms_render(staff_client):
    service = Service.objects.create(name="rd", url="http://127.0.0.1:9001")
    Route.objects.create(path="/api/v1/rd/**", service=service, methods="GET,POST")
    assert staff_client.get("/admin/routing/route/").status_code == 200
    assert staff_client.get("/admin/routing/route/add/").status_code == 200
    assert staff_client.get("/admin/routing/service/").status_code == 200
    assert staff_client.get(f"/admin/routing/service/{service.pk}/change/").status_code == 200


def test_bad_pattern_gets_a_clear_message_in_the_console(staff_client):
    service = Service.objects.create(name="rd", url="http://127.0.0.1:9001")
    response = staff_client.post(
        "/admin/routing/route/add/",
        {
            "path": "/api/**/rd",
            "service": service.pk,
            "authentication": "required",
            "rate_limit_period": "minute",
            "rate_limit_algorithm": "token_bucket",
            "retry": 0,
            "priority": 0,
            "enabled": "on",
        },
    )
    assert response.status_code == 200
    assert "**" in response.content.decode()
    assert "errorlist" in response.content.decode()
    assert Route.objects.count() == 0


def test_bad_service_url_gets_a_clear_message(staff_client):
    response = staff_client.post(
        "/admin/routing/service/add/",
        {
            "name": "rd",
            "url": "ftp://files.example",
            "targets-TOTAL_FORMS": 0,
            "targets-INITIAL_FORMS": 0,
        },
    )
    assert "must start with http:// or https://" in response.content.decode()
    assert Service.objects.count() == 0


def test_route_added_in_the_console_is_stored_with_its_methods(staff_client):
    service = Service.objects.create(name="rd", url="http://127.0.0.1:9001")
    response = staff_client.post(
        "/admin/routing/route/add/",
        {
            "path": "/api/v1/rd/**",
            "method_choices": ["POST", "GET"],
            "service": service.pk,
            "authentication": "none",
            "rate_limit_period": "minute",
            "rate_limit_algorithm": "token_bucket",
            "retry": 0,
            "priority": 0,
            "enabled": "on",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Route.objects.get().methods == "GET,POST"


def test_duplicate_route_gets_a_message_not_an_error_page(staff_client):
    service = Service.objects.create(name="rd", url="http://127.0.0.1:9001")
    Route.objects.create(path="/api/v1/rd/**", service=service, methods="GET")
    response = staff_client.post(
        "/admin/routing/route/add/",
        {
            "path": "/api/v1/rd/**",
            "method_choices": ["GET"],
            "service": service.pk,
            "authentication": "none",
            "rate_limit_period": "minute",
            "rate_limit_algorithm": "token_bucket",
            "retry": 0,
            "priority": 0,
            "enabled": "on",
        },
    )
    assert response.status_code == 200
    assert "exists already" in response.content.decode()
    assert Route.objects.count() == 1


def _route_form(service: Service, **policies: object) -> dict[str, object]:
    return {
        "path": "/v1/**",
        "service": service.pk,
        "authentication": "none",
        "rate_limit_period": "minute",
        "rate_limit_algorithm": "token_bucket",
        "retry": 0,
        "priority": 0,
        "enabled": "on",
        **policies,
    }


def test_route_policies_are_edited_in_the_console_with_the_config_files_checks(staff_client):
    service = Service.objects.create(name="rd", url="http://127.0.0.1:9001", openapi="/o.json")
    form = _route_form(
        service,
        ip_allow_list="10.0.0.0/8\n2001:db8::/32\n",
        cors_origins="https://app.example.com\nhttps://admin.example.com",
        cors_methods=["GET", "POST"],
        cors_headers="Authorization, Content-Type",
        cors_expose_headers="X-Request-ID",
        cors_credentials="on",
        cors_max_age="10m",
        request_headers_config='{"set": {"X-Api-Version": "1"}}',
        cache_ttl="30s",
        validate_requests="on",
        websocket="on",
    )
    response = staff_client.post("/admin/routing/route/add/", form)
    assert response.status_code == 302, response.content.decode()[:3000]
    route = Route.objects.get()
    assert route.ip_allow == ["10.0.0.0/8", "2001:db8::/32"]
    assert route.cors == {
        "origins": ["https://admin.example.com", "https://app.example.com"],
        "methods": ["GET", "POST"],
        "headers": ["Authorization", "Content-Type"],
        "expose_headers": ["X-Request-ID"],
        "credentials": True,
        "max_age_ms": 600_000,
    }
    assert route.request_headers == {"set": [["X-Api-Version", "1"]], "remove": []}
    assert (route.cache_ttl_ms, route.validate_requests, route.websocket) == (30_000, True, True)
    page = staff_client.get(f"/admin/routing/route/{route.pk}/change/").content.decode()
    assert "CORS (browsers on other origins)" in page and "https://app.example.com" in page
    for fieldset in ("Client addresses (IP rules)", "Headers", "Validation and cache", "WebSocket"):
        assert f">{fieldset}</h2>" in page
    assert 'id="cors-preview"' in page and "cors_preview.js" in page


@pytest.mark.parametrize(
    ("policies", "message"),
    [
        ({"ip_allow_list": "10.0.0.1/8"}, "did you mean 10.0.0.0/8"),
        ({"ip_allow_list": "10.0.0.0/8", "ip_deny_list": "10.1.0.0/16"}, "not both"),
        ({"cors_origins": "*", "cors_credentials": "on"}, "cannot be true"),
        ({"cors_origins": "https://a.example/path"}, "cors.origins[0]"),
        ({"cors_headers": "Authorization", "cors_origins": ""}, "origins is required"),
        ({"cors_origins": "https://a.example", "cors_max_age": "2d"}, "cors.max_age"),
        ({"request_headers_config": '{"set": {"Host": "x"}}'}, "managed by the gateway"),
        ({"cache_ttl": "forever"}, "not a duration"),
        ({"validate_requests": "on"}, "has no OpenAPI document"),
    ],
)
def test_a_bad_policy_in_the_console_is_a_message_and_nothing_is_saved(
    staff_client, policies, message
):
    service = Service.objects.create(name="rd", url="http://127.0.0.1:9001")
    response = staff_client.post("/admin/routing/route/add/", _route_form(service, **policies))
    assert response.status_code == 200
    assert message in response.content.decode()
    assert Route.objects.count() == 0


@pytest.mark.parametrize("field", ["roles", "permissions"])
def test_the_console_route_form_allows_at_most_100_roles_and_permissions(staff_client, field):
    service = Service.objects.create(name="rd", url="http://127.0.0.1:9001")
    model = Role if field == "roles" else Permission
    names = [f"r{n}" if field == "roles" else f"read:p{n}" for n in range(101)]
    chosen = [model.objects.create(name=name).pk for name in names]
    response = staff_client.post(
        "/admin/routing/route/add/", _route_form(service, **{field: chosen})
    )
    assert response.status_code == 200
    assert "101 chosen; a route may name at most 100." in response.content.decode()
    assert Route.objects.count() == 0
    response = staff_client.post(
        "/admin/routing/route/add/", _route_form(service, **{field: chosen[:100]})
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    assert getattr(Route.objects.get(), field).count() == 100


def test_policy_boxes_left_blank_or_holding_whitespace_are_no_policy(staff_client):
    service = Service.objects.create(name="rd", url="http://127.0.0.1:9001")
    form = _route_form(
        service,
        request_headers_config="\n",
        response_headers_config="  \r\n ",
        cors_origins="\n",
        cors_headers=" ",
    )
    response = staff_client.post("/admin/routing/route/add/", form)
    assert response.status_code == 302, response.content.decode()[:3000]
    route = Route.objects.get()
    assert (route.request_headers, route.response_headers, route.cors) == (None, None, None)
