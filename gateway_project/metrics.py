"""Prometheus metrics: definitions, per-route label children, and the scrape registry.

Labels come only from route and service names (and small fixed sets such as the status
class), so cardinality is bounded by the config, never by what clients send.  Under gunicorn,
`PROMETHEUS_MULTIPROC_DIR` (set by gunicorn.conf.py) makes every worker write its samples to
shared files that one scrape merges.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

# The labels used when a request has no route: the proxy found none, or the gateway's own
# endpoints (console, health, metrics) answered.
UNMATCHED = "(unmatched)"
INTERNAL = "(internal)"
NO_SERVICE = "(none)"

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
BREAKER_STATES = {"closed": 0, "half_open": 1, "open": 2}
# Rate-limit policy names come from the limiter; cap them so a bug there cannot explode series.
_MAX_POLICIES = 32

REQUESTS = Counter(
    "gateway_requests",
    "Requests answered, by route, service, method and status class.",
    ["route", "service", "method", "status_class"],
)
REQUEST_DURATION = Histogram(
    "gateway_request_duration_seconds",
    "Time from receiving a request to the last byte of the answer.",
    ["route", "service"],
    buckets=LATENCY_BUCKETS,
)
UPSTREAM_DURATION = Histogram(
    "gateway_upstream_duration_seconds",
    "Time waiting for the upstream's answer headers (retries included).",
    ["route", "service"],
    buckets=LATENCY_BUCKETS,
)
IN_FLIGHT = Gauge(
    "gateway_requests_in_flight",
    "Requests being served right now, across all workers.",
    multiprocess_mode="livesum",
)
LIMIT_REJECTIONS = Counter(
    "gateway_limit_rejections",
    "Requests refused with 429 by a rate limit or quota, by route and policy.",
    ["route", "policy"],
)
UPSTREAM_ERRORS = Counter(
    "gateway_upstream_errors",
    "Requests that failed at the upstream, by service and kind (timeout, unavailable...).",
    ["service", "kind"],
)
SERVER_ERRORS = Counter(
    "gateway_server_errors",
    "5xx answers the gateway produced itself (not relayed from an upstream), by error code.",
    ["code"],
)
BREAKER_STATE = Gauge(
    "gateway_circuit_breaker_state",
    "Circuit breaker state per service: 0 closed, 1 half-open, 2 open.",
    ["service"],
    multiprocess_mode="livemax",
)
CONFIG_VERSION = Gauge(
    "gateway_config_version",
    "The config version applied (the highest any live worker has compiled).",
    multiprocess_mode="livemax",
)
OBSERVABILITY_FAILURES = Counter(
    "gateway_observability_failures",
    "Access log, metrics or tracing steps that failed (the request was served regardless).",
    ["part"],
)
ACCESS_LOG_DROPPED = Counter(
    "gateway_access_log_dropped",
    "Access log lines dropped because the worker's log queue was full (the request was served).",
)
CACHE_LOOKUPS = Counter(
    "gateway_cache_lookups",
    "Response cache lookups on routes with `cache`, by route and result (hit, miss).",
    ["route", "result"],
)
VALIDATION_REJECTIONS = Counter(
    "gateway_validation_rejections",
    "Requests refused by `validate` (400, or 404 operation_not_found), by route.",
    ["route"],
)
IP_REJECTIONS = Counter(
    "gateway_ip_rejections",
    "Requests refused with 403 ip_forbidden by `ip_allow` / `ip_deny`, by route.",
    ["route"],
)
WEBSOCKETS_OPEN = Gauge(
    "gateway_websockets_open",
    "WebSocket connections being relayed right now, across all workers.",
    multiprocess_mode="livesum",
)

_STATUS_CLASSES = {n: f"{n}xx" for n in range(1, 6)}


def status_class(status: int) -> str:
    """'2xx' for 200..299 and so on; 'other' outside 100..599."""
    return _STATUS_CLASSES.get(status // 100, "other")


class DeferredUpdates:
    """Per-request metric updates applied by a background thread, off the request's path.

    Under gunicorn (gunicorn.conf.py starts it per worker) a request thread only appends the
    update to a deque (no lock, no wake-up); every `interval` seconds the thread applies what
    accumulated, counter increments summed per series, so a busy route writes its shared
    multiprocess file once per interval rather than once per request. Past `capacity` pending
    updates, or before start (tests, management commands), updates apply at once: none is lost.
    """

    def __init__(self, capacity: int = 100_000, interval: float = 0.05) -> None:
        self._pending: deque[tuple[Any, float, bool]] = deque()
        self._capacity = capacity
        self._interval = interval
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def apply(self, update: Callable[[float], None], value: float, *, additive: bool) -> None:
        """Apply `update(value)` soon (`additive`: updates of one series may be summed)."""
        if self._thread is None or len(self._pending) >= self._capacity:
            update(value)
            return
        self._pending.append((update, value, additive))

    def start(self) -> None:
        """Defer updates to a background thread from now on."""
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="metrics", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Apply what is pending and go back to applying at once."""
        thread, self._thread = self._thread, None
        self._stopping.set()
        if thread is not None:
            thread.join(timeout)
        self.flush()

    def _run(self) -> None:
        while not self._stopping.wait(self._interval):
            self.flush()

    def flush(self) -> None:
        """Apply every pending update now."""
        sums: dict[Any, float] = {}
        take = self._pending.popleft
        while self._pending:
            update, value, additive = take()
            try:
                if additive:
                    sums[update] = sums.get(update, 0.0) + value
                else:
                    update(value)
            except Exception:
                count_failure("metrics")
        for update, total in sums.items():
            if not total:  # nothing changed (a gauge's +1 and -1)
                continue
            try:
                update(total)
            except Exception:
                count_failure("metrics")


deferred = DeferredUpdates()


class DeferredHistogram:
    """A histogram child whose observations go through `deferred`."""

    __slots__ = ("_observe",)

    def __init__(self, child: Any) -> None:
        self._observe = child.observe

    def observe(self, value: float) -> None:
        """Record one observation (applied by the metrics thread when it runs)."""
        deferred.apply(self._observe, value, additive=False)


class RouteSeries:
    """One route's label children, created on first use so the hot path only increments."""

    __slots__ = ("duration", "requests", "route", "service", "upstream_duration")

    def __init__(self, route: str, service: str) -> None:
        self.route = route
        self.service = service
        self.duration = DeferredHistogram(REQUEST_DURATION.labels(route, service))
        self.upstream_duration = DeferredHistogram(UPSTREAM_DURATION.labels(route, service))
        self.requests: dict[tuple[str, int], Any] = {}

    def count(self, method: str, status: int) -> None:
        """Count one answered request."""
        key = (method, status)
        increment = self.requests.get(key)
        if increment is None:
            label_method = method if method in KNOWN_METHODS else "OTHER"
            child = REQUESTS.labels(self.route, self.service, label_method, status_class(status))
            increment = self.requests[key] = child.inc
        deferred.apply(increment, 1, additive=True)


class SeriesCache:
    """RouteSeries by (route label, service label); cleared when it grows past any sane config."""

    def __init__(self, limit: int = 2000) -> None:
        self._series: dict[tuple[str, str], RouteSeries] = {}
        self._lock = threading.Lock()
        self._limit = limit

    def get(self, route: str, service: str) -> RouteSeries:
        """The series for this route and service."""
        key = (route, service)
        series = self._series.get(key)
        if series is None:
            with self._lock:
                if len(self._series) >= self._limit:
                    self._series.clear()
                series = self._series.setdefault(key, RouteSeries(route, service))
        return series


route_series = SeriesCache()
_route_labels: dict[int, tuple[Any, str, str]] = {}


def route_labels(route: Any) -> tuple[str, str]:
    """(route label, service label) of a compiled route, computed once per route object."""
    entry = _route_labels.get(id(route))
    if entry is None or entry[0] is not route:
        if len(_route_labels) > 4096:  # old tables' routes, after many config changes
            _route_labels.clear()
        entry = (route, route.name, route.service.name)
        _route_labels[id(route)] = entry
    return entry[1], entry[2]


_policies: dict[str, Any] = {}
_config_noted: list[float] = [-1.0, 0.0]  # version, monotonic time of the last look


def count_limit_rejection(route: str, verdict: str | None) -> None:
    """Count a 429 by the first policy named in the limiter's `limited:<policies>` verdict."""
    kind, _, policies = (verdict or "unknown").partition(":")
    policy = (policies or kind).split(",", 1)[0][:40] or "unknown"
    key = f"{route}\x00{policy}"
    child = _policies.get(key)
    if child is None:
        if len(_policies) >= _MAX_POLICIES * 64:
            _policies.clear()
        child = LIMIT_REJECTIONS.labels(route, policy)
        _policies[key] = child
    child.inc()


def count_upstream_error(service: str, kind: str) -> None:
    """Count one upstream failure of `kind` (timeout, unavailable, invalid_response...)."""
    UPSTREAM_ERRORS.labels(service, kind).inc()


def count_server_error(code: str) -> None:
    """Count one 5xx produced by the gateway itself."""
    SERVER_ERRORS.labels(code).inc()


_in_flight_inc = IN_FLIGHT.inc


def change_in_flight(delta: int) -> None:
    """A request started (+1) or ended (-1). Through `deferred`: the two of a request that
    starts and ends within one interval cancel out, and the shared file is not written."""
    deferred.apply(_in_flight_inc, delta, additive=True)


def count_failure(part: str) -> None:
    """Count a failed observability step; never raises."""
    # The counter of failures must not fail the request either.
    with contextlib.suppress(Exception):
        OBSERVABILITY_FAILURES.labels(part).inc()


def set_breaker_state(*, service: str, state: str) -> None:
    """Publish a service's circuit breaker state ('closed', 'half_open' or 'open')."""
    BREAKER_STATE.labels(service).set(BREAKER_STATES[state])


def note_config_version(current: Callable[[], int], *, every_seconds: float = 1.0) -> None:
    """Publish the config version this worker serves, looking at most once a second."""
    now = time.monotonic()
    if now - _config_noted[1] < every_seconds:
        return
    _config_noted[1] = now
    version = current()
    if version != _config_noted[0]:
        _config_noted[0] = version
        CONFIG_VERSION.set(version)


def multiprocess_dir() -> str | None:
    """The directory gunicorn workers share their samples through, when set."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def scrape() -> bytes:
    """The Prometheus text exposition of every worker's metrics.

    This worker's pending updates are applied first; another worker's land within its
    flush interval (50 ms), so a scrape may trail the very latest requests by that much.
    """
    deferred.flush()
    if multiprocess_dir():
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)


def count_cache_lookup(route: str, *, hit: bool) -> None:
    """Count one response-cache lookup on `route`."""
    CACHE_LOOKUPS.labels(route, "hit" if hit else "miss").inc()


def count_validation_rejection(route: str) -> None:
    """Count one request refused by `validate` on `route`."""
    VALIDATION_REJECTIONS.labels(route).inc()


def count_ip_rejection(route: str) -> None:
    """Count one request refused by the IP rules of `route`."""
    IP_REJECTIONS.labels(route).inc()


def websocket_opened() -> None:
    """A WebSocket relay started."""
    WEBSOCKETS_OPEN.inc()


def websocket_closed() -> None:
    """A WebSocket relay ended."""
    WEBSOCKETS_OPEN.dec()
