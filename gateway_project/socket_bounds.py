"""Blocking sockets whose every send and read the kernel bounds (SO_SNDTIMEO/SO_RCVTIMEO).

CPython runs a socket with a timeout in non-blocking mode and calls poll() before each send
and read, two system calls where one does, and the GIL changes hands around each. A blocking
socket with kernel bounds makes one call, and still never waits longer than the bound.
"""

from __future__ import annotations

import socket
import struct
import time

# What a blocking call raises when its kernel bound passes (EAGAIN).
TIMED_OUT = (TimeoutError, BlockingIOError)
_SEND_CHUNK = 256 * 1024


def bound_each_call(sock: socket.socket, seconds: float) -> None:
    """Bound each send and read on the blocking socket `sock` by `seconds`, in the kernel."""
    # At least 1 us: a zero timeval would mean no bound at all.
    whole, micros = divmod(max(round(seconds * 1_000_000), 1), 1_000_000)
    timeval = struct.pack("@ll", whole, micros)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)


def send_within(sock: socket.socket, data: bytes, seconds: float) -> None:
    """Send all of `data` within `seconds` in total, as a Python socket timeout bounds
    `sendall`: SO_SNDTIMEO bounds each send() (and on a unix socket only each wait for
    buffer space within it), so a peer reading a little now and then would otherwise stretch
    a large write without end. At most `_SEND_CHUNK` bytes per send(), the deadline checked
    between them; one send() in the usual case.
    """
    deadline = time.monotonic() + seconds
    view = memoryview(data)
    while view:
        view = view[sock.send(view[:_SEND_CHUNK]) :]
        if view and time.monotonic() >= deadline:
            raise TimeoutError("write timed out")
