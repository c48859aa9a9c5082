"""Small factories for identity tests: roles, users, clients, protected routes, forged JWTs."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings

from accounts.jwt_auth import key_id, local_verifying_material
from accounts.models import ApiClient, Permission, Role, User
from routing.table import route_tables

PASSWORD = "correct horse battery staple 42"


def role(name: str, *permissions: str) -> Role:
    """A role granting `permissions` (created as needed)."""
    obj, _ = Role.objects.get_or_create(name=name)
    obj.permissions.set([Permission.objects.get_or_create(name=p)[0] for p in permissions])
    return obj


def user(username: str, *roles: Role, is_active: bool = True) -> User:
    """A user with `roles` and the password PASSWORD."""
    obj = User.objects.create_user(username=username, password=PASSWORD, is_active=is_active)
    obj.roles.set(roles)
    return obj


def api_client(name: str, *roles: Role) -> ApiClient:
    """An active API client with `roles`."""
    obj = ApiClient.objects.create(name=name)
    obj.roles.set(roles)
    return obj


def protect(
    route: Any,
    *,
    authentication: str = "required",
    permissions: tuple[str, ...] = (),
    roles: tuple[str, ...] = (),
) -> Any:
    """Give a route from `make_route` an authentication mode, permissions and roles."""
    route.authentication = authentication
    route.save()
    route.permissions.set([Permission.objects.get_or_create(name=p)[0] for p in permissions])
    route.roles.set([Role.objects.get_or_create(name=r)[0] for r in roles])
    route_tables.reset()
    return route


def bearer(token: str) -> dict[str, str]:
    """Test-client keyword arguments for `Authorization: Bearer <token>`."""
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def api_key_header(key: str) -> dict[str, str]:
    """Test-client keyword arguments for `X-API-Key: <key>`."""
    return {"HTTP_X_API_KEY": key}


def claims(**overrides: Any) -> dict[str, Any]:
    """Claims of a valid gateway access token, with `overrides` applied (None deletes)."""
    now = int(time.time())
    base: dict[str, Any] = {
        "sub": "42",
        "name": "alice",
        "roles": ["developer"],
        "permissions": ["read:tasks"],
        "iat": now,
        "exp": now + 300,
        "jti": uuid.uuid4().hex,
        "token_type": "access",
    }
    if settings.JWT_ISSUER:
        base["iss"] = settings.JWT_ISSUER
    if settings.JWT_AUDIENCE:
        base["aud"] = settings.JWT_AUDIENCE
    base.update(overrides)
    return {name: value for name, value in base.items() if value is not None}


def local_kid() -> str:
    """The `kid` the gateway puts in its own tokens."""
    return key_id(*local_verifying_material())


def sign(
    payload: dict[str, Any],
    *,
    key: Any = None,
    algorithm: str | None = None,
    kid: str | None = "local",
) -> str:
    """A JWT over `payload`; by default signed like the gateway's own tokens."""
    algorithm = algorithm or settings.JWT_ALGORITHM
    if key is None:
        key = settings.JWT_SIGNING_KEY or settings.JWT_PRIVATE_KEY
    headers = {"kid": local_kid() if kid == "local" else kid} if kid else None
    return jwt.encode(payload, key, algorithm=algorithm, headers=headers)


def unsigned(payload: dict[str, Any]) -> str:
    """An `alg: none` token (RFC 8725 section 2.1's first attack)."""
    no_key: Any = None
    return jwt.encode(payload, no_key, algorithm="none")


def tamper(token: str, **changes: Any) -> str:
    """The token with its payload changed but the original signature kept."""
    header, payload, signature = token.split(".")
    data = json.loads(jwt.utils.base64url_decode(payload))
    data.update(changes)
    new_payload = jwt.utils.base64url_encode(json.dumps(data).encode()).decode()
    return f"{header}.{new_payload}.{signature}"


def rsa_pem_pair() -> tuple[str, str]:
    """A fresh RSA key pair as (private PEM, public PEM)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


def problem(response: Any) -> dict[str, Any]:
    """The problem+json body of a gateway error (asserting its content type)."""
    assert response["Content-Type"] == "application/problem+json", response["Content-Type"]
    return json.loads(response.content)


def upstream_headers(response: Any) -> dict[str, str]:
    """The request headers the echo upstream received, from its answer."""
    assert response.status_code == 200, response.content
    return json.loads(response.content)["headers"]
