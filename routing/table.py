"""The compiled, in-memory route table and its per-process holder."""

from __future__ import annotations

import ipaddress
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from django.conf import settings

from gateway_project.errors import MethodNotAllowed, RouteNotFound
from routing.compiled_policies import (
    CachePolicy,
    CorsPolicy,
    HeaderRules,
    IpRules,
    compile_cache,
    compile_cors,
    compile_header_rules,
    compile_ip_rules,
)
from routing.configfile.spec import RouteSpec
from routing.nodes import record_check_in
from routing.paths import CompiledPattern, compile_pattern

logger = logging.getLogger("gateway.config")

_PERIOD_SECONDS = {"second": 1, "minute": 60, "hour": 3600}
# How long a request waits for another thread's refresh of a stale table before serving it.
_REFRESH_WAIT_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class CompiledTarget:
    """One upstream address, split once so forwarding never parses URLs."""

    url: str
    scheme: str
    host: str
    port: int
    base_path: str  # "" or "/prefix" without a trailing slash
    weight: int
    key: str = ""  # "service url": the key of its health, ejection and lease state
    connect_host: str = ""  # the address to connect to, when DNS gave several ("" = host)
    registered: bool = False  # added by the registry: only in rotation while leased
    lease_until: float = 0.0  # epoch seconds, the lease as compiled from the database
    resolve: bool = False  # a DNS name the balancer expands into all its addresses

    @classmethod
    def from_url(
        cls,
        url: str,
        weight: int,
        *,
        service: str = "",
        registered: bool = False,
        lease_until: float = 0.0,
    ) -> CompiledTarget:
        """Split `url` into the parts the upstream client needs."""
        parts = urlsplit(url)
        default_port = 443 if parts.scheme == "https" else 80
        host = parts.hostname or ""
        return cls(
            url=url,
            scheme=parts.scheme,
            host=host,
            port=parts.port or default_port,
            base_path=parts.path.rstrip("/"),
            weight=weight,
            key=f"{service} {url}",
            registered=registered,
            lease_until=lease_until,
            resolve=bool(host) and not registered and not _is_ip(host),
        )

    @property
    def host_header(self) -> str:
        """The Host header the upstream expects."""
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class CompiledRateLimit:
    """A route's rate limit, as the limiter needs it."""

    requests: int
    period_seconds: int
    burst: int
    algorithm: str
    send_headers: bool


@dataclass(frozen=True, slots=True)
class CompiledBreaker:
    """When a route's circuit opens and for how long."""

    threshold: int
    timeout_seconds: float


@dataclass(frozen=True, slots=True)
class CompiledQuota:
    """A consumer's daily and monthly allowance."""

    per_day: int | None
    per_month: int | None


@dataclass(frozen=True, slots=True)
class CompiledService:
    """A service with its targets resolved (environment overrides applied)."""

    name: str
    targets: tuple[CompiledTarget, ...]
    connect_timeout_seconds: float
    load_balancing: str = "round_robin"
    health_check_path: str = ""
    health_check_interval_seconds: float = 10.0
    resolves: bool = False  # some target is a DNS name to expand


@dataclass(frozen=True, slots=True)
class CompiledRoute:
    """Everything the proxy needs about a route, precomputed at compile time."""

    id: int
    pattern: CompiledPattern
    methods: frozenset[str] | None  # None: every method
    service: CompiledService
    strip_prefix: bool
    timeout_seconds: float
    retries: int
    authentication: str
    permissions: frozenset[str]
    roles: frozenset[str]
    rate_limit: CompiledRateLimit | None
    circuit_breaker: CompiledBreaker | None
    priority: int
    breaker_key: str = ""  # "route-id service": the key of its circuit breaker state
    # Route policies (routing.compiled_policies), in the contract's order; None/False: unset.
    ip_rules: IpRules | None = None
    cors: CorsPolicy | None = None
    validate: bool = False  # check requests against the service's OpenAPI operation
    cache: CachePolicy | None = None
    request_headers: HeaderRules | None = None
    response_headers: HeaderRules | None = None
    hide_credentials: bool = False
    websocket: bool = False

    @property
    def name(self) -> str:
        """A readable label: methods and pattern."""
        methods = ",".join(sorted(self.methods)) if self.methods else "ANY"
        return f"{methods} {self.pattern.pattern}"

    def allows(self, method: str) -> bool:
        """Whether the route accepts `method`."""
        return self.methods is None or method in self.methods


@dataclass(frozen=True)
class RouteTable:
    """Routes sorted by precedence; matching is a scan with a cheap prefix pre-check."""

    routes: tuple[CompiledRoute, ...]
    version: int
    quotas: dict[tuple[str, str], CompiledQuota] = field(default_factory=dict)

    def match(self, method: str, path: str) -> CompiledRoute:
        """The route for (method, normalized path); RouteNotFound or MethodNotAllowed."""
        allowed: set[str] = set()
        for route in self.routes:
            if not path.startswith(route.pattern.literal_prefix):
                continue
            if route.pattern.match(path) is None:
                continue
            if route.allows(method):
                return route
            allowed |= route.methods or set()
        if allowed:
            raise MethodNotAllowed(headers={"Allow": ", ".join(sorted(allowed))})
        raise RouteNotFound()


def service_url_variable(name: str) -> str:
    """The environment variable that overrides service `name`'s URL: GATEWAY_SERVICE_<NAME>_URL."""
    return f"GATEWAY_SERVICE_{name.upper().replace('-', '_')}_URL"


def service_url_override(name: str) -> str | None:
    """`GATEWAY_SERVICE_<NAME>_URL` for the service `name`, if set."""
    return os.environ.get(service_url_variable(name)) or None


def _methods(route_methods: list[str], *, cors: bool = False) -> frozenset[str] | None:
    if not route_methods:
        return None
    methods = set(route_methods)
    if "GET" in methods:
        methods.add("HEAD")  # a GET route answers HEAD, as every web server does
    if cors:
        methods.add("OPTIONS")  # its preflights are the gateway's to answer
    return frozenset(methods)


def compile_route(
    route_id: int, spec: RouteSpec, pattern: CompiledPattern, service: CompiledService
) -> CompiledRoute:
    """A route's spec compiled for the proxy: limits, breaker and policies precomputed."""
    rate_limit = None
    if spec.rate_limit:
        rate = spec.rate_limit
        rate_limit = CompiledRateLimit(
            requests=rate.requests,
            period_seconds=_PERIOD_SECONDS[rate.period],
            burst=rate.burst or rate.requests,
            algorithm=rate.algorithm,
            send_headers=rate.headers,
        )
    breaker = None
    if spec.circuit_breaker:
        breaker = CompiledBreaker(
            threshold=spec.circuit_breaker.threshold,
            timeout_seconds=spec.circuit_breaker.timeout_ms / 1000,
        )
    return CompiledRoute(
        id=route_id,
        pattern=pattern,
        methods=_methods(list(spec.methods), cors=spec.cors is not None),
        service=service,
        strip_prefix=spec.strip_prefix,
        timeout_seconds=(spec.timeout_ms or settings.GATEWAY_DEFAULT_TIMEOUT_MS) / 1000,
        retries=spec.retry,
        authentication=spec.authentication,
        permissions=frozenset(spec.permissions),
        roles=frozenset(spec.roles),
        rate_limit=rate_limit,
        circuit_breaker=breaker,
        priority=spec.priority,
        breaker_key=f"{route_id} {service.name}",
        ip_rules=compile_ip_rules(spec),
        cors=compile_cors(spec.cors, spec.methods),
        validate=spec.validate,
        cache=compile_cache(spec.cache),
        request_headers=compile_header_rules(spec.request_headers),
        response_headers=compile_header_rules(spec.response_headers),
        hide_credentials=spec.hide_credentials,
        websocket=spec.websocket,
    )


def compile_table(version: int) -> RouteTable:
    """Read the enabled routes, services and quotas from the database and compile them."""
    from quotas.models import Quota
    from routing.configfile.live import route_spec
    from routing.models import Route

    services: dict[int, CompiledService] = {}
    compiled: list[CompiledRoute] = []
    default_connect = settings.GATEWAY_CONNECT_TIMEOUT_MS / 1000
    routes = (
        Route.objects.filter(enabled=True)
        .select_related("service")
        .prefetch_related("permissions", "roles", "service__targets")
    )
    for route in routes:
        try:
            pattern = compile_pattern(route.path)
        except ValueError:
            # Only a row written around validation gets here; one bad route must not stop all.
            logger.error("route %s skipped: invalid path pattern %r", route.pk, route.path)
            continue
        service = route.service
        if service.pk not in services:
            override = service_url_override(service.name)
            targets: tuple[CompiledTarget, ...]
            if override or service.url:
                targets = (
                    CompiledTarget.from_url(override or service.url, 100, service=service.name),
                )
            else:
                targets = tuple(
                    CompiledTarget.from_url(
                        t.url,
                        t.weight,
                        service=service.name,
                        registered=t.registered,
                        lease_until=t.lease_expires_at.timestamp() if t.lease_expires_at else 0.0,
                    )
                    for t in service.targets.all()
                )
            connect = (service.connect_timeout_ms or 0) / 1000 or default_connect
            services[service.pk] = CompiledService(
                service.name,
                targets,
                connect,
                load_balancing=service.load_balancing,
                health_check_path=service.health_check_path,
                health_check_interval_seconds=(service.health_check_interval_ms or 10_000) / 1000,
                resolves=any(t.resolve for t in targets),
            )
        try:
            spec = route_spec(route)
        except (KeyError, TypeError, ValueError):
            # A policy stored around validation (a hand-edited row): skip the one route.
            logger.error("route %s skipped: invalid stored policy", route.pk)
            continue
        compiled.append(compile_route(route.pk, spec, pattern, services[service.pk]))
    compiled.sort(key=lambda r: (-r.priority, r.pattern.specificity, r.pattern.pattern))
    quotas = {
        quota.subject: CompiledQuota(quota.requests_per_day, quota.requests_per_month)
        for quota in Quota.objects.select_related("role", "user", "client")
    }
    return RouteTable(routes=tuple(compiled), version=version, quotas=quotas)


class RouteTableHolder:
    """Holds this process's compiled table and recompiles it when the config version moves."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._table: RouteTable | None = None
        self._checked_at = 0.0
        # GATEWAY_CONFIG_POLL as of the last check: read there, not on every request (a changed
        # setting applies from the next check; settings do not change in a running worker).
        self._poll_seconds = 0.0
        self._monotonic = monotonic  # injectable so the poll bound is testable without waiting
        self._lock = threading.Lock()

    def get(self) -> RouteTable:
        """The current table, checking the version at most every GATEWAY_CONFIG_POLL."""
        table = self._table
        checked_at = self._checked_at
        if table is not None and self._monotonic() - checked_at < self._poll_seconds:
            return table
        # Stale: wait (briefly) for whichever thread refreshes, rather than serve a config older
        # than the poll bound; if the refresh hangs (database unreachable) serve what we have.
        if not self._lock.acquire(timeout=-1 if table is None else _REFRESH_WAIT_SECONDS):
            return table  # type: ignore[return-value]
        try:
            if self._table is not None and self._checked_at != checked_at:
                return self._table  # another thread refreshed while we waited
            return self._refresh()
        finally:
            self._lock.release()

    def _refresh(self) -> RouteTable:
        from routing.config_version import current_version

        table = self._table
        try:
            version = current_version()
            if table is None or version != table.version:
                table = compile_table(version)
                logger.info(
                    "compiled route table version %s (%d routes)", version, len(table.routes)
                )
        except Exception:
            if table is None:
                raise
            # The database is unreachable: keep serving the last table we compiled.
            logger.warning("config refresh failed; serving table version %s", table.version)
        self._table = table
        self._poll_seconds = settings.GATEWAY_CONFIG_POLL_MS / 1000
        self._checked_at = self._monotonic()
        record_check_in(table.version)
        return table

    def invalidate(self) -> None:
        """Check the version on the next request instead of waiting for the poll interval."""
        self._checked_at = 0.0

    def reset(self) -> None:
        """Drop the compiled table; the next request compiles a fresh one (used by tests)."""
        with self._lock:
            self._table = None
            self._checked_at = 0.0


route_tables = RouteTableHolder()
