"""A client connection's socket whose mode changes cost a system call only when they change it.

Why. A kept-alive request went through six `ioctl(FIONBIO)` calls on its client socket:
gthread makes the socket blocking before serving, the worker then bounds its reads
(GATEWAY_CLIENT_TIMEOUT), gunicorn's body drain sets and restores a timeout even when there is
no body, and the look for the next request makes it non-blocking again. CPython makes a system
call for each, whether or not anything changes, and releases the GIL around it: with eight
request threads per worker, every release is a point where another thread takes the GIL and
this request waits for it back.

Here "blocking" means "blocking within the connection's read bound" (what the worker sets right
after gthread's `setblocking(True)` anyway), a change to the timeout the socket already has is
skipped, and `read_now` reads what has arrived without changing the mode at all. For the
same reason `sendall` tries a plain write before CPython's poll-then-send.
"""

from __future__ import annotations

import os
import socket
from typing import Any


class ClientSocket(socket.socket):
    """A socket that skips mode changes that change nothing (module docstring)."""

    __slots__ = ("bound",)

    bound: float | None  # the read bound "blocking" stands for; None: no bound

    @classmethod
    def adopt(cls, sock: socket.socket, bound: float | None) -> ClientSocket:
        """Take over an accepted socket (same descriptor, same blocking state)."""
        timeout = sock.gettimeout()
        adopted = cls(sock.family, sock.type, sock.proto, fileno=sock.detach())
        adopted.bound = bound
        # The new object starts at the default timeout; the descriptor kept its state.
        socket.socket.settimeout(adopted, timeout)
        return adopted

    def settimeout(self, value: float | None) -> None:
        """Set the timeout, unless the socket has it already."""
        if value != self.gettimeout():
            super().settimeout(value)

    def setblocking(self, flag: bool) -> None:
        """Blocking within the read bound (flag True) or non-blocking, unless already so."""
        self.settimeout(self.bound if flag else 0.0)

    def sendall(self, data: Any, flags: int = 0) -> None:
        """Send all of `data`: first without waiting, then within the timeout for the rest.

        CPython polls before every send on a socket with a timeout, although an answer almost
        always fits the send buffer at once; a plain write() tries first (the descriptor is
        non-blocking in any timeout mode) and only what did not fit waits.
        """
        if flags or self.gettimeout() is None:
            super().sendall(data, flags)
            return
        view = memoryview(data).cast("B")
        try:
            sent = os.write(self.fileno(), view)
        except BlockingIOError:
            sent = 0
        if sent < len(view):
            super().sendall(view[sent:])

    def read_now(self, size: int) -> bytes:
        """What has arrived, at most `size` bytes, never waiting; BlockingIOError when nothing.

        In any timeout mode the descriptor is non-blocking at the OS level (CPython keeps it
        so and waits in poll() itself), so a plain read() returns at once; socket.recv() would
        poll for the whole timeout first. Without a timeout the descriptor blocks: MSG_DONTWAIT.
        """
        if self.gettimeout() is None:
            return self.recv(size, socket.MSG_DONTWAIT)
        return os.read(self.fileno(), size)
