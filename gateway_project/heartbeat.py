"""A heartbeat file for loops without an HTTP port (the health-check worker).

The loop calls `beat(path)` once per round; the liveness probe runs
`python -m gateway_project.heartbeat PATH MAX_AGE_SECONDS`, which exits 0 while the file was
touched within MAX_AGE_SECONDS and 1 otherwise. A process that is running but stuck (a
deadlock, a hung round) stops touching the file, so the kubelet restarts it; "the process
exists" alone would not show that. No Django import: the probe runs in milliseconds.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path


def beat(path: str | Path) -> None:
    """Mark the loop alive now (creates the file on the first beat)."""
    Path(path).touch()


def is_fresh(path: str | Path, max_age_seconds: float, *, now: float | None = None) -> bool:
    """Whether `path` was touched within the last `max_age_seconds`."""
    try:
        touched = os.stat(path).st_mtime
    except OSError:
        return False
    return (now if now is not None else time.time()) - touched <= max_age_seconds


def main(argv: list[str]) -> int:
    """Entry point: exit status 0 while the heartbeat is fresh, 1 when stale or missing."""
    if len(argv) != 3:
        sys.stderr.write("usage: python -m gateway_project.heartbeat PATH MAX_AGE_SECONDS\n")
        return 2
    try:
        max_age = float(argv[2])
    except ValueError:
        sys.stderr.write(f"MAX_AGE_SECONDS {argv[2]!r} is not a number\n")
        return 2
    if is_fresh(argv[1], max_age):
        return 0
    sys.stderr.write(f"heartbeat {argv[1]} missing or older than {max_age:g}s\n")
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
