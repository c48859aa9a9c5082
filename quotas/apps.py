"""The quotas app."""

from __future__ import annotations

from django.apps import AppConfig


class QuotasConfig(AppConfig):
    """Django app config for quotas."""

    name = "quotas"
    verbose_name = "Quotas"
