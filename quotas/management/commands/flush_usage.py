"""`manage.py flush_usage`: move pending usage counts from Redis into the database."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from quotas.flusher import flush_once
from quotas.store import StoreUnavailable


class Command(BaseCommand):
    """Flush usage counts now (for a scheduler, next to or instead of the serving processes)."""

    help = "Move pending per-consumer, per-route, per-day usage counts into the database."

    def add_arguments(self, parser: CommandParser) -> None:
        """--wait: how long to wait for another node's flush to finish."""
        parser.add_argument(
            "--wait", type=float, default=30.0, help="Seconds to wait for the flush lock."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        """Flush once and say how many usage rows were written."""
        try:
            touched = flush_once(wait_seconds=options["wait"])
        except StoreUnavailable as error:
            raise CommandError(f"The limit store is unavailable: {error}") from None
        if touched is None:
            raise CommandError("Another node is flushing usage right now; try again later.")
        self.stdout.write(f"Flushed usage: {touched} row(s) written.")
