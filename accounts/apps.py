"""The accounts app."""

from __future__ import annotations

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """Django app config for accounts."""

    name = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        """Connect the signals that keep credential caches in step with revocations."""
        from accounts import schema, signals  # noqa: F401 - schema registers OpenAPI extensions

        signals.connect()
        _hide_otp_admin()
        _register_with_audit()


def _register_with_audit() -> None:
    """Our models' places in the who-may-manage table; roles, permissions and clients recorded.
    Registered in dependency order: a permission before the roles that grant it."""
    from oauth2_provider.models import Application

    from accounts.models import ApiClient, ApiKey, ClientApplication, Permission, Role, User
    from audit import registry

    registry.tracked(Permission, section="permissions")
    registry.tracked(Role, section="roles")
    registry.tracked(ApiClient, section="clients")
    registry.governed(User, section="users")
    registry.governed(ApiKey, section="api-keys")
    registry.governed(ClientApplication, section="oauth-applications")
    registry.governed(Application, section="oauth-applications")


def _hide_otp_admin() -> None:
    """Unregister django-otp's own device pages: they show TOTP keys and recovery codes and let
    an admin create a device for someone else. /admin/mfa/devices/ lists devices without them.
    Runs after the admin's autodiscover (django.contrib.admin's ready() comes first)."""
    from django.contrib import admin
    from django_otp.plugins.otp_static.models import StaticDevice
    from django_otp.plugins.otp_totp.models import TOTPDevice

    for model in (TOTPDevice, StaticDevice):
        if admin.site.is_registered(model):
            admin.site.unregister(model)
