"""The wall clock that routing's timed state reads: breakers, leases, ejections, node check-ins.

One place to read "now" so tests can freeze and advance it instead of sleeping: every open-until,
lease end and ejection end is compared with `epoch_seconds()`, and stored (in Redis too) in it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

_source: list[Callable[[], float]] = [time.time]


def epoch_seconds() -> float:
    """Now, in seconds since the epoch (time.time() unless a test set another source)."""
    return _source[0]()


def use_source(source: Callable[[], float] | None) -> None:
    """Read the wall clock from `source` from now on; None goes back to time.time() (tests)."""
    _source[0] = source or time.time
