"""The route form's CORS preview answers what the proxy answers, to whom the route page allows."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.test import Client

from accounts.models import User
from audit.roles import OPERATOR, VIEWER, ensure_console_groups
from routing.models import Route, Service
from routing.table import route_tables

pytestmark = pytest.mark.django_db

PREVIEW = "/admin/gateway/cors-preview/"
APP = "https://app.example.com"


def _client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def root() -> Client:
    return _client(User.objects.create_superuser("root", password="long-test-password-1"))


def _staff(name: str, group: str) -> Client:
    ensure_console_groups()
    user = User.objects.create_user(name, password="long-test-password-1", is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    return _client(user)


def _cors_headers(headers: dict[str, str]) -> dict[str, str]:
    return {
        name.lower(): value
        for name, value in headers.items()
        if name.lower().startswith("access-control-") or name.lower() == "vary"
    }


CONFIGS = [
    pytest.param(
        {
            "cors_origins": f"{APP}\nhttps://admin.example.com",
            "cors_methods": ["GET", "POST"],
            "cors_headers": "Authorization, Content-Type",
            "cors_expose_headers": "X-Request-ID",
            "cors_credentials": "on",
            "cors_max_age": "10m",
        },
        id="listed-origins-credentials-max-age",
    ),
    pytest.param({"cors_origins": "*"}, id="any-origin"),
    pytest.param({"cors_origins": APP, "cors_expose_headers": "X-Total"}, id="route-methods"),
]
TRIES = [
    (APP, "GET", ""),
    ("HTTPS://APP.EXAMPLE.COM", "POST", "authorization, x-trace"),
    ("https://evil.example", "GET", ""),
    ("null", "PUT", "Content-Type"),
]


@pytest.mark.parametrize("fields", CONFIGS)
def test_preview_answers_exactly_what_a_preflight_through_the_proxy_gets(
    root, gateway, upstream, fields
):
    service = Service.objects.create(name="shop", url=upstream.url)
    form = {
        "path": "/shop/**",
        "service": service.pk,
        "authentication": "required",  # a preflight needs no credentials
        "rate_limit_period": "minute",
        "rate_limit_algorithm": "token_bucket",
        "retry": 0,
        "priority": 0,
        "enabled": "on",
        "method_choices": ["GET", "POST", "PUT"],
        **fields,
    }
    saved = root.post("/admin/routing/route/add/", form)
    assert saved.status_code == 302, saved.content.decode()[:2000]
    route_tables.reset()
    calls = upstream.count("/shop")
    for origin, method, requested in TRIES:
        proxied = gateway.options(
            "/shop/items",
            HTTP_ORIGIN=origin,
            HTTP_ACCESS_CONTROL_REQUEST_METHOD=method,
            **({"HTTP_ACCESS_CONTROL_REQUEST_HEADERS": requested} if requested else {}),
        )
        preview = root.post(
            PREVIEW,
            {
                **fields,
                "method_choices": ["GET", "POST", "PUT"],
                "preview_origin": origin,
                "preview_method": method,
                "preview_headers": requested,
            },
        )
        assert preview.status_code == 200, preview.content
        answer = preview.json()
        assert answer["ok"] and answer["configured"]
        assert answer["status"] == proxied.status_code == 204
        assert _cors_headers(answer["preflight_headers"]) == _cors_headers(proxied.headers), origin
    assert upstream.count("/shop") == calls  # preflights never reach the upstream
    # The actual answer's CORS headers, too (the route wants credentials: refused before CORS
    # would matter, so try an open copy of it).
    Route.objects.filter(path="/shop/**").update(authentication="none")
    route_tables.reset()
    for origin in (APP, "https://evil.example"):
        proxied = gateway.get("/shop/items", HTTP_ORIGIN=origin)
        assert proxied.status_code == 200
        answer = root.post(
            PREVIEW,
            {**fields, "method_choices": ["GET", "POST", "PUT"], "preview_origin": origin},
        ).json()
        assert _cors_headers(answer["response_headers"]) == _cors_headers(proxied.headers)


def test_refused_origin_is_204_without_cors_headers_and_browser_notes_say_why(root):
    base = {"cors_origins": APP, "cors_methods": ["GET"], "cors_headers": "Authorization"}
    refused = root.post(PREVIEW, {**base, "preview_origin": "https://evil.example"}).json()
    assert refused["status"] == 204 and refused["preflight_headers"] == {}
    blocked = root.post(
        PREVIEW,
        {
            **base,
            "preview_origin": APP,
            "preview_method": "DELETE",
            "preview_headers": "X-Custom",
        },
    ).json()
    assert blocked["preflight_headers"]["Access-Control-Allow-Origin"] == APP
    assert blocked["browser_notes"] == [
        "DELETE is not in Access-Control-Allow-Methods: the browser blocks it.",
        "Not in Access-Control-Allow-Headers, so the browser blocks the request: X-Custom.",
    ]


def test_no_cors_fields_is_no_cors_at_all(root):
    answer = root.post(PREVIEW, {"preview_origin": APP}).json()
    assert answer == {
        "ok": True,
        "errors": [],
        "configured": False,
        "status": None,
        "preflight_headers": {},
        "response_headers": {},
        "browser_notes": [],
    }


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"preview_origin": "https://app.example.com/path"}, "preview_origin", "Not an origin"),
        ({"preview_origin": "javascript:alert(1)"}, "preview_origin", "Not an origin"),
        ({"preview_origin": "https://a\x00.example"}, "preview_origin", "Null characters"),
        ({"preview_origin": "https://" + "a" * 400 + ".example"}, "preview_origin", "at most 300"),
        ({"preview_origin": ""}, "preview_origin", "Type the origin"),
        ({"preview_headers": "X-A\r\nX-B: 1"}, "preview_headers", "separated by commas"),
        ({"preview_method": "BREW"}, "preview_method", "valid choice"),
        ({"cors_origins": "https://ok.example\nftp//bad"}, "cors_origins", "cors.origins[1]"),
        ({"cors_origins": "*", "cors_credentials": "on"}, "cors_credentials", "cannot be true"),
        ({"cors_origins": APP, "cors_max_age": "25h"}, "cors_max_age", "at most 24h"),
        ({"cors_origins": APP, "cors_max_age": "\x00"}, "cors_max_age", "Null characters"),
        ({"cors_origins": APP, "cors_headers": "Bad Header:"}, "cors_headers", "cors.headers"),
        (
            {"cors_origins": "\n".join(f"https://h{i}.example" for i in range(101))},
            "cors_origins",
            "101",
        ),
        ({"cors_headers": "Authorization"}, "cors_origins", "origins is required"),
    ],
)
def test_hostile_or_bad_input_is_a_clear_message_naming_the_field(root, fields, field, message):
    data = {"preview_origin": APP, "preview_method": "GET", **fields}
    response = root.post(PREVIEW, data)
    assert response.status_code == 200  # an answer the page shows, as the admin's form pages
    assert response["Content-Type"] == "application/json"
    answer = response.json()
    assert answer["ok"] is False
    assert any(e["field"] == field and message in e["message"] for e in answer["errors"]), answer
    assert "Traceback" not in response.content.decode()


def test_a_huge_body_is_refused_without_an_error_page(root):
    response = root.post(PREVIEW, {"cors_origins": "https://a.example\n" * 200_000})
    assert response.status_code in (200, 400, 413)
    if response.status_code == 200:
        assert "at most 32000 characters" in response.json()["errors"][0]["message"]
    assert b"Traceback" not in response.content


def test_anonymous_is_sent_to_login_and_nothing_is_computed(client):
    response = client.post(PREVIEW, {"cors_origins": APP, "preview_origin": APP})
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_staff_without_a_console_role_is_refused(django_user_model):
    user = django_user_model.objects.create_user("nobody", password="x-long-pass-1", is_staff=True)
    response = _client(user).post(PREVIEW, {"cors_origins": APP, "preview_origin": APP})
    assert response.status_code == 403


def test_a_viewer_may_preview_but_not_save_and_an_operator_may_both(upstream):
    service = Service.objects.create(name="shop", url=upstream.url)
    route = Route.objects.create(path="/shop/**", service=service, cors={"origins": [APP]})
    viewer = _staff("vera", VIEWER)
    answer = viewer.post(PREVIEW, {"cors_origins": APP, "preview_origin": APP})
    assert answer.status_code == 200
    assert answer.json()["preflight_headers"]["Access-Control-Allow-Origin"] == APP
    page = viewer.get(f"/admin/routing/route/{route.pk}/change/").content.decode()
    assert 'id="cors-preview"' in page and 'name="_save"' not in page
    assert '"cors_origins": "https://app.example.com"' in page  # the saved fields, for the script
    changed = viewer.post(f"/admin/routing/route/{route.pk}/change/", {"cors_origins": "*"})
    assert changed.status_code == 403
    assert Route.objects.get().cors == {"origins": [APP]}
    operator = _staff("otto", OPERATOR)
    assert operator.post(PREVIEW, {"cors_origins": APP, "preview_origin": APP}).status_code == 200


def test_get_is_405_and_a_post_without_the_csrf_token_is_403(django_user_model):
    user = django_user_model.objects.create_superuser("root", password="long-test-password-1")
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(user)
    assert strict.get(PREVIEW).status_code == 405
    assert strict.post(PREVIEW, {"cors_origins": APP, "preview_origin": APP}).status_code == 403


def test_the_add_page_offers_the_preview_too(root):
    page = root.get("/admin/routing/route/add/").content.decode()
    assert 'id="cors-preview"' in page and 'data-url="/admin/gateway/cors-preview/"' in page
