"""Connections a request hands over to a relay once its answer went out (WebSocket upgrades).

A view registers the upstream side of an upgrade; the gunicorn worker claims it after the
request, stops treating the client's socket as an HTTP connection and relays the two sockets in
its event loop (gateway_project/ws_relay.py). Entries are keyed by the socket object itself, so
a reused descriptor never picks up another's. Only the gateway's worker takes hand-overs: it
says so with `enable()`; under any other server `available()` is False and views refuse.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class Upgrade:
    """The upstream side of an upgraded connection: its socket and the bytes that followed
    its 101 head in the same reads."""

    upstream: socket.socket
    from_upstream: bytes

    def discard(self) -> None:
        """Close the upstream socket (the upgrade is not relayed after all)."""
        with contextlib.suppress(OSError):
            self.upstream.close()


_pending: dict[int, tuple[socket.socket, Upgrade]] = {}
_lock = threading.Lock()
_enabled = False


def enable() -> None:
    """This process's server relays handed-over connections (the gateway's gunicorn worker)."""
    global _enabled
    _enabled = True


def available() -> bool:
    """Whether a hand-over registered now would be relayed."""
    return _enabled


def hand_off(client: socket.socket, upgrade: Upgrade) -> None:
    """Relay `client` with `upgrade` once the current answer (the 101 head) has gone out."""
    with _lock:
        _pending[id(client)] = (client, upgrade)


def claim(client: socket.socket) -> Upgrade | None:
    """What takes over `client` after its request, if anything (the worker calls this once)."""
    with _lock:
        entry = _pending.pop(id(client), None)
    if entry is None:
        return None
    if entry[0] is not client:  # a dead socket's entry, its descriptor number reused
        entry[1].discard()
        return None
    return entry[1]
