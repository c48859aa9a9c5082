"""Kept-alive connections spread evenly over the workers: a worker ahead of the others lets them accept.

Why. Every worker polls the same listening socket and whichever wakes first accepts. Clients
keep their connections alive, so the spread at connect time decides the load for as long as the
connections last; with 32 connections over 3 workers it came out 14 / 12 / 6, and the requests
on the fullest worker waited 2.3x as long as those on the emptiest (they share its GIL; the
kernel shares the CPUs between the workers). That was gateway_full's p99 in `make bench`.

How. Each worker publishes its open-connection count in a small shared memory table made by
the master before it forks (one slot per worker, given by the master in `pre_fork`, freed in
`child_exit`). A worker with more than `least + SLACK` connections, the least being that of any
other serving worker, stops accepting for PAUSE_SECONDS, so that one of the others takes the
connection. After MAX_PAUSES pauses in a row without accepting it takes the next connection
whatever the counts say: a connection never waits long on a worker that is stuck or gone
(nginx's `accept_disabled` idea, without its mutex).
"""

from __future__ import annotations

import mmap
import os
from typing import Any

# Slots in the table; workers beyond it (GATEWAY_WORKERS > 64) accept as gunicorn does.
MAX_SLOTS = 64
# A worker this many connections ahead of the least busy one leaves the next to the others.
SLACK = 1
# How long such a worker stops accepting, and how many such pauses in a row before it takes the
# next connection anyway (on a busy machine a less busy worker's loop may need a few ms to run).
PAUSE_SECONDS = 0.005
MAX_PAUSES = 10

# Per slot: the serving worker's pid (0: free, or not serving yet) and its open connections.
_FIELDS = 2


class ConnectionTable:
    """Each serving worker's open-connection count, in memory shared by the master's children."""

    def __init__(self, slots: int = MAX_SLOTS) -> None:
        # An anonymous MAP_SHARED mapping: the workers forked after this see one table.
        self._memory = mmap.mmap(-1, slots * _FIELDS * 8)
        self._cells = memoryview(self._memory).cast("q")
        self.slots = slots

    def assign(self, taken: set[int]) -> int | None:
        """A free slot for a worker about to be forked (the master, which is single-threaded)."""
        for slot in range(self.slots):
            if slot not in taken:
                self.release(slot)
                return slot
        return None

    def release(self, slot: int) -> None:
        """The worker in `slot` stopped serving: it no longer counts for the others."""
        self._cells[slot * _FIELDS] = 0
        self._cells[slot * _FIELDS + 1] = 0

    def publish(self, slot: int, connections: int) -> None:
        """Record this worker's open connections (and that it serves)."""
        self._cells[slot * _FIELDS + 1] = connections
        self._cells[slot * _FIELDS] = os.getpid()

    def least_of_others(self, slot: int) -> int | None:
        """The fewest open connections of any other serving worker; None when there is none."""
        cells = self._cells
        least: int | None = None
        for other in range(self.slots):
            if other == slot or not cells[other * _FIELDS]:
                continue
            count = cells[other * _FIELDS + 1]
            if least is None or count < least:
                least = count
        return least

    def ahead(self, slot: int, connections: int) -> bool:
        """Whether a worker with `connections` should leave the next connection to the others."""
        least = self.least_of_others(slot)
        return least is not None and connections > least + SLACK


# Mapped when gunicorn.conf.py imports this module in the master, before it forks (as drain.py).
_TABLE = ConnectionTable()


def table() -> ConnectionTable:
    """The table this gunicorn master and its workers share."""
    return _TABLE


def assign_slot(server: Any, worker: Any) -> None:
    """gunicorn's `pre_fork`: give the new worker a slot no other live worker holds."""
    taken = {getattr(w, "balance_slot", None) for w in server.WORKERS.values()}
    worker.balance_slot = table().assign({slot for slot in taken if slot is not None})


def release_slot(server: Any, worker: Any) -> None:
    """gunicorn's `child_exit`: the worker's slot no longer counts."""
    slot = getattr(worker, "balance_slot", None)
    if slot is not None:
        table().release(slot)
