"""Which fork of the process this is, for per-thread state that must not cross a fork.

A thread's state made before a fork (a Redis connection, a block of random bytes) belongs to the
parent; the forked child's copy of that thread must make its own. `generation` is bumped in
every forked child, and is compared per use instead of os.getpid(), which is a system call.
"""

from __future__ import annotations

import os

generation = 0


def _after_fork_in_child() -> None:
    global generation
    generation += 1


os.register_at_fork(after_in_child=_after_fork_in_child)
