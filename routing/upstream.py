"""The pooled upstream client: one urllib3 pool per target, timeouts, retries, balancing."""

from __future__ import annotations

import http.client
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

import urllib3
from django.conf import settings
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)

from gateway_project.errors import (
    GatewayError,
    ServiceUnavailable,
    UpstreamInvalidResponse,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from routing.table import CompiledRoute, CompiledService, CompiledTarget

logger = logging.getLogger("gateway.upstream")

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})


@dataclass
class UpstreamRequest:
    """A request ready to send: everything but the target."""

    method: str
    path: str  # path and query, starting with '/'
    headers: dict[str, str]
    body: IO[bytes] | bytes | None
    replayable: bool  # whether the body can be sent again on a retry


@dataclass
class UpstreamResult:
    """The upstream's answer (body not yet read) and how we got it."""

    response: urllib3.BaseHTTPResponse
    target: CompiledTarget
    attempts: int


class TargetPicker:
    """Smooth weighted round robin over a service's targets (as nginx does); weight 0 drains."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._current: dict[tuple[str, str], int] = {}

    def pick(self, service: CompiledService, exclude: set[str]) -> CompiledTarget:
        """The next target, skipping `exclude` (already failed) when others remain."""
        candidates = [t for t in service.targets if t.weight > 0 and t.url not in exclude]
        if not candidates:
            candidates = [t for t in service.targets if t.weight > 0]
        if not candidates:
            raise ServiceUnavailable(f"Service {service.name} has no target to send to.")
        if len(candidates) == 1:
            return candidates[0]
        total = sum(t.weight for t in candidates)
        with self._lock:
            best, best_weight = candidates[0], None
            for target in candidates:
                key = (service.name, target.url)
                weight = self._current.get(key, 0) + target.weight
                self._current[key] = weight
                if best_weight is None or weight > best_weight:
                    best, best_weight = target, weight
            self._current[(service.name, best.url)] -= total
        return best


def _classify(error: Exception) -> tuple[type[GatewayError], bool]:
    """Map a urllib3 failure to (the gateway error, whether the request surely wasn't sent)."""
    if isinstance(error, NewConnectionError):  # checked first: it subclasses ConnectTimeoutError
        return UpstreamUnavailable, True
    if isinstance(error, ConnectTimeoutError):
        return UpstreamTimeout, True
    if isinstance(error, ReadTimeoutError):
        return UpstreamTimeout, False
    if isinstance(error, ProtocolError):
        cause = error.args[1] if len(error.args) > 1 else None
        if isinstance(cause, http.client.HTTPException) and not isinstance(
            cause, http.client.RemoteDisconnected
        ):
            return UpstreamInvalidResponse, False
        return UpstreamUnavailable, False
    return UpstreamUnavailable, False


class UpstreamClient:
    """Sends requests to upstream targets over per-process connection pools."""

    def __init__(self, sleep: Callable[[float], None] = time.sleep) -> None:
        self._pools = urllib3.PoolManager(
            num_pools=256,
            maxsize=settings.GATEWAY_UPSTREAM_POOL_SIZE,
            block=False,
            retries=False,
        )
        self._picker = TargetPicker()
        self._sleep = sleep

    def _send_once(
        self, target: CompiledTarget, request: UpstreamRequest, timeout: urllib3.Timeout
    ) -> urllib3.BaseHTTPResponse:
        pool: Any = self._pools.connection_from_host(target.host, target.port, target.scheme)
        headers = dict(request.headers)
        headers["Host"] = target.host_header
        body = request.body
        if hasattr(body, "seek") and request.replayable:
            body.seek(0)  # type: ignore[union-attr]
        return pool.urlopen(
            request.method,
            target.base_path + request.path,
            body=body,
            headers=headers,
            retries=False,
            redirect=False,
            assert_same_host=False,
            timeout=timeout,
            preload_content=False,
            decode_content=False,
            chunked=False,
        )

    def send(self, route: CompiledRoute, request: UpstreamRequest) -> UpstreamResult:
        """Send `request` to one of the route's targets, retrying as the route allows."""
        deadline = time.monotonic() + route.timeout_seconds
        may_retry = request.method in IDEMPOTENT_METHODS and request.replayable
        failed: set[str] = set()
        attempt = 0
        while True:
            attempt += 1
            target = self._picker.pick(route.service, failed)
            remaining = deadline - time.monotonic()
            timeout = urllib3.Timeout(
                connect=min(route.service.connect_timeout_seconds, max(remaining, 0.001)),
                read=max(remaining, 0.001),
            )
            try:
                response = self._send_once(target, request, timeout)
                return UpstreamResult(response=response, target=target, attempts=attempt)
            except HTTPError as error:
                error_class, not_sent = _classify(error)
                logger.info(
                    "upstream %s attempt %d failed: %s", target.url, attempt, type(error).__name__
                )
                failed.add(target.url)
                retry_allowed = may_retry or (not_sent and request.replayable)
                if attempt > route.retries or not retry_allowed:
                    raise error_class() from None
                backoff = settings.GATEWAY_RETRY_BACKOFF_MS / 1000 * 2 ** (attempt - 1)
                backoff *= random.uniform(0.5, 1.5)  # noqa: S311 - jitter, not security
                if deadline - time.monotonic() <= backoff:
                    raise error_class() from None
                self._sleep(backoff)


_client: UpstreamClient | None = None
_client_lock = threading.Lock()


def upstream_client() -> UpstreamClient:
    """This process's upstream client (created on first use, after any fork)."""
    global _client
    if _client is None:
        with _client_lock:
            if _client is None:
                _client = UpstreamClient()
    return _client
