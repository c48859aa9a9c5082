"""JWTs on the proxy: issued tokens pass, every RFC 8725 attack class is refused with 401."""

from __future__ import annotations

import json
import time

import pytest
from django.test import override_settings

from tests.support.identity import (
    PASSWORD,
    bearer,
    claims,
    problem,
    protect,
    role,
    rsa_pem_pair,
    sign,
    tamper,
    unsigned,
    upstream_headers,
    user,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def jwt_route(make_route, upstream):
    """/svc/** requires a JWT with read:tasks."""
    return protect(make_route("/svc/**", upstream.url), permissions=("read:tasks",))


def login(gateway, username: str) -> dict[str, str]:
    response = gateway.post(
        "/auth/token/",
        {"username": username, "password": PASSWORD},
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    return json.loads(response.content)


def assert_401(response) -> dict:
    assert response.status_code == 401, response.content
    assert response["WWW-Authenticate"].startswith("Bearer")
    body = problem(response)
    assert body["status"] == 401
    return body


def test_token_from_auth_endpoint_is_accepted_and_upstream_learns_the_caller(
    gateway, jwt_route, upstream
):
    alice = user("alice", role("developer", "read:tasks", "write:tasks"))
    tokens = login(gateway, "alice")

    response = gateway.get("/svc/echo/tasks", **bearer(tokens["access"]))

    headers = upstream_headers(response)
    assert headers["x-consumer-id"] == str(alice.pk)
    assert headers["x-consumer-username"] == "alice"
    assert headers["x-consumer-roles"] == "developer"
    assert headers["x-consumer-permissions"] == "read:tasks,write:tasks"


def test_client_supplied_consumer_headers_never_reach_the_upstream(gateway, jwt_route, upstream):
    user("alice", role("developer", "read:tasks"))
    tokens = login(gateway, "alice")

    response = gateway.get(
        "/svc/echo/x",
        HTTP_X_CONSUMER_ID="0",
        HTTP_X_CONSUMER_USERNAME="root",
        HTTP_X_CONSUMER_ROLES="admin",
        HTTP_X_CONSUMER_PERMISSIONS="manage:integrations",
        **bearer(tokens["access"]),
    )

    headers = upstream_headers(response)
    assert headers["x-consumer-username"] == "alice"
    assert headers["x-consumer-roles"] == "developer"
    assert headers["x-consumer-permissions"] == "read:tasks"
    assert "root" not in json.dumps(headers)


def test_spoofed_consumer_headers_are_dropped_for_anonymous_callers(gateway, make_route, upstream):
    protect(make_route("/pub/**", upstream.url), authentication="optional")

    response = gateway.get("/pub/echo", HTTP_X_CONSUMER_ID="7", HTTP_X_CONSUMER_ROLES="admin")

    headers = upstream_headers(response)
    assert "x-consumer-id" not in headers
    assert "x-consumer-roles" not in headers


def test_request_without_credentials_gets_401_with_bearer_challenge(gateway, jwt_route, upstream):
    body = assert_401(gateway.get("/svc/echo"))
    assert body["code"] == "not_authenticated"
    assert upstream.count() == 0


ATTACKS = {
    "unsigned alg none": lambda: unsigned(claims()),
    "signed with another key": lambda: sign(claims(), key="another-secret-" + "x" * 40),
    "expired": lambda: sign(claims(exp=int(time.time()) - 60, iat=int(time.time()) - 400)),
    "not yet valid": lambda: sign(claims(nbf=int(time.time()) + 600)),
    "tampered payload": lambda: tamper(sign(claims()), permissions=["manage:integrations"]),
    "refresh token as access token": lambda: sign(claims(token_type="refresh")),
    "no token_type": lambda: sign(claims(token_type=None)),
    "no exp": lambda: sign(claims(exp=None)),
    "HS512 when HS256 is pinned": lambda: sign(claims(), algorithm="HS512"),
    "unknown kid": lambda: sign(claims(), kid="someone-elses-key"),
    "garbage": lambda: "eyJhbGciOiJIUzI1NiJ9.bm90IGpzb24.c2ln",
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_forged_or_invalid_token_is_rejected_with_401(gateway, jwt_route, upstream, attack):
    token = ATTACKS[attack]()

    body = assert_401(gateway.get("/svc/echo", **bearer(token)))

    assert body["code"] == "authentication_failed"
    assert upstream.count() == 0


def test_a_well_formed_token_passes_so_the_attack_cases_are_meaningful(gateway, jwt_route):
    response = gateway.get("/svc/echo", **bearer(sign(claims())))
    assert response.status_code == 200, response.content


@override_settings(JWT_AUDIENCE="gateway-api", JWT_ISSUER="https://login.example")
@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("aud", "another-api", "audience"),
        ("iss", "https://evil.example", "issuer"),
        ("aud", None, "claim"),
    ],
)
def test_token_for_another_audience_or_issuer_is_rejected(gateway, jwt_route, field, value, reason):
    assert gateway.get("/svc/echo", **bearer(sign(claims()))).status_code == 200

    token = sign(claims(**{field: value}))

    body = assert_401(gateway.get("/svc/echo", **bearer(token)))
    assert reason in body["detail"]


@override_settings(JWT_LEEWAY_MS=0)
def test_token_remembered_as_valid_is_rejected_once_it_expires(gateway, jwt_route):
    # Real wall-clock expiry (PyJWT reads its own clock): at least 4 s to verify it once while
    # still valid, room for a loaded machine; sleeping past `exp` is a lower bound load can
    # only lengthen.
    expires = int(time.time()) + 5
    token = sign(claims(exp=expires))
    assert gateway.get("/svc/echo", **bearer(token)).status_code == 200

    time.sleep(max(0.0, expires - time.time()) + 0.05)

    assert_401(gateway.get("/svc/echo", **bearer(token)))


class TestRS256:
    """Asymmetric keys: issue with the private key, verify with the public one."""

    @pytest.fixture(autouse=True)
    def rs256(self):
        private, public = rsa_pem_pair()
        with override_settings(
            JWT_ALGORITHM="RS256",
            JWT_SIGNING_KEY=None,
            JWT_PRIVATE_KEY=private,
            JWT_PUBLIC_KEY=public,
        ):
            yield private, public

    def test_rs256_token_from_auth_endpoint_is_accepted(self, gateway, jwt_route):
        user("bob", role("developer", "read:tasks"))
        tokens = login(gateway, "bob")
        header = json.loads(
            __import__("jwt").utils.base64url_decode(tokens["access"].split(".")[0])
        )
        assert header["alg"] == "RS256"

        response = gateway.get("/svc/echo", **bearer(tokens["access"]))

        assert upstream_headers(response)["x-consumer-username"] == "bob"

    def test_hs256_token_signed_with_the_public_key_is_rejected(self, gateway, jwt_route, rs256):
        _, public = rs256
        # Algorithm confusion: the attacker uses the (public) verifying key as an HMAC secret.
        # PyJWT itself refuses to HMAC with a PEM, so build the token by hand.
        import base64
        import hashlib
        import hmac

        def b64(data: bytes) -> str:
            return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

        from tests.support.identity import local_kid

        header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": local_kid()}).encode())
        payload = b64(json.dumps(claims()).encode())
        signature = hmac.new(public.encode(), f"{header}.{payload}".encode(), hashlib.sha256)
        token = f"{header}.{payload}.{b64(signature.digest())}"

        body = assert_401(gateway.get("/svc/echo", **bearer(token)))
        assert "algorithm" in body["detail"]

    def test_rs256_token_signed_with_another_private_key_is_rejected(self, gateway, jwt_route):
        other_private, _ = rsa_pem_pair()
        token = sign(claims(), key=other_private, algorithm="RS256")
        assert_401(gateway.get("/svc/echo", **bearer(token)))
