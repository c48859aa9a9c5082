"""Active health checks: probe each service's targets on its interval and publish the verdicts.

`manage.py gateway healthcheck` runs the loop beside gunicorn and publishes to Redis (with a
TTL, so a dead checker's verdicts fade out and every target counts as healthy again). Without
Redis the loop runs as a thread inside the gunicorn worker (see routing.startup).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

import urllib3
from django.conf import settings
from urllib3.exceptions import HTTPError

from gateway_project.outbound_guard import guarded_pool_classes
from routing.dns import DnsExpander
from routing.table import CompiledService, CompiledTarget, route_tables
from routing.target_state import ResilienceState, resilience_state

logger = logging.getLogger("gateway.healthcheck")

_TICK_SECONDS = 0.2
_MIN_STATE_TTL_MS = 10_000


@dataclass(frozen=True)
class ProbeResult:
    """One probe of one target."""

    service: str
    target: CompiledTarget
    ok: bool
    error: str | None
    healthy: bool  # the verdict after the rise/fall thresholds


class HealthChecker:
    """Probes targets concurrently (bounded), judges them, and publishes target health."""

    def __init__(
        self,
        state: ResilienceState | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._state = state or resilience_state
        self._monotonic = monotonic  # injectable so per-service intervals are testable
        self._pools = urllib3.PoolManager(num_pools=128, maxsize=2, retries=False, block=False)
        self._pools.pool_classes_by_scheme = guarded_pool_classes()  # probes are requests too
        self._executor = ThreadPoolExecutor(
            max_workers=settings.GATEWAY_HEALTHCHECK_CONCURRENCY,
            thread_name_prefix="healthcheck",
        )
        self._dns = DnsExpander()
        self._next_due: dict[str, float] = {}
        self._streaks: dict[str, tuple[bool, int]] = {}
        self._verdicts: dict[str, bool] = {}

    def services(self) -> list[CompiledService]:
        """The routed services that have a health check path."""
        seen: dict[str, CompiledService] = {}
        for route in route_tables.get().routes:
            service = route.service
            if service.health_check_path and service.name not in seen:
                seen[service.name] = service
        return list(seen.values())

    def run_once(self, *, force: bool = False) -> list[ProbeResult]:
        """Probe every service whose interval has passed (all with `force`); publish results."""
        services = self.services()
        now = self._monotonic()
        due = [s for s in services if force or self._next_due.get(s.name, 0.0) <= now]
        if not due:
            return []
        jobs: list[tuple[CompiledService, CompiledTarget]] = []
        for service in due:
            self._next_due[service.name] = now + service.health_check_interval_seconds
            for target in service.targets:
                jobs.extend((service, address) for address in self._dns.expand(target))
        futures = [self._executor.submit(self._probe, service, target) for service, target in jobs]
        wait(futures, timeout=settings.GATEWAY_HEALTHCHECK_TIMEOUT_MS / 1000 + 1)
        results: list[ProbeResult] = []
        for (service, target), future in zip(jobs, futures, strict=True):
            ok, error = future.result() if future.done() else (False, "health check timed out")
            healthy = self._judge(target.key, ok)
            results.append(ProbeResult(service.name, target, ok, error, healthy))
        longest = max(s.health_check_interval_seconds for s in services)
        ttl_ms = max(int(longest * 3000), _MIN_STATE_TTL_MS)
        self._state.publish_health(
            {r.target.key: (r.healthy, r.error) for r in results}, ttl_ms=ttl_ms
        )
        return results

    def _probe(self, service: CompiledService, target: CompiledTarget) -> tuple[bool, str | None]:
        timeout = min(
            settings.GATEWAY_HEALTHCHECK_TIMEOUT_MS / 1000, service.health_check_interval_seconds
        )
        kwargs: dict[str, Any] = {}
        host = target.connect_host or target.host
        if target.connect_host and target.scheme == "https":
            kwargs["pool_kwargs"] = {"server_hostname": target.host, "assert_hostname": target.host}
        try:
            pool: Any = self._pools.connection_from_host(host, target.port, target.scheme, **kwargs)
            response = pool.urlopen(
                "GET",
                target.base_path + service.health_check_path,
                headers={"Host": target.host_header, "User-Agent": "gateway-healthcheck"},
                retries=False,
                redirect=False,
                assert_same_host=False,
                timeout=urllib3.Timeout(connect=timeout, read=timeout),
                preload_content=True,
            )
        except HTTPError as error:
            return False, f"health check: {_describe(error)}"
        if 200 <= response.status < 400:
            return True, None
        return False, f"health check answered {response.status}"

    def _judge(self, key: str, ok: bool) -> bool:
        """Apply the thresholds: N failures in a row to turn unhealthy, M successes to recover."""
        last_ok, streak = self._streaks.get(key, (ok, 0))
        streak = streak + 1 if last_ok == ok else 1
        self._streaks[key] = (ok, streak)
        verdict = self._verdicts.get(key, True)
        if ok and streak >= settings.GATEWAY_HEALTHCHECK_HEALTHY_AFTER:
            verdict = True
        elif not ok and streak >= settings.GATEWAY_HEALTHCHECK_UNHEALTHY_AFTER:
            verdict = False
        if verdict != self._verdicts.get(key, True):
            logger.warning("target %s is now %s", key, "healthy" if verdict else "unhealthy")
        self._verdicts[key] = verdict
        return verdict

    def run_forever(
        self,
        stop: threading.Event,
        *,
        on_round: Callable[[list[ProbeResult]], None] | None = None,
        on_tick: Callable[[], None] | None = None,
    ) -> None:
        """Probe until `stop` is set; a failing round is logged and the loop goes on.

        `on_tick` runs after every pass, results or not: the worker's heartbeat.
        """
        while not stop.is_set():
            try:
                results = self.run_once()
            except Exception:
                # The database may be down before any table was compiled: try again later.
                logger.warning("health check round failed", exc_info=True)
                results = []
            if results and on_round is not None:
                on_round(results)
            if on_tick is not None:
                on_tick()
            stop.wait(_TICK_SECONDS)

    def close(self) -> None:
        """Stop the probe threads and close connections."""
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._pools.clear()


def _describe(error: HTTPError) -> str:
    reason = getattr(error, "reason", None) or error
    # NewConnectionError first: urllib3 makes it a subclass of its connect timeout.
    if isinstance(reason, urllib3.exceptions.NewConnectionError | ConnectionError):
        return "connection failed"
    if isinstance(reason, TimeoutError | urllib3.exceptions.TimeoutError):
        return "timed out"
    return f"invalid answer ({type(reason).__name__})"


_in_process_started = threading.Event()


def start_in_process_checker() -> bool:
    """Start the checker as a daemon thread in this process, once; False if already running."""
    if _in_process_started.is_set():
        return False
    _in_process_started.set()
    checker = HealthChecker()
    thread = threading.Thread(
        target=checker.run_forever, args=(threading.Event(),), name="healthcheck", daemon=True
    )
    thread.start()
    logger.info("health checks run inside this process (no Redis to share them through)")
    return True
