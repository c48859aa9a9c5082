"""DNS targets: a host name with several addresses (a headless service) is balanced over all."""

from __future__ import annotations

import dataclasses
import logging
import socket
import threading
import time
from collections.abc import Callable

from django.conf import settings

from routing.table import CompiledTarget

logger = logging.getLogger("gateway.dns")

Resolve = Callable[[str, int], list[str]]


def resolve_addresses(host: str, port: int) -> list[str]:
    """The host's IPv4 addresses (else its IPv6 ones), sorted and without duplicates."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    v4 = sorted({str(info[4][0]) for info in infos if info[0] == socket.AF_INET})
    return v4 or sorted({str(info[4][0]) for info in infos if info[0] == socket.AF_INET6})


class DnsExpander:
    """Per-process cache of name -> addresses, re-resolved every GATEWAY_DNS_REFRESH."""

    def __init__(
        self,
        resolve: Resolve = resolve_addresses,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._resolve = resolve
        self._monotonic = monotonic  # injectable so the refresh interval is testable
        self._cache: dict[CompiledTarget, tuple[float, tuple[CompiledTarget, ...]]] = {}
        self._lock = threading.Lock()

    def expand(self, target: CompiledTarget) -> tuple[CompiledTarget, ...]:
        """One target per address of `target`'s host (the target itself for one address)."""
        if not target.resolve:
            return (target,)
        entry = self._cache.get(target)
        now = self._monotonic()
        if entry is not None and now < entry[0]:
            return entry[1]
        if entry is not None and not self._lock.acquire(blocking=False):
            return entry[1]  # another thread re-resolves; the previous addresses will do
        if entry is None:
            self._lock.acquire()
        try:
            return self._refresh(target, entry)
        finally:
            self._lock.release()

    def _refresh(
        self,
        target: CompiledTarget,
        entry: tuple[float, tuple[CompiledTarget, ...]] | None,
    ) -> tuple[CompiledTarget, ...]:
        refresh = settings.GATEWAY_DNS_REFRESH_MS / 1000
        expanded: tuple[CompiledTarget, ...]
        try:
            addresses = self._resolve(target.host, target.port)
        except OSError as error:
            # Keep the last answer; without one, let the connection attempt resolve (and fail).
            logger.warning("resolving %s failed: %s", target.host, error)
            expanded = entry[1] if entry else (target,)
            self._cache[target] = (self._monotonic() + min(refresh, 5.0), expanded)
            return expanded
        if len(addresses) <= 1:
            expanded = (target,)
        else:
            expanded = tuple(
                dataclasses.replace(target, connect_host=address, key=f"{target.key}@{address}")
                for address in addresses
            )
        self._cache[target] = (self._monotonic() + refresh, expanded)
        return expanded

    def reset(self) -> None:
        """Forget every resolution (tests)."""
        with self._lock:
            self._cache.clear()
