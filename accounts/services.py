"""Writes: API keys, JWT pairs, logout, OAuth2 applications and revocation on deactivation."""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
import time
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone
from rest_framework_simplejwt.exceptions import TokenError

from accounts.errors import InvalidCredentials
from accounts.models import ApiClient, ApiKey, ClientApplication, User
from accounts.selectors import user_roles_and_permissions
from accounts.tokens import GatewayRefreshToken

logger = logging.getLogger("gateway.auth")

API_KEY_SECRET_BYTES = 32  # 256 bits from the OS's CSPRNG
# last_used_at is written at most this often per key and process: a proxied request served
# from the credential cache writes nothing, and a busy key costs one UPDATE a minute.
LAST_USED_INTERVAL_SECONDS = 60.0
_last_used_written: dict[int, float] = {}
_last_used_lock = threading.Lock()


def api_key_use_record(*, key_id: int) -> None:
    """Record that the key was used (`last_used_at`), at most once a minute per key and
    process; a failure is logged, never raised (bookkeeping must not fail a request)."""
    now = time.monotonic()
    with _last_used_lock:
        last = _last_used_written.get(key_id)
        if last is not None and now - last < LAST_USED_INTERVAL_SECONDS:
            return
        _last_used_written[key_id] = now
    try:
        ApiKey.objects.filter(pk=key_id).update(last_used_at=timezone.now())
    except Exception:
        logger.warning("could not record last use of API key %s", key_id)


def forget_api_key_use(key_id: int) -> None:
    """Let the next use of the key record last_used_at again (tests, key changes)."""
    with _last_used_lock:
        _last_used_written.pop(key_id, None)


def api_key_create(
    *, client: ApiClient, name: str, expires_at: datetime | None = None
) -> tuple[ApiKey, str]:
    """Create a key for `client`; returns the row and the key itself, which is never stored."""
    prefix = secrets.token_hex(4)
    while ApiKey.objects.filter(prefix=prefix).exists():  # 1 in 4 billion; still, stay unique
        prefix = secrets.token_hex(4)
    raw_key = f"gwk_{prefix}_{secrets.token_urlsafe(API_KEY_SECRET_BYTES)}"
    api_key = ApiKey.objects.create(
        client=client,
        name=name,
        prefix=prefix,
        key_hash=hashlib.sha256(raw_key.encode()).hexdigest(),
        expires_at=expires_at,
    )
    logger.info("API key %s created for client %s", prefix, client.name)
    return api_key, raw_key


def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    """Revoke a key; it is refused from the next request on (the cache is dropped by signal)."""
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
        logger.info("API key %s of client %s revoked", api_key.prefix, api_key.client.name)
    return api_key


def _claims_for(user: User) -> dict[str, Any]:
    roles, permissions = user_roles_and_permissions(user=user)
    return {
        "sub": str(user.pk),
        "name": user.get_username(),
        "roles": sorted(roles),
        "permissions": sorted(permissions),
    }


def token_pair_issue(*, user: User) -> dict[str, str]:
    """A new access and refresh token for `user`, with their roles and permissions as claims."""
    refresh = GatewayRefreshToken.for_user(user)
    for claim, value in _claims_for(user).items():
        refresh[claim] = value
    access = refresh.access_token
    access.set_iat(at_time=refresh.current_time)  # one clock reading for the pair: exp - iat exact
    return {"access": str(access), "refresh": str(refresh)}


def _valid_refresh(raw_refresh: str) -> GatewayRefreshToken:
    try:
        return GatewayRefreshToken(raw_refresh)
    except TokenError as error:
        raise InvalidCredentials(f"The refresh token is not valid ({error}).") from None


@transaction.atomic
def token_pair_refresh(*, raw_refresh: str) -> dict[str, str]:
    """Rotate a refresh token: the old one is blacklisted, the claims re-read from the database."""
    refresh = _valid_refresh(raw_refresh)
    user = User.objects.filter(pk=refresh.get("sub")).first()
    if user is None or not user.is_active:
        raise InvalidCredentials("The account is inactive.")
    refresh.blacklist()
    return token_pair_issue(user=user)


def refresh_token_blacklist(*, raw_refresh: str) -> None:
    """Log out: the refresh token can no longer be used."""
    _valid_refresh(raw_refresh).blacklist()


@transaction.atomic
def user_tokens_revoke(*, user: User) -> int:
    """Revoke every refresh token (JWT and OAuth2) and OAuth2 access token of `user`."""
    from oauth2_provider.models import get_access_token_model, get_refresh_token_model
    from rest_framework_simplejwt.token_blacklist.models import (
        BlacklistedToken,
        OutstandingToken,
    )

    outstanding = OutstandingToken.objects.filter(user=user, blacklistedtoken__isnull=True)
    blacklisted = BlacklistedToken.objects.bulk_create(
        [BlacklistedToken(token=token) for token in outstanding]
    )
    refresh_tokens = get_refresh_token_model().objects.filter(user=user, revoked__isnull=True)
    for refresh_token in refresh_tokens:
        refresh_token.revoke()
    # Deleting each row (not a bulk delete) sends post_delete, which drops the token cache.
    access_tokens = list(get_access_token_model().objects.filter(user=user))
    for access_token in access_tokens:
        access_token.delete()
    return len(blacklisted) + len(access_tokens)


def oauth_application_create(
    *,
    name: str,
    client_type: str,
    authorization_grant_type: str,
    redirect_uris: str = "",
    client: ApiClient | None = None,
    user: User | None = None,
) -> tuple[Any, str | None]:
    """Register an OAuth2 application; returns it and its client secret (shown only once).

    A public application (a browser or native app, which cannot keep a secret) gets none: None.
    """
    from oauth2_provider.generators import generate_client_secret
    from oauth2_provider.models import get_application_model

    model: Any = get_application_model()
    secret = None if client_type == model.CLIENT_PUBLIC else generate_client_secret()
    application = model(
        name=name,
        client_type=client_type,
        authorization_grant_type=authorization_grant_type,
        redirect_uris=redirect_uris,
        client_secret=secret or "",
        user=user,
    )
    application.full_clean()
    application.save()
    if client is not None:
        ClientApplication.objects.create(application=application, client=client)
    return application, secret
