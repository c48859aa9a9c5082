"""Reads: effective roles and permissions, and the principal behind each kind of credential."""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass

from django.db.models import Prefetch

from accounts.credential_cache import (
    api_key_cache_key,
    cache_get,
    cache_invalid,
    cache_principal,
    oauth_cache_key,
)
from accounts.errors import InvalidCredentials
from accounts.identity import Principal
from accounts.jwt_auth import jwt_verifier
from accounts.models import ApiClient, ApiKey, Role, User
from accounts.oauth_scopes import FULL_SCOPE, narrowed_roles_and_permissions

logger = logging.getLogger("gateway.auth")

API_KEY_PATTERN = re.compile(r"^gwk_([0-9a-f]{8})_([A-Za-z0-9_-]{43})$")


@dataclass(frozen=True, slots=True)
class ApiKeyMatch:
    """A valid API key's principal and its row's id (for recording its use elsewhere)."""

    principal: Principal
    key_id: int | None


def _names(roles: Iterable[Role]) -> tuple[frozenset[str], frozenset[str]]:
    role_names: set[str] = set()
    permissions: set[str] = set()
    for role in roles:
        role_names.add(role.name)
        permissions.update(permission.name for permission in role.permissions.all())
    return frozenset(role_names), frozenset(permissions)


def user_roles_and_permissions(*, user: User) -> tuple[frozenset[str], frozenset[str]]:
    """A user's role names and effective permissions (the union of the roles' permissions)."""
    return _names(user.roles.prefetch_related("permissions"))


def client_roles_and_permissions(*, client: ApiClient) -> tuple[frozenset[str], frozenset[str]]:
    """An API client's role names and effective permissions."""
    return _names(client.roles.prefetch_related("permissions"))


def principal_for_user(*, user: User, credential: str) -> Principal:
    """The principal of a user (session, token issue, OAuth2 token on their behalf)."""
    roles, permissions = user_roles_and_permissions(user=user)
    return Principal(str(user.pk), user.get_username(), roles, permissions, "user", credential)


def principal_for_client(*, client: ApiClient, credential: str) -> Principal:
    """The principal of an API client; its name is its id, so limits and quotas follow it."""
    roles, permissions = client_roles_and_permissions(client=client)
    return Principal(client.name, client.name, roles, permissions, "client", credential)


def principal_for_jwt(*, token: str) -> Principal:
    """The principal of a bearer JWT, from its claims alone (no database query)."""
    return jwt_verifier().verify(token)


def principal_for_api_key(*, raw_key: str) -> Principal:
    """The API client behind an X-API-Key; InvalidCredentials when unknown, expired or revoked."""
    return api_key_match(raw_key=raw_key).principal


def api_key_match(*, raw_key: str) -> ApiKeyMatch:
    """The valid API key behind an X-API-Key (a read: from the credential cache, else one
    SELECT); InvalidCredentials when unknown, expired or revoked. Recording the key's use is
    accounts.services.api_key_use_record's job."""
    match = API_KEY_PATTERN.match(raw_key)
    if match is None:
        raise InvalidCredentials("The API key is malformed.")
    digest = hashlib.sha256(raw_key.encode()).hexdigest()
    cache_key = api_key_cache_key(digest)
    cached = cache_get(cache_key)
    if cached is not None:
        if cached.invalid or cached.principal is None:
            raise InvalidCredentials("The API key is not valid.")
        if cached.expires_at is not None and time.time() >= cached.expires_at:
            raise InvalidCredentials("The API key has expired.")
        return ApiKeyMatch(cached.principal, cached.object_id)
    api_key = (
        ApiKey.objects.select_related("client")
        .prefetch_related(
            Prefetch("client__roles", queryset=Role.objects.prefetch_related("permissions"))
        )
        .filter(prefix=match.group(1))
        .first()
    )
    # The prefix only finds the row; the secret is checked in constant time against its hash.
    if api_key is None or not hmac.compare_digest(api_key.key_hash, digest):
        cache_invalid(cache_key)
        raise InvalidCredentials("The API key is not valid.")
    if api_key.revoked_at is not None or not api_key.client.is_active:
        cache_invalid(cache_key)
        raise InvalidCredentials("The API key has been revoked.")
    expires_at = api_key.expires_at.timestamp() if api_key.expires_at else None
    if expires_at is not None and time.time() >= expires_at:
        raise InvalidCredentials("The API key has expired.")
    roles, permissions = _names(api_key.client.roles.all())
    name = api_key.client.name
    principal = Principal(name, name, roles, permissions, "client", "api_key")
    cache_principal(cache_key, principal, expires_at=expires_at, object_id=api_key.pk)
    return ApiKeyMatch(principal, api_key.pk)


def principal_for_oauth_token(*, raw_token: str) -> Principal:
    """The user or client behind an OAuth2 access token; InvalidCredentials when not live."""
    from oauth2_provider.models import get_access_token_model

    checksum = hashlib.sha256(raw_token.encode()).hexdigest()
    cache_key = oauth_cache_key(checksum)
    cached = cache_get(cache_key)
    if cached is not None:
        if cached.invalid or cached.principal is None:
            raise InvalidCredentials("The access token is not valid.")
        if cached.expires_at is not None and time.time() >= cached.expires_at:
            raise InvalidCredentials("The access token has expired.")
        return cached.principal
    token = (
        get_access_token_model()
        .objects.select_related("application", "user", "application__gateway_link__client")
        .filter(token_checksum=checksum)
        .first()
    )
    if token is None:
        cache_invalid(cache_key)
        raise InvalidCredentials("The access token is not valid.")
    if token.is_expired():
        raise InvalidCredentials("The access token has expired.")
    principal = _oauth_principal(token)
    if principal is None:
        cache_invalid(cache_key)
        raise InvalidCredentials("The access token's owner is inactive.")
    cache_principal(cache_key, principal, expires_at=token.expires.timestamp(), object_id=token.pk)
    return principal


def _oauth_principal(token: object) -> Principal | None:
    """The principal of a live token: its user, else its application's API client."""
    user = getattr(token, "user", None)
    application = getattr(token, "application", None)
    if user is not None:
        if not user.is_active:
            return None
        base = principal_for_user(user=user, credential="oauth2")
    elif application is not None:
        link = getattr(application, "gateway_link", None)
        if link is not None:
            if not link.client.is_active:
                return None
            base = principal_for_client(client=link.client, credential="oauth2")
        else:
            name = application.name or application.client_id
            base = Principal(
                application.client_id, name, frozenset(), frozenset(), "client", "oauth2"
            )
    else:
        return None
    scopes = set(str(getattr(token, "scope", "")).split())
    if FULL_SCOPE in scopes:
        return base
    # Scopes narrow a token to some of its roles and permissions; they never add any.
    owner = (
        user
        if user is not None
        else getattr(getattr(application, "gateway_link", None), "client", None)
    )
    held = (
        {
            role.name: frozenset(p.name for p in role.permissions.all())
            for role in owner.roles.prefetch_related("permissions")
        }
        if owner is not None
        else {}
    )
    roles, permissions = narrowed_roles_and_permissions(held, scopes)
    return Principal(base.id, base.username, roles, permissions, base.kind, base.credential)


def effective_permissions(*, user: User) -> list[str]:
    """A user's effective permissions, sorted (for the console and /users/me)."""
    return sorted(user_roles_and_permissions(user=user)[1])
