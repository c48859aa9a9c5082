"""The management app: the management REST API, the console's own pages and the docs portal."""

from __future__ import annotations

from django.apps import AppConfig


class ManagementConfig(AppConfig):
    """Everything an admin or developer uses, above the apps it manages."""

    name = "management"
    verbose_name = "Management"
