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
