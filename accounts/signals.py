"""Keep credential caches honest: revocation, deactivation and role changes apply at once."""

from __future__ import annotations

from typing import Any

from django.core.signals import setting_changed
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_delete, pre_save

from accounts.credential_cache import api_key_cache_key, cache_drop, oauth_cache_key
from audit.authority import forget_actors


def _drop_api_key(sender: Any, instance: Any, **kwargs: Any) -> None:
    from accounts.services import forget_api_key_use

    cache_drop(api_key_cache_key(instance.key_hash))
    forget_api_key_use(instance.pk)


def _drop_client_keys(client_id: int) -> None:
    from accounts.models import ApiKey, ClientApplication

    hashes = ApiKey.objects.filter(client_id=client_id).values_list("key_hash", flat=True)
    cache_drop(*(api_key_cache_key(key_hash) for key_hash in hashes))
    for link in ClientApplication.objects.filter(client_id=client_id):
        _drop_application_tokens(link.application_id)


def _drop_application_tokens(application_id: int) -> None:
    from oauth2_provider.models import get_access_token_model

    checksums = (
        get_access_token_model()
        .objects.filter(application_id=application_id, user__isnull=True)
        .values_list("token_checksum", flat=True)
    )
    cache_drop(*(oauth_cache_key(checksum) for checksum in checksums))


def _drop_user_tokens(user_id: int) -> None:
    from oauth2_provider.models import get_access_token_model

    checksums = (
        get_access_token_model()
        .objects.filter(user_id=user_id)
        .values_list("token_checksum", flat=True)
    )
    cache_drop(*(oauth_cache_key(checksum) for checksum in checksums))


def _client_changed(sender: Any, instance: Any, **kwargs: Any) -> None:
    _drop_client_keys(instance.pk)


def _client_roles_changed(sender: Any, instance: Any, action: str, **kwargs: Any) -> None:
    if action in ("post_add", "post_remove", "post_clear"):
        _drop_client_keys(instance.pk)


def _user_roles_changed(sender: Any, instance: Any, action: str, **kwargs: Any) -> None:
    if action in ("post_add", "post_remove", "post_clear"):
        _drop_user_tokens(instance.pk)
        _forget_m2m_actors(instance, kwargs)


def _forget_m2m_actors(instance: Any, kwargs: dict[str, Any]) -> None:
    """Drop the management level of the users on either side of a roles/groups change."""
    from accounts.models import User

    if isinstance(instance, User):
        forget_actors(instance.pk)
    elif kwargs.get("pk_set"):
        forget_actors(*kwargs["pk_set"])
    else:  # a cleared role or group: every holder may have changed
        forget_actors(*User.objects.values_list("pk", flat=True))


def _user_groups_changed(sender: Any, instance: Any, action: str, **kwargs: Any) -> None:
    if action in ("post_add", "post_remove", "post_clear"):
        _forget_m2m_actors(instance, kwargs)


def _user_row_changed(sender: Any, instance: Any, **kwargs: Any) -> None:
    forget_actors(instance.pk)


def _group_changed(sender: Any, instance: Any, **kwargs: Any) -> None:
    forget_actors(*instance.user_set.values_list("pk", flat=True))


def _drop_role_holders(role_id: int) -> None:
    from accounts.models import ApiClient, User

    for client_id in ApiClient.objects.filter(roles=role_id).values_list("pk", flat=True):
        _drop_client_keys(client_id)
    user_ids = list(User.objects.filter(roles=role_id).values_list("pk", flat=True))
    for user_id in user_ids:
        _drop_user_tokens(user_id)
    forget_actors(*user_ids)


def _role_permissions_changed(sender: Any, instance: Any, action: str, **kwargs: Any) -> None:
    if action in ("post_add", "post_remove", "post_clear"):
        _drop_role_holders(instance.pk)


def _role_deleted(sender: Any, instance: Any, **kwargs: Any) -> None:
    _drop_role_holders(instance.pk)


def _link_changed(sender: Any, instance: Any, **kwargs: Any) -> None:
    _drop_application_tokens(instance.application_id)


def _drop_access_token(sender: Any, instance: Any, **kwargs: Any) -> None:
    cache_drop(oauth_cache_key(instance.token_checksum))


def _user_saved(sender: Any, instance: Any, **kwargs: Any) -> None:
    if kwargs.get("raw") or instance.is_active:
        return
    from accounts.services import user_tokens_revoke

    # At once, inside the same transaction: a deactivated user keeps no live token.
    user_tokens_revoke(user=instance)


def _public_application_saved(sender: Any, instance: Any, **kwargs: Any) -> None:
    if instance.client_type == instance.CLIENT_PUBLIC:
        # A public client cannot keep a secret, so it never has one (console, API, import
        # alike); unhashed, or the column would hold a hash of the empty string.
        instance.client_secret = ""
        instance.hash_client_secret = False


def _settings_changed(setting: str, **kwargs: Any) -> None:
    if setting.startswith(("JWT_", "GATEWAY_JWT_")):
        from accounts.jwt_auth import jwt_verifier
        from accounts.tokens import token_backend

        jwt_verifier.cache_clear()
        token_backend.cache_clear()


def connect() -> None:
    """Connect the cache-dropping and revoking receivers."""
    from oauth2_provider.models import get_access_token_model, get_application_model

    from accounts.models import ApiClient, ApiKey, ClientApplication, Role, User

    access_token = get_access_token_model()
    post_save.connect(_drop_api_key, sender=ApiKey, dispatch_uid="auth-apikey-save")
    post_delete.connect(_drop_api_key, sender=ApiKey, dispatch_uid="auth-apikey-del")
    post_save.connect(_client_changed, sender=ApiClient, dispatch_uid="auth-client-save")
    m2m_changed.connect(
        _client_roles_changed, sender=ApiClient.roles.through, dispatch_uid="auth-client-roles"
    )
    m2m_changed.connect(
        _user_roles_changed, sender=User.roles.through, dispatch_uid="auth-user-roles"
    )
    m2m_changed.connect(
        _role_permissions_changed,
        sender=Role.permissions.through,
        dispatch_uid="auth-role-permissions",
    )
    pre_delete.connect(_role_deleted, sender=Role, dispatch_uid="auth-role-del")
    post_save.connect(_link_changed, sender=ClientApplication, dispatch_uid="auth-link-save")
    post_delete.connect(_link_changed, sender=ClientApplication, dispatch_uid="auth-link-del")
    pre_save.connect(
        _public_application_saved, sender=get_application_model(), dispatch_uid="auth-app-public"
    )
    post_save.connect(_drop_access_token, sender=access_token, dispatch_uid="auth-token-save")
    post_delete.connect(_drop_access_token, sender=access_token, dispatch_uid="auth-token-del")
    post_save.connect(_user_saved, sender=User, dispatch_uid="auth-user-save")
    # The management API's cached level of a token's user (audit.authority).
    from django.contrib.auth.models import Group

    post_save.connect(_user_row_changed, sender=User, dispatch_uid="authority-user-save")
    post_delete.connect(_user_row_changed, sender=User, dispatch_uid="authority-user-del")
    m2m_changed.connect(
        _user_groups_changed, sender=User.groups.through, dispatch_uid="authority-user-groups"
    )
    post_save.connect(_group_changed, sender=Group, dispatch_uid="authority-group-save")
    pre_delete.connect(_group_changed, sender=Group, dispatch_uid="authority-group-del")
    setting_changed.connect(_settings_changed, dispatch_uid="auth-settings")
