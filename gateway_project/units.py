"""Parsing and formatting of the human units used in settings and config files."""

from __future__ import annotations

import re

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*$")
_DURATION_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}
_SIZE = re.compile(r"^\s*(\d+)\s*(B|KB|KiB|MB|MiB|GB|GiB)?\s*$")
_SIZE_BYTES = {
    None: 1,
    "B": 1,
    "KB": 1000,
    "KiB": 1024,
    "MB": 1000**2,
    "MiB": 1024**2,
    "GB": 1000**3,
    "GiB": 1024**3,
}

DURATION_HINT = "use a number with a unit: 500ms, 30s, 5m or 1h"
SIZE_HINT = "use bytes or a number with a unit: 512KiB, 10MiB"


def parse_duration_ms(value: object) -> int:
    """Return the duration `value` (`500ms`, `30s`, `5m`, `1h`) in whole milliseconds."""
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError(f"{value!r} is not a duration; {DURATION_HINT}")
    match = _DURATION.match(value)
    if not match:
        raise ValueError(f"{value!r} is not a duration; {DURATION_HINT}")
    number, unit = match.groups()
    milliseconds = float(number) * _DURATION_MS[unit]
    if milliseconds != int(milliseconds):
        raise ValueError(f"{value!r} is finer than a millisecond; {DURATION_HINT}")
    return int(milliseconds)


def format_duration_ms(milliseconds: int) -> str:
    """Return the shortest exact spelling of a duration (`30000` -> `30s`)."""
    for unit in ("h", "m", "s"):
        size = _DURATION_MS[unit]
        if milliseconds and milliseconds % size == 0:
            return f"{milliseconds // size}{unit}"
    return f"{milliseconds}ms"


def parse_size(value: object) -> int:
    """Return the size `value` (`1048576`, `512KiB`, `10MiB`) in bytes."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a size; {SIZE_HINT}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"{value!r} is negative; {SIZE_HINT}")
        return value
    match = _SIZE.match(str(value))
    if not match:
        raise ValueError(f"{value!r} is not a size; {SIZE_HINT}")
    number, unit = match.groups()
    return int(number) * _SIZE_BYTES[unit]
