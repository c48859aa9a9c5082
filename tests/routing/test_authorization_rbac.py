"""Route rules: authentication modes, any one of the roles, all of the permissions."""

from __future__ import annotations

import pytest

from routing.explain import explain_request
from tests.support.identity import (
    bearer,
    claims,
    problem,
    protect,
    sign,
    upstream_headers,
)

pytestmark = pytest.mark.django_db


def token(roles=(), permissions=(), name="alice") -> dict[str, str]:
    return bearer(sign(claims(name=name, roles=list(roles), permissions=list(permissions))))


@pytest.fixture
def route(make_route, upstream):
    """Factory: a route at /svc/** with the given rules."""

    def factory(**rules):
        return protect(make_route("/svc/**", upstream.url), **rules)

    return factory


def test_missing_permission_is_refused_with_403_problem(gateway, route, upstream):
    route(permissions=("manage:integrations",))

    response = gateway.get("/svc/echo", **token(permissions=["read:tasks"]))

    assert response.status_code == 403
    body = problem(response)
    assert body["code"] == "permission_denied"
    assert "manage:integrations" in body["detail"]
    assert upstream.count() == 0


@pytest.mark.parametrize(
    ("held", "status"),
    [
        (["read:tasks", "write:tasks"], 200),
        (["read:tasks", "write:tasks", "manage:integrations"], 200),
        (["read:tasks"], 403),
        (["write:tasks"], 403),
        ([], 403),
    ],
)
def test_every_listed_permission_is_needed(gateway, route, held, status):
    route(permissions=("read:tasks", "write:tasks"))

    response = gateway.get("/svc/echo", **token(permissions=held))

    assert response.status_code == status, response.content


@pytest.mark.parametrize(
    ("held", "status"),
    [(["admin"], 200), (["ops"], 200), (["admin", "ops"], 200), (["developer"], 403), ([], 403)],
)
def test_any_one_listed_role_is_enough(gateway, route, held, status):
    route(roles=("admin", "ops"))

    response = gateway.get("/svc/echo", **token(roles=held))

    assert response.status_code == status, response.content


def test_roles_and_permissions_are_both_enforced(gateway, route):
    route(roles=("admin",), permissions=("manage:integrations",))

    assert gateway.get("/svc/echo", **token(roles=["admin"])).status_code == 403
    assert gateway.get("/svc/echo", **token(permissions=["manage:integrations"])).status_code == 403
    ok = gateway.get("/svc/echo", **token(roles=["admin"], permissions=["manage:integrations"]))
    assert ok.status_code == 200


def test_wildcard_permission_grants_every_permission_under_its_prefix(gateway, route):
    route(permissions=("manage:integrations",))

    assert gateway.get("/svc/echo", **token(permissions=["manage:*"])).status_code == 200
    assert gateway.get("/svc/echo", **token(permissions=["read:*"])).status_code == 403


def test_optional_route_passes_anonymous_callers_without_consumer_headers(gateway, route):
    route(authentication="optional")

    headers = upstream_headers(gateway.get("/svc/echo"))

    assert "x-consumer-id" not in headers


def test_optional_route_identifies_a_known_caller(gateway, route):
    route(authentication="optional")

    headers = upstream_headers(gateway.get("/svc/echo", **token(name="carol")))

    assert headers["x-consumer-username"] == "carol"


def test_optional_route_refuses_an_invalid_credential(gateway, route, upstream):
    route(authentication="optional")

    response = gateway.get("/svc/echo", **bearer(sign(claims(), key="wrong-key-" + "k" * 40)))

    assert response.status_code == 401
    assert problem(response)["code"] == "authentication_failed"
    assert upstream.count() == 0


def test_optional_route_with_a_permission_needs_credentials(gateway, route):
    route(authentication="optional", permissions=("read:tasks",))

    response = gateway.get("/svc/echo")

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_open_route_ignores_even_invalid_credentials(gateway, route):
    route(authentication="none")

    response = gateway.get("/svc/echo", HTTP_AUTHORIZATION="Bearer not-a-token", HTTP_X_API_KEY="x")

    headers = upstream_headers(response)
    assert "x-consumer-id" not in headers


def test_non_bearer_authorization_counts_as_no_credentials(gateway, route):
    route()

    response = gateway.get("/svc/echo", HTTP_AUTHORIZATION="Basic YWxpY2U6c2VjcmV0")

    assert response.status_code == 401
    assert problem(response)["code"] == "not_authenticated"


def test_explain_reports_the_auth_and_permission_steps(route):
    route(permissions=("manage:integrations",))
    jwt = sign(claims(name="alice", roles=["developer"], permissions=["read:tasks"]))

    report = explain_request(
        method="GET", path="/svc/echo", headers={"Authorization": f"Bearer {jwt}"}
    )

    assert report.status == 403
    text = "\n".join(report.lines())
    assert "auth: JWT for alice (roles: developer" in text
    assert "permissions: missing manage:integrations -> 403" in text
    assert report.consumer == "user alice"


def test_explain_reports_a_rejected_token(route):
    route()

    report = explain_request(method="GET", path="/svc/echo", headers={"Authorization": "Bearer x"})

    assert report.status == 401
    assert any("OAuth2 token rejected" in step for step in report.steps)
