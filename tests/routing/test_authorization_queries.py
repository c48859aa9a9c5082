"""Steady state: authenticated proxied requests make no database query."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.services import api_key_create
from tests.support.identity import api_client, api_key_header, bearer, claims, protect, role, sign

pytestmark = pytest.mark.django_db


@pytest.fixture
def guarded(make_route, upstream):
    return protect(make_route("/svc/**", upstream.url), permissions=("read:tasks",))


def test_jwt_route_makes_no_database_query(gateway, guarded, django_assert_num_queries):
    headers = bearer(sign(claims(permissions=["read:tasks"])))
    assert gateway.get("/svc/echo", **headers).status_code == 200  # compiles the route table

    with django_assert_num_queries(0):
        for _ in range(3):
            assert gateway.get("/svc/echo", **headers).status_code == 200


def test_a_new_jwt_is_verified_without_a_database_query(
    gateway, guarded, django_assert_num_queries
):
    assert gateway.get("/svc/echo", **bearer(sign(claims()))).status_code == 200

    with django_assert_num_queries(0):
        assert gateway.get("/svc/echo", **bearer(sign(claims(sub="99")))).status_code == 200


def test_api_key_route_makes_no_database_query_once_the_key_is_cached(
    gateway, guarded, django_assert_num_queries
):
    batch = api_client("batch", role("reader", "read:tasks"))
    _, key = api_key_create(client=batch, name="prod")
    assert gateway.get("/svc/echo", **api_key_header(key)).status_code == 200

    with django_assert_num_queries(0):
        for _ in range(3):
            assert gateway.get("/svc/echo", **api_key_header(key)).status_code == 200


def test_oauth_route_makes_no_database_query_once_the_token_is_cached(
    gateway, guarded, django_assert_num_queries
):
    from oauth2_provider.models import get_access_token_model

    from accounts.services import oauth_application_create

    reporting = api_client("reporting", role("reader", "read:tasks"))
    app, _ = oauth_application_create(
        name="job",
        client_type="confidential",
        authorization_grant_type="client-credentials",
        client=reporting,
    )
    get_access_token_model().objects.create(
        application=app,
        token="opaque-token-for-the-query-test",
        expires=timezone.now() + timedelta(hours=1),
        scope="gateway",
    )
    headers = bearer("opaque-token-for-the-query-test")
    assert gateway.get("/svc/echo", **headers).status_code == 200

    with django_assert_num_queries(0):
        for _ in range(3):
            assert gateway.get("/svc/echo", **headers).status_code == 200


def test_open_route_does_no_auth_work_for_a_credential_it_ignores(
    gateway, make_route, upstream, django_assert_num_queries
):
    protect(make_route("/open/**", upstream.url), authentication="none")
    assert gateway.get("/open/echo").status_code == 200

    unknown_key = api_key_header("gwk_0123abcd_" + "A" * 43)  # a lookup would query the DB
    with django_assert_num_queries(0):
        assert gateway.get("/open/echo", **unknown_key).status_code == 200
