"""Blocking sockets whose every send and read the kernel bounds (SO_SNDTIMEO/SO_RCVTIMEO).

CPython runs a socket with a timeout in non-blocking mode and calls poll() before each send
and read, two system calls where one does, and the GIL changes hands around each. A blocking
socket with kernel bounds makes one call, and still never waits longer than the bound.
"""

from __future__ import annotations

import socket
import struct

# What a blocking call raises when its kernel bound passes (EAGAIN).
TIMED_OUT = (TimeoutError, BlockingIOError)


def bound_each_call(sock: socket.socket, seconds: float) -> None:
    """Bound each send and read on the blocking socket `sock` by `seconds`, in the kernel."""
    # At least 1 us: a zero timeval would mean no bound at all.
    whole, micros = divmod(max(round(seconds * 1_000_000), 1), 1_000_000)
    timeval = struct.pack("@ll", whole, micros)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)
