"""Drain state shared by the gunicorn master and its workers: readiness fails while draining."""

from __future__ import annotations

import mmap

# One byte of anonymous shared memory, mapped when gunicorn.conf.py imports this module in the
# master, before it forks: the master flips it on SIGTERM and every worker sees the change.
_STATE = mmap.mmap(-1, 1)


def begin_drain() -> None:
    """Mark this node as draining: /health/ready answers 503 from now on."""
    _STATE[0] = 1


def end_drain() -> None:
    """Clear the draining mark (for tests and in-process servers)."""
    _STATE[0] = 0


def is_draining() -> bool:
    """Whether this node is shutting down and should receive no new traffic."""
    return _STATE[0] == 1
