"""The pooled upstream client: keep-alive pools per target, timeouts, retries, balancing.

Plain-HTTP targets go through the lean client (routing/upstream_http.py: pooled sockets,
httptools); HTTPS targets through urllib3's pools (TLS, certificate and name checks), both
behind the outbound address guard and the same strict rules for the upstream's answer.
"""

from __future__ import annotations

import http.client
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable
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
from gateway_project.outbound_guard import guarded_pool_classes
from routing.breaker import FAILURE_STATUSES, CircuitBreakers, Ticket
from routing.clock import epoch_seconds
from routing.dns import DnsExpander
from routing.resilience_errors import NoHealthyTarget
from routing.table import CompiledRoute, CompiledService, CompiledTarget
from routing.target_state import ResilienceState, resilience_state
from routing.upstream_http import PlainResponse, PlainUpstreams, check_forwardable

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


# An upstream's answer, body not yet read: the lean client's (http) or urllib3's (https).
UpstreamAnswer = PlainResponse | urllib3.BaseHTTPResponse


@dataclass
class UpstreamResult:
    """The upstream's answer (body not yet read) and how we got it."""

    response: UpstreamAnswer
    target: CompiledTarget
    attempts: int


class TargetPicker:
    """Picks a service's target: smooth weighted round robin (as nginx) or least requests.

    Only available targets take part: weight above 0 (0 drains), leased when registered, not
    failing health checks, not ejected. None available gives 503 no_healthy_target.
    """

    def __init__(
        self, state: ResilienceState | None = None, dns: DnsExpander | None = None
    ) -> None:
        self._lock = threading.Lock()
        self._current: dict[tuple[str, str], int] = {}
        self._in_flight: dict[str, int] = {}
        self._state = state or resilience_state
        self._dns = dns or DnsExpander()

    def candidates(self, service: CompiledService) -> list[CompiledTarget]:
        """The targets that may take traffic now (DNS names expanded to their addresses)."""
        targets: Iterable[CompiledTarget] = service.targets
        if service.resolves:
            targets = [a for t in service.targets for a in self._dns.expand(t)]
        now = epoch_seconds()
        available = self._state.available
        return [t for t in targets if t.weight > 0 and available(t, now)]

    def pick(self, service: CompiledService, exclude: set[str]) -> CompiledTarget:
        """The next target, skipping `exclude` (already failed) when others remain."""
        available = self.candidates(service)
        if not available:
            if not service.targets:  # a config gap, not an outage: keep the generic code
                raise ServiceUnavailable(f"Service {service.name} has no target to send to.")
            raise NoHealthyTarget(f"Service {service.name} has no healthy target right now.")
        candidates = [t for t in available if t.key not in exclude] or available
        if len(candidates) == 1:
            return candidates[0]
        if service.load_balancing == "least_requests":
            return self._least_requests(candidates)
        total = sum(t.weight for t in candidates)
        with self._lock:
            best, best_weight = candidates[0], None
            for target in candidates:
                key = (service.name, target.key)
                weight = self._current.get(key, 0) + target.weight
                self._current[key] = weight
                if best_weight is None or weight > best_weight:
                    best, best_weight = target, weight
            self._current[(service.name, best.key)] -= total
        return best

    def _least_requests(self, candidates: list[CompiledTarget]) -> CompiledTarget:
        """Fewest in flight per unit of weight; ties go round robin so idle load spreads."""
        with self._lock:
            scores = [self._in_flight.get(t.key, 0) / t.weight for t in candidates]
            low = min(scores)
            tied = [t for t, score in zip(candidates, scores, strict=True) if score == low]
            turn = self._in_flight.get("", 0)
            self._in_flight[""] = turn + 1
            return tied[turn % len(tied)]

    def started(self, target: CompiledTarget) -> None:
        """Count a request to `target` as in flight."""
        with self._lock:
            self._in_flight[target.key] = self._in_flight.get(target.key, 0) + 1

    def finished(self, target: CompiledTarget) -> None:
        """The upstream answered (or failed): the request is no longer in flight."""
        with self._lock:
            left = self._in_flight.get(target.key, 1) - 1
            if left > 0:
                self._in_flight[target.key] = left
            else:
                self._in_flight.pop(target.key, None)

    def in_flight(self, target: CompiledTarget) -> int:
        """Requests in flight to `target` from this process."""
        return self._in_flight.get(target.key, 0)


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

    def __init__(
        self,
        sleep: Callable[[float], None] = time.sleep,
        state: ResilienceState | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._plain = PlainUpstreams(maxsize=settings.GATEWAY_UPSTREAM_POOL_SIZE)
        self._pools = urllib3.PoolManager(
            num_pools=256,
            maxsize=settings.GATEWAY_UPSTREAM_POOL_SIZE,
            block=False,
            retries=False,
        )
        # Refuse link-local and metadata peers on every new connection (routing/upstream_guard.py).
        self._pools.pool_classes_by_scheme = guarded_pool_classes()
        self.state = state or resilience_state
        self.picker = TargetPicker(self.state)
        self.breakers = CircuitBreakers(self.state)
        # The route timeout is one budget over every attempt and backoff; both clocks are
        # injectable so its arithmetic can be tested without waiting on real time.
        self._sleep = sleep
        self._monotonic = monotonic

    def _send_once(
        self, target: CompiledTarget, request: UpstreamRequest, connect: float, read: float
    ) -> UpstreamAnswer:
        body = request.body
        if hasattr(body, "seek") and request.replayable:
            body.seek(0)  # type: ignore[union-attr]
        if target.scheme == "http":
            return self._plain.request(
                host=target.connect_host or target.host,
                port=target.port,
                host_header=target.host_header,
                method=request.method,
                target=target.base_path + request.path,
                headers=request.headers,
                body=body,
                connect_timeout=connect,
                read_timeout=read,
            )
        return self._send_tls(target, request, urllib3.Timeout(connect=connect, read=read))

    def _send_tls(
        self, target: CompiledTarget, request: UpstreamRequest, timeout: urllib3.Timeout
    ) -> urllib3.BaseHTTPResponse:
        pool: Any
        if target.connect_host:
            # One of a DNS name's addresses: connect there, but speak to (and verify) the name.
            extra = {"server_hostname": target.host, "assert_hostname": target.host}
            pool = self._pools.connection_from_host(
                target.connect_host,
                target.port,
                target.scheme,
                pool_kwargs=extra if target.scheme == "https" else None,
            )
        else:
            pool = self._pools.connection_from_host(target.host, target.port, target.scheme)
        headers = dict(request.headers)
        headers["Host"] = target.host_header
        return pool.urlopen(
            request.method,
            target.base_path + request.path,
            body=request.body,
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
        """Send `request` through the route's breaker to one of its targets, with retries."""
        check_forwardable(request.path, request.headers)  # a bad request is not a failure
        ticket = self.breakers.admit(route)  # CircuitOpen here: the upstream is not contacted
        failed = True
        try:
            result = self._send_with_retries(route, request)
            failed = result.response.status in FAILURE_STATUSES
            return result
        except ServiceUnavailable:
            failed = ticket is Ticket.PROBE  # nothing was contacted; only a probe must not pass
            raise
        finally:
            self.breakers.record(route, ticket, failed=failed)

    def _send_with_retries(self, route: CompiledRoute, request: UpstreamRequest) -> UpstreamResult:
        deadline = self._monotonic() + route.timeout_seconds
        may_retry = request.method in IDEMPOTENT_METHODS and request.replayable
        service = route.service
        failed: set[str] = set()
        attempt = 0
        while True:
            attempt += 1
            target = self.picker.pick(service, failed)
            remaining = max(deadline - self._monotonic(), 0.001)
            connect = min(service.connect_timeout_seconds, remaining)
            self.picker.started(target)
            try:
                response = self._send_once(target, request, connect, remaining)
            except HTTPError as error:
                error_class, not_sent = _classify(error)
                logger.info(
                    "upstream %s attempt %d failed: %s", target.url, attempt, type(error).__name__
                )
                self.state.record_attempt(service, target, error=error_class.default_code)
                failed.add(target.key)
                retry_allowed = may_retry or (not_sent and request.replayable)
                if attempt > route.retries or not retry_allowed:
                    raise error_class() from None
                backoff = settings.GATEWAY_RETRY_BACKOFF_MS / 1000 * 2 ** (attempt - 1)
                backoff *= random.uniform(0.5, 1.5)  # noqa: S311 - jitter, not security
                if deadline - self._monotonic() <= backoff:
                    raise error_class() from None
                self._sleep(backoff)
                continue
            finally:
                self.picker.finished(target)
            status_error = (
                f"answered {response.status}" if response.status in FAILURE_STATUSES else None
            )
            self.state.record_attempt(service, target, error=status_error)
            return UpstreamResult(response=response, target=target, attempts=attempt)


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
