"""The gateway's own tokens and external issuers' tokens are told apart by `iss`, never mixed."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import jwt
import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from accounts.jwks_store import jwks_forget
from accounts.jwt_issuers import derived_gateway_issuer, gateway_issuer, parse_external_issuers
from tests.support.identity import (
    PASSWORD,
    bearer,
    problem,
    protect,
    role,
    sign,
    upstream_headers,
    user,
)
from tests.support.jwks import ISSUER, JwksServer, SigningKey

pytestmark = pytest.mark.django_db

PARTNER = "https://login.partner.example/"


def externals(*entries: dict) -> list:
    """GATEWAY_JWT_EXTERNAL_ISSUERS as settings.py parses it from the environment."""
    return parse_external_issuers(
        json.dumps(list(entries)), default_algorithms=("RS256",), gateway_iss=None
    )


@pytest.fixture(scope="module")
def idp_server() -> Iterator[JwksServer]:
    with JwksServer() as server:
        yield server


@pytest.fixture
def idp(idp_server: JwksServer) -> Iterator[JwksServer]:
    idp_server.reset()
    jwks_forget(idp_server.url)
    yield idp_server
    jwks_forget(idp_server.url)


@pytest.fixture
def guarded(make_route, upstream):
    return protect(make_route("/svc/**", upstream.url), roles=("developer",))


def gateway_token(client) -> str:
    """An access token from /auth/token/ for a developer."""
    user("alice", role("developer", "read:tasks"))
    response = client.post(
        "/auth/token/",
        json.dumps({"username": "alice", "password": PASSWORD}),
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    return str(json.loads(response.content)["access"])


def test_default_gateway_issuer_is_fixed_per_deployment_and_not_the_secret():
    first = derived_gateway_issuer("secret-a" * 8)

    assert first == derived_gateway_issuer("secret-a" * 8)
    assert first != derived_gateway_issuer("secret-b" * 8)
    assert first.startswith("urn:api-gateway:")
    assert "secret" not in first


def test_gateway_tokens_carry_the_gateway_issuer_even_with_an_external_idp_configured(
    client, idp, guarded
):
    with override_settings(
        JWT_JWKS_URL=idp.url, JWT_ISSUER=ISSUER, JWT_AUDIENCE="account", JWT_ROLES_CLAIM="roles"
    ):
        token = gateway_token(client)
        claims = jwt.decode(token, options={"verify_signature": False})

        assert claims["iss"] == gateway_issuer() == derived_gateway_issuer(settings.SECRET_KEY)
        assert "aud" not in claims  # JWT_AUDIENCE belongs to the external issuer here
        # ... and the gateway still accepts its own token next to the external issuer.
        assert client.get("/svc/echo", **bearer(token)).status_code == 200


@override_settings(GATEWAY_JWT_ISSUER="https://gw.acme.example", GATEWAY_JWT_AUDIENCE="acme-apis")
def test_configured_gateway_issuer_and_audience_are_stamped_and_required(client, guarded):
    token = gateway_token(client)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert (claims["iss"], claims["aud"]) == ("https://gw.acme.example", "acme-apis")
    assert client.get("/svc/echo", **bearer(token)).status_code == 200

    with override_settings(GATEWAY_JWT_ISSUER="https://other-gw.example"):
        response = client.get("/svc/echo", **bearer(token))

    assert response.status_code == 401
    assert "issuer" in problem(response)["detail"]


def test_external_idp_cannot_mint_tokens_in_the_gateways_name(client, idp, guarded):
    key = SigningKey("k1")
    idp.publish(key.jwk)
    with override_settings(
        GATEWAY_JWT_EXTERNAL_ISSUERS=externals(
            {"issuer": ISSUER, "jwks_url": idp.url, "roles_claim": "realm_access.roles"}
        )
    ):
        assert client.get("/svc/echo", **bearer(key.token())).status_code == 200

        forged = key.token(iss=gateway_issuer(), roles=["developer"], token_type="access")
        response = client.get("/svc/echo", **bearer(forged))

    assert response.status_code == 401  # verified with the gateway's own key and algorithm only
    assert "algorithm" in problem(response)["detail"]


def test_token_from_an_unknown_issuer_is_rejected_with_401(client, idp, guarded):
    key = SigningKey("k1")
    idp.publish(key.jwk)
    with override_settings(
        GATEWAY_JWT_EXTERNAL_ISSUERS=externals({"issuer": ISSUER, "jwks_url": idp.url})
    ):
        response = client.get("/svc/echo", **bearer(key.token(iss="https://stranger.example")))

    assert response.status_code == 401
    assert "issuer" in problem(response)["detail"]
    assert idp.fetches == 0  # an unknown issuer never makes the gateway fetch anything


def test_each_external_issuer_has_its_own_keys_audience_and_claim_mapping(client, idp, guarded):
    keycloak, partner = SigningKey("kc-1"), SigningKey("partner-1", kind="EC")
    idp.publish(keycloak.jwk)
    configured = externals(
        {
            "issuer": ISSUER,
            "audience": "gateway",
            "jwks_url": idp.url,
            "roles_claim": "realm_access.roles",
            "permissions_claim": "scope",
        },
        {
            "issuer": PARTNER,
            "public_key": partner.public_pem,
            "algorithms": ["ES256"],
            "roles_claim": "https://partner.example/roles",
            "name_claim": "email",
        },
    )
    with override_settings(GATEWAY_JWT_EXTERNAL_ISSUERS=configured):
        from_keycloak = upstream_headers(
            client.get("/svc/echo", **bearer(keycloak.token(aud="gateway")))
        )
        from_partner = upstream_headers(
            client.get(
                "/svc/echo",
                **bearer(
                    partner.token(
                        iss=PARTNER,
                        sub="p-9",
                        email="bo@partner.example",
                        **{"https://partner.example/roles": ["developer"]},
                    )
                ),
            )
        )
        # The partner's key does not vouch for Keycloak's issuer, nor Keycloak's audience for it.
        crossed = client.get("/svc/echo", **bearer(partner.token(aud="gateway")))
        no_audience = client.get("/svc/echo", **bearer(keycloak.token()))

    assert from_keycloak["x-consumer-roles"] == "developer,offline_access"
    assert from_keycloak["x-consumer-permissions"] == "openid,read:tasks"
    assert (from_partner["x-consumer-id"], from_partner["x-consumer-username"]) == (
        "p-9",
        "bo@partner.example",
    )
    assert from_partner["x-consumer-roles"] == "developer"
    assert crossed.status_code == 401
    assert no_audience.status_code == 401
    assert "claim" in problem(no_audience)["detail"]


def test_legacy_jwks_url_settings_still_describe_one_external_issuer(client, idp, guarded):
    key = SigningKey("k1")
    idp.publish(key.jwk)
    with override_settings(
        JWT_JWKS_URL=idp.url, JWT_ISSUER=ISSUER, JWT_ROLES_CLAIM="realm_access.roles"
    ):
        accepted = client.get("/svc/echo", **bearer(key.token()))
        other = client.get("/svc/echo", **bearer(key.token(iss="https://elsewhere.example")))

    assert accepted.status_code == 200
    assert other.status_code == 401


def test_expired_external_token_is_still_rejected_after_it_was_verified(client, idp, guarded):
    key = SigningKey("k1")
    idp.publish(key.jwk)
    with override_settings(
        GATEWAY_JWT_EXTERNAL_ISSUERS=externals(
            {"issuer": ISSUER, "jwks_url": idp.url, "roles_claim": "realm_access.roles"}
        ),
        JWT_LEEWAY_MS=0,
    ):
        # Real wall-clock expiry (PyJWT reads its own clock): at least 4 s to verify it once
        # while still valid, room for a loaded machine; the sleep past it can only be longer.
        token = key.token(exp=int(time.time()) + 5)
        assert client.get("/svc/echo", **bearer(token)).status_code == 200
        time.sleep(
            max(0.0, jwt.decode(token, options={"verify_signature": False})["exp"] - time.time())
            + 0.05
        )
        assert client.get("/svc/echo", **bearer(token)).status_code == 401


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"issuer": "x"}', "JSON list"),
        ('[{"jwks_url": "https://idp/jwks"}]', "[0].issuer is required"),
        ('[{"issuer": "a"}]', "exactly one of jwks_url or public_key"),
        ('[{"issuer": "a", "jwks_url": "ftp://x"}]', "http(s) URL"),
        ('[{"issuer": "a", "jwks_url": "https://x", "roles": "r"}]', "unknown field(s) roles"),
        ('[{"issuer": "a", "jwks_url": "https://x", "algorithms": ["HS256"]}]', "asymmetric"),
        ('[{"issuer": "a", "public_key": "not a pem"}]', "not a PEM public key"),
        (
            '[{"issuer": "a", "jwks_url": "https://x"}, {"issuer": "a", "jwks_url": "https://y"}]',
            "listed twice",
        ),
        ('[{"issuer": "urn:gw", "jwks_url": "https://x"}]', "gateway's own issuer"),
    ],
)
def test_bad_external_issuer_settings_name_the_entry_and_the_fix(raw, message):
    with pytest.raises(ImproperlyConfigured) as error:
        parse_external_issuers(raw, default_algorithms=("RS256",), gateway_iss="urn:gw")

    assert message in str(error.value)
    assert "GATEWAY_JWT_EXTERNAL_ISSUERS" in str(error.value)


def test_refresh_token_issued_before_the_gateway_had_an_issuer_still_refreshes(client):
    from accounts.tokens import GatewayRefreshToken

    alice = user("alice", role("developer", "read:tasks"))
    legacy = GatewayRefreshToken.for_user(alice)
    claims = dict(legacy.payload)
    claims.pop("iss", None)
    old_refresh = sign(claims)  # the gateway's key and kid, no `iss`: as issued before
    forged = sign({**claims, "jti": "other"}, key="someone-elses-secret-" + "x" * 20)

    response = client.post(
        "/auth/token/refresh/",
        json.dumps({"refresh": old_refresh}),
        content_type="application/json",
    )
    refused = client.post(
        "/auth/token/refresh/", json.dumps({"refresh": forged}), content_type="application/json"
    )

    assert response.status_code == 200, response.content
    new_access = json.loads(response.content)["access"]
    assert jwt.decode(new_access, options={"verify_signature": False})["iss"] == gateway_issuer()
    assert refused.status_code == 401
