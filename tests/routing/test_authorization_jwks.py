"""An external identity provider's tokens, verified with keys from its JWKS URL."""

from __future__ import annotations

import time
from collections.abc import Iterator

import jwt
import pytest
from django.test import override_settings

from accounts.jwks_store import jwks_forget
from tests.support.identity import bearer, problem, protect, upstream_headers
from tests.support.jwks import ISSUER, JwksServer, SigningKey

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def idp_server() -> Iterator[JwksServer]:
    with JwksServer() as server:
        yield server


@pytest.fixture
def idp(idp_server: JwksServer) -> Iterator[JwksServer]:
    idp_server.reset()
    jwks_forget(idp_server.url)  # the shared store outlives a test; the URL does not change
    yield idp_server
    jwks_forget(idp_server.url)


@pytest.fixture
def external(idp: JwksServer) -> Iterator[JwksServer]:
    """The gateway trusts the IdP; roles and permissions come from Keycloak-style claims."""
    with override_settings(
        JWT_JWKS_URL=idp.url,
        JWT_ISSUER=ISSUER,
        JWT_JWKS_ALGORITHMS=("RS256", "ES256"),
        JWT_ROLES_CLAIM="realm_access.roles",
        JWT_PERMISSIONS_CLAIM="scope",
        JWT_JWKS_MIN_REFETCH_MS=60_000,
    ):
        yield idp


@pytest.fixture
def guarded(make_route, upstream):
    return protect(
        make_route("/svc/**", upstream.url), permissions=("read:tasks",), roles=("developer",)
    )


def test_token_from_the_external_issuer_is_accepted_with_mapped_claims(gateway, external, guarded):
    key = SigningKey("k1")
    external.publish(key.jwk)

    headers = upstream_headers(gateway.get("/svc/echo", **bearer(key.token())))

    assert headers["x-consumer-id"] == "idp-user-7"
    assert headers["x-consumer-username"] == "erin"
    assert headers["x-consumer-roles"] == "developer,offline_access"
    assert headers["x-consumer-permissions"] == "openid,read:tasks"


def test_keys_are_fetched_once_and_then_served_from_the_cache(gateway, external, guarded):
    key = SigningKey("k1")
    external.publish(key.jwk)

    for _ in range(3):
        assert gateway.get("/svc/echo", **bearer(key.token())).status_code == 200

    assert external.fetches == 1


@override_settings(JWT_JWKS_MIN_REFETCH_MS=200)
def test_rotated_key_is_picked_up_on_its_first_unknown_kid(gateway, external, guarded):
    old, new = SigningKey("2026-01"), SigningKey("2026-02", kind="EC")
    external.publish(old.jwk)
    assert gateway.get("/svc/echo", **bearer(old.token())).status_code == 200
    assert external.fetches == 1

    external.publish(new.jwk)  # the issuer rotates: the old key is withdrawn
    time.sleep(0.25)  # past JWT_JWKS_MIN_REFETCH
    response = gateway.get("/svc/echo", **bearer(new.token()))

    assert response.status_code == 200, response.content
    assert external.fetches == 2
    time.sleep(0.25)
    assert gateway.get("/svc/echo", **bearer(old.token())).status_code == 401
    assert gateway.get("/svc/echo", **bearer(new.token())).status_code == 200


def test_unknown_kids_cannot_make_the_gateway_hammer_the_issuer(gateway, external, guarded):
    key = SigningKey("k1")
    external.publish(key.jwk)
    assert gateway.get("/svc/echo", **bearer(key.token())).status_code == 200

    for index in range(5):
        stranger = SigningKey(f"unknown-{index}", kind="EC")
        response = gateway.get("/svc/echo", **bearer(stranger.token()))
        assert response.status_code == 401
        assert "key" in problem(response)["detail"]

    # The set was fetched moments ago: JWT_JWKS_MIN_REFETCH (1 min here) holds back refetches.
    assert external.fetches == 1


def test_token_signed_with_an_unpublished_key_is_rejected(gateway, external, guarded):
    external.publish(SigningKey("k1").jwk)
    impostor = SigningKey("k1")  # same kid, different private key

    response = gateway.get("/svc/echo", **bearer(impostor.token()))

    assert response.status_code == 401
    assert "signature" in problem(response)["detail"]


def test_hmac_token_naming_a_published_kid_is_rejected(gateway, external, guarded):
    key = SigningKey("k1")
    external.publish(key.jwk)
    now = int(time.time())
    forged = jwt.encode(
        {"iss": ISSUER, "sub": "x", "exp": now + 60},
        "guessable-shared-secret-" + "s" * 20,
        algorithm="HS256",
        headers={"kid": "k1"},
    )

    response = gateway.get("/svc/echo", **bearer(forged))

    assert response.status_code == 401
    assert "algorithm" in problem(response)["detail"]


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"exp": int(time.time()) - 120}, "expired"),
        ({"iss": "https://other-idp.example"}, "issuer"),
        ({"token_type": "refresh"}, "refresh"),
        ({"sub": None}, "claim"),
    ],
    ids=["expired", "wrong-issuer", "refresh-token", "no-sub"],
)
def test_invalid_external_token_is_rejected(gateway, external, guarded, overrides, reason):
    key = SigningKey("k1")
    external.publish(key.jwk)

    response = gateway.get("/svc/echo", **bearer(key.token(**overrides)))

    assert response.status_code == 401
    assert reason in problem(response)["detail"]


def test_symmetric_keys_in_the_jwks_are_never_used(gateway, external, guarded):
    secret = "shared-secret-" + "z" * 30
    oct_jwk = {
        "kty": "oct",
        "kid": "hmac",
        "k": jwt.utils.base64url_encode(secret.encode()).decode(),
    }
    external.publish(oct_jwk)
    forged = jwt.encode(
        {
            "iss": ISSUER,
            "sub": "x",
            "exp": int(time.time()) + 60,
            "realm_access": {"roles": ["developer"]},
        },
        secret,
        algorithm="HS256",
        headers={"kid": "hmac"},
    )

    assert gateway.get("/svc/echo", **bearer(forged)).status_code == 401


def test_unreachable_jwks_gives_401_not_an_error(gateway, external, guarded):
    external.status = 503
    key = SigningKey("k1")
    external.publish(key.jwk)

    response = gateway.get("/svc/echo", **bearer(key.token()))

    assert response.status_code == 401
    assert external.fetches == 1
