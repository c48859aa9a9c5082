"""Connections a request hands over to a relay once its answer went out (WebSocket upgrades).

A view registers what takes over the client's socket; the gunicorn worker claims it after the
request, stops treating the socket as an HTTP connection and runs the taker in its own thread.
Entries are keyed by the socket object itself, so a reused descriptor never picks up another's.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable

# take_over(client socket, bytes the client sent after its request head)
TakeOver = Callable[[socket.socket, bytes], None]

_pending: dict[int, tuple[socket.socket, TakeOver]] = {}
_lock = threading.Lock()


def hand_off(client: socket.socket, take_over: TakeOver) -> None:
    """Have `take_over` run on `client` once the current answer (the 101 head) has gone out."""
    with _lock:
        _pending[id(client)] = (client, take_over)


def claim(client: socket.socket) -> TakeOver | None:
    """What takes over `client` after its request, if anything (the worker calls this once)."""
    with _lock:
        entry = _pending.pop(id(client), None)
    if entry is None or entry[0] is not client:
        return None
    return entry[1]
