"""Helpers for the observability tests: captured log lines, metric readings, test steps."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prometheus_client import REGISTRY

from accounts.identity import Principal
from routing.pipeline import RequestContext


class LineCapture(logging.Handler):
    """Keeps the formatted messages a logger emits."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    def records(self) -> list[dict[str, Any]]:
        """The lines parsed as JSON (a background writer's message holds several)."""
        return [json.loads(line) for message in self.lines for line in message.splitlines()]


@contextmanager
def captured(logger_name: str) -> Iterator[LineCapture]:
    """Every line the logger `logger_name` writes inside the block."""
    logger = logging.getLogger(logger_name)
    handler = LineCapture()
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def sample(name: str, **labels: str) -> float:
    """The current value of one sample in this process's registry (0 when absent)."""
    value = REGISTRY.get_sample_value(name, labels)
    return value or 0.0


def authenticate_alice(self: object, ctx: RequestContext) -> None:
    """Test stand-in for the authenticate step's `run`: the caller is always user alice."""
    ctx.principal = Principal(
        id="42",
        username="alice",
        roles=frozenset(),
        permissions=frozenset(),
        kind="user",
        credential="jwt",
    )
