"""A clock that moves only when a test moves it (for the routing clock and injected monotonics)."""

from __future__ import annotations

import threading


class FrozenClock:
    """Callable like time.time()/time.monotonic(); `advance` moves it, nothing else does."""

    def __init__(self, start: float) -> None:
        self._now = start
        self._lock = threading.Lock()  # proxied requests may read it from another thread

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock forward (usable as an injected `sleep`)."""
        assert seconds >= 0, "a clock never goes back"
        with self._lock:
            self._now += seconds
