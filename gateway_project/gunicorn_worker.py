"""The gthread worker, stopping without resetting connections that wait in the listen queue."""

from __future__ import annotations

import errno
import os
import select
from typing import Any

from gunicorn import util
from gunicorn.workers.gthread import TConn, ThreadWorker

from gateway_project import server_errors

# A stopping worker takes at most this many queued connections per listener (the kernel's
# listen backlog is 2048 by default), so the loop is bounded even under a connection flood.
_MAX_QUEUED_ACCEPTS = 4096


def _client_read_timeout() -> float | None:
    """GATEWAY_CLIENT_TIMEOUT in seconds (set by gunicorn.conf.py), None when 0 (no bound)."""
    seconds = float(os.environ.get("GATEWAY_CLIENT_TIMEOUT_SECONDS", "0") or 0)
    return seconds if seconds > 0 else None


class TimedConnection(TConn):
    """A client connection whose reads (and writes) in a worker thread are time-bounded.

    Stock gthread blocks a thread on a client that sent part of a request and then stalls
    (slowloris): enough such clients hold every thread. With a bound, a stalled read fails
    after GATEWAY_CLIENT_TIMEOUT and the thread is free again.
    """

    read_timeout: float | None = None

    def wait_for_data(self, timeout: float) -> bool:
        """Wait for a new connection's first bytes no longer than the read bound either."""
        if self.read_timeout is not None:
            timeout = min(timeout, self.read_timeout)
        return bool(super().wait_for_data(timeout))

    def init(self) -> None:
        """Set up the connection as gthread does, then bound its blocking reads."""
        super().init()
        # Re-applied on every request: gthread makes the socket blocking (no timeout) first.
        self.sock.settimeout(self.read_timeout)


class DrainingThreadWorker(ThreadWorker):
    """gthread worker that, when it stops accepting, takes the queued connections and closes.

    Stock gthread stops polling its listeners on SIGTERM but keeps them open until its last
    request is done; connections the kernel queues meanwhile are reset when the socket finally
    closes, although no application code ever saw them. This worker accepts what is queued
    (and serves it, with `Connection: close`) and closes its listeners at once, so a client is
    either served or refused, which a load balancer retries safely on another node.
    """

    def accept(self, listener: Any) -> None:
        """Accept a connection as gthread does, as a TimedConnection."""
        try:
            client_sock, client_addr = listener.accept()
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        client_sock.setblocking(True)
        conn = TimedConnection(self.cfg, client_sock, client_addr, listener.getsockname())
        conn.read_timeout = _client_read_timeout()
        self.enqueue_req(conn)

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        """Answer a request gunicorn refused with problem+json instead of its HTML page."""
        problem = server_errors.problem_for(exc)
        if server_errors.is_client_error(exc):
            # The class name, not str(exc): the message may quote the request's own bytes.
            self.log.warning("Invalid request from %s: %s", (addr or ("",))[0], type(exc).__name__)
        else:
            self.log.exception("Error handling request")
        try:
            util.write_nonblock(client, server_errors.problem_bytes(problem))
        except Exception:
            self.log.debug("Failed to send error message.")

    def set_accept_enabled(self, enabled: bool) -> None:
        """Stop or start polling the listeners; when stopping for good, drain and close them."""
        super().set_accept_enabled(enabled)
        if not enabled and not self.alive:
            for listener in self.sockets:
                self._take_queued(listener)
                listener.close()

    def _take_queued(self, listener: Any) -> None:
        for _ in range(_MAX_QUEUED_ACCEPTS):
            try:
                readable, _, _ = select.select([listener], [], [], 0)
            except (OSError, ValueError):
                return
            if not readable:
                return
            try:
                self.accept(listener)
            except OSError:  # e.g. out of file descriptors: leave the rest to the kernel
                return
