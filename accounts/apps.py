"""The accounts app."""

from __future__ import annotations

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """Django app config for accounts."""

    name = "accounts"
    verbose_name = "Accounts"
