"""Periodic usage flushes: one node at a time (a Redis lock), never failing a request."""

from __future__ import annotations

import atexit
import logging
import threading
from contextlib import suppress
from typing import Any

from django.conf import settings
from django.db import close_old_connections

from gateway_project.redis import redis_client, redis_key
from quotas.metrics import USAGE_FLUSH_ERRORS
from quotas.services import usage_flush
from quotas.store import StoreUnavailable

logger = logging.getLogger("gateway.usage")

_LOCK_KEY = "rl:usage:lock"
_LOCK_TTL_SECONDS = 300  # a flusher that dies holding the lock frees it after this


def _flush_lock(wait_seconds: float) -> Any:
    client = redis_client()
    if client is None:
        return None
    return client.lock(
        redis_key(_LOCK_KEY), timeout=_LOCK_TTL_SECONDS, blocking_timeout=wait_seconds
    )


def flush_once(*, wait_seconds: float = 0.0) -> int | None:
    """Flush pending usage if no other node is flushing; rows touched, or None if skipped."""
    lock = _flush_lock(wait_seconds)
    try:
        if lock is not None and not lock.acquire():
            return None
    except Exception as error:  # Redis down: nothing can be claimed either
        raise StoreUnavailable(str(error)) from error
    try:
        return usage_flush()
    finally:
        if lock is not None:
            try:
                lock.release()
            except Exception:  # expired or Redis gone: the TTL frees it anyway
                logger.debug("usage flush lock was already released")


class _Flusher(threading.Thread):
    """A daemon thread flushing usage every GATEWAY_USAGE_FLUSH_INTERVAL."""

    def __init__(self, interval_seconds: float) -> None:
        super().__init__(name="usage-flusher", daemon=True)
        self._interval = interval_seconds
        self._stop_event = threading.Event()

    def run(self) -> None:
        """Flush until stopped; an error is logged and counted, and the loop goes on."""
        while not self._stop_event.wait(self._interval):
            self.flush()

    def flush(self, wait_seconds: float = 0.0) -> None:
        """One guarded flush."""
        try:
            close_old_connections()
            flush_once(wait_seconds=wait_seconds)
        except Exception:
            USAGE_FLUSH_ERRORS.inc()
            logger.warning("usage flush failed; counts stay pending", exc_info=True)
        finally:
            with suppress(Exception):  # the thread must outlive a database outage
                close_old_connections()

    def stop(self) -> None:
        """Stop the loop and flush what is left (at process exit)."""
        self._stop_event.set()
        self.flush(wait_seconds=5.0)  # let another worker's exit flush finish first


_flusher: _Flusher | None = None
_start_lock = threading.Lock()


def start_background_flusher() -> bool:
    """Start this process's flusher thread once (serving processes only); whether it runs."""
    global _flusher
    interval = settings.GATEWAY_USAGE_FLUSH_INTERVAL_MS / 1000
    if interval <= 0 or not settings.GATEWAY_USAGE_TRACKING:
        return False
    with _start_lock:
        if _flusher is None:
            _flusher = _Flusher(interval)
            _flusher.start()
            atexit.register(_flusher.stop)
    return True
