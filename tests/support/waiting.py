"""Bounded polling for tests: wait for a condition instead of sleeping a fixed time and hoping."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T | None],
    *,
    timeout: float = 10.0,
    interval: float = 0.05,
    message: str | Callable[[], str] = "",
) -> T:
    """Poll `predicate` until it returns a truthy value (returned), or fail after `timeout` s.

    The timeout is a generous upper bound for a slow, shared CI machine, not a measurement:
    a passing test returns as soon as the condition holds.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            detail = message() if callable(message) else message
            name = getattr(predicate, "__name__", repr(predicate))
            raise AssertionError(
                f"condition {name} still false after {timeout:g}s (last value {value!r})"
                + (f": {detail}" if detail else "")
            )
        time.sleep(interval)
