"""`manage.py console_roles`: create or refresh the gateway-operator and gateway-viewer groups."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from audit.roles import ensure_console_groups


class Command(BaseCommand):
    """Idempotent; `migrate` runs the same setup after every migration."""

    help = "Create or refresh the console's admin-role groups (gateway-operator, gateway-viewer)."

    def handle(self, *args: Any, **options: Any) -> None:
        """Print each group with its permission count."""
        for name, count in ensure_console_groups().items():
            self.stdout.write(f"{name}: {count} permissions")
