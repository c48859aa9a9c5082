"""Fixtures for the observability tests: captured log lines and metric readings."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import REGISTRY


class LineCapture(logging.Handler):
    """Keeps the formatted messages a logger emits."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    def records(self) -> list[dict[str, Any]]:
        """The lines parsed as JSON."""
        return [json.loads(line) for line in self.lines]


@pytest.fixture
def access_log() -> Iterator[LineCapture]:
    """Every line the `gateway.access` logger writes during the test."""
    logger = logging.getLogger("gateway.access")
    handler = LineCapture()
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


@pytest.fixture
def error_log() -> Iterator[LineCapture]:
    """Every line the `gateway.errors` logger writes during the test."""
    logger = logging.getLogger("gateway.errors")
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
