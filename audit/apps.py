"""The audit app: history of config changes, rollback, and the console's admin roles."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _stamp(sender: Any, history_instance: Any, **kwargs: Any) -> None:
    from audit.changesets import stamp

    stamp(history_instance)


def _groups(sender: Any, **kwargs: Any) -> None:
    from audit.roles import ensure_console_groups

    ensure_console_groups()


class AuditConfig(AppConfig):
    """Stamps history rows with their change set; keeps the admin-role groups up to date."""

    name = "audit"
    verbose_name = "History"

    def ready(self) -> None:
        """Place the console groups in the table; connect the history stamp and group setup."""
        from django.contrib.auth.models import Group
        from simple_history.signals import pre_create_historical_record

        from audit import registry

        # The console's admin roles are Django groups (audit/roles.py): superusers' to change.
        registry.governed(Group, section="console-roles")
        pre_create_historical_record.connect(_stamp, dispatch_uid="audit-stamp")
        # After every `migrate` (so `make run` and test databases), once per app: the last call
        # sees every app's model permissions, whatever the order of INSTALLED_APPS.
        post_migrate.connect(_groups, dispatch_uid="audit-groups")
