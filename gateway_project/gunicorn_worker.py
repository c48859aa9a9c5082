"""The gthread worker, stopping without resetting connections that wait in the listen queue."""

from __future__ import annotations

import select
from typing import Any

from gunicorn.workers.gthread import ThreadWorker

# A stopping worker takes at most this many queued connections per listener (the kernel's
# listen backlog is 2048 by default), so the loop is bounded even under a connection flood.
_MAX_QUEUED_ACCEPTS = 4096


class DrainingThreadWorker(ThreadWorker):
    """gthread worker that, when it stops accepting, takes the queued connections and closes.

    Stock gthread stops polling its listeners on SIGTERM but keeps them open until its last
    request is done; connections the kernel queues meanwhile are reset when the socket finally
    closes, although no application code ever saw them. This worker accepts what is queued
    (and serves it, with `Connection: close`) and closes its listeners at once, so a client is
    either served or refused, which a load balancer retries safely on another node.
    """

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
