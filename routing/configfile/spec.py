"""The config's entries as typed specs, defined once.

Each spec is a frozen dataclass holding an entry's canonical, validated values (what import
compares and applies, what export writes). Its `KEYS` list the entry's config-file keys with
their kind and help text: the validator accepts exactly these keys, the management API's
OpenAPI serializers are built from them (management.api.serializers), and the console's help
texts come from them. Where the file has a unit (`timeout: 30s`) the spec holds a plain number
(`timeout_ms`); where a key has a default, the spec holds the default's value.

Line numbers are not part of a spec: the config reader keeps them beside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

RouteKey = tuple[str, str]  # (path, comma-joined sorted methods; "" for every method)
QuotaKey = tuple[str, str]  # ("role" | "user" | "client", name)

HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
AUTHENTICATION_MODES = ("required", "optional", "none")
RATE_PERIODS = ("second", "minute", "hour")
RATE_ALGORITHMS = ("token_bucket", "sliding_window")
LOAD_BALANCING = ("round_robin", "least_requests")

# The bounds of a route policy's lists and maps: far beyond a real route, small enough that a
# hostile or mistaken document costs nothing to check and nothing per request.
MAX_POLICY_ENTRIES = 100
MAX_HEADER_NAME_LENGTH = 100
MAX_HEADER_VALUE_LENGTH = 4096
MAX_ORIGIN_LENGTH = 255
MAX_CORS_MAX_AGE_MS = 86_400_000  # a day; browsers cap it lower anyway
MAX_CACHE_TTL_MS = 86_400_000  # a day
# The most roles and the most permissions one route may name: a real route names a handful; a
# generated or hostile document must not turn into thousands of lookups and link rows per route.
MAX_ROUTE_NAMES = 100

DURATION_HELP = "A duration: 500ms, 30s, 5m or 1h."

Kind = Literal["text", "bool", "int", "duration", "choice", "list", "map", "entry", "entries"]


@dataclass(frozen=True)
class Key:
    """One key of a config-file entry: its name, the kind of value it holds, what it means."""

    name: str
    kind: Kind
    help: str
    required: bool = False
    choices: tuple[str, ...] = ()  # for "choice", and for the items of a "list"
    entry: type[Spec] | None = None  # the nested spec of an "entry" / "entries"
    minimum: int | None = None  # for "int"
    max_length: int | None = None  # for "text"
    max_items: int | None = None  # for "list"


class Spec:
    """A config entry's spec: its canonical values (dataclass fields) and its file `KEYS`."""

    KEYS: ClassVar[tuple[Key, ...]] = ()

    @classmethod
    def key_names(cls) -> frozenset[str]:
        """The config-file keys this entry accepts."""
        return frozenset(key.name for key in cls.KEYS)

    @classmethod
    def key(cls, name: str) -> Key:
        """The key `name` of this entry (KeyError when it has none)."""
        for key in cls.KEYS:
            if key.name == name:
                return key
        raise KeyError(name)


@dataclass(frozen=True)
class TargetSpec(Spec):
    """One weighted instance of a service."""

    url: str
    weight: int = 100

    KEYS: ClassVar[tuple[Key, ...]] = (
        Key("url", "text", "Where this instance listens, e.g. http://10.0.0.5:9001.", True),
        Key(
            "weight",
            "int",
            "Share of traffic relative to the other targets; 0 drains it.",
            minimum=0,
        ),
    )


@dataclass(frozen=True)
class HealthCheckSpec(Spec):
    """The path the gateway probes and how often."""

    path: str
    interval_ms: int = 10_000

    KEYS: ClassVar[tuple[Key, ...]] = (
        Key("path", "text", "The path the gateway probes, e.g. /health.", True),
        Key("interval", "duration", f"How often to probe (default 10s). {DURATION_HELP}"),
    )


@dataclass(frozen=True)
class ServiceSpec(Spec):
    """An upstream service: one URL, or weighted targets."""

    name: str
    url: str | None = None
    targets: tuple[TargetSpec, ...] = ()
    openapi: str = ""
    health_check: HealthCheckSpec | None = None
    connect_timeout_ms: int | None = None
    load_balancing: str = "round_robin"
    description: str = ""

    KEYS: ClassVar[tuple[Key, ...]] = (
        Key(
            "name",
            "text",
            "Short name routes refer to: lower-case letters, digits and '-'.",
            True,
            max_length=100,
        ),
        Key(
            "url",
            "text",
            "The one upstream address, e.g. http://10.0.0.5:9001; or give "
            "`targets` instead. GATEWAY_SERVICE_<NAME>_URL overrides it.",
        ),
        Key(
            "targets",
            "entries",
            "Weighted instances to balance over (instead of `url`).",
            entry=TargetSpec,
        ),
        Key(
            "openapi",
            "text",
            "Path of the service's OpenAPI document, e.g. /openapi.json "
            "(for the docs portal and `validate`).",
        ),
        Key("health_check", "entry", "Active health checks of the targets.", entry=HealthCheckSpec),
        Key(
            "connect_timeout",
            "duration",
            "How long to wait for a connection; omitted uses "
            f"GATEWAY_CONNECT_TIMEOUT. {DURATION_HELP}",
        ),
        Key(
            "load_balancing",
            "choice",
            "Weighted round robin, or the target with the fewest requests in flight.",
            choices=LOAD_BALANCING,
        ),
        Key("description", "text", "Free text for people.", max_length=255),
    )


@dataclass(frozen=True)
class CircuitBreakerSpec(Spec):
    """When a route's circuit opens, and for how long."""

    threshold: int
    timeout_ms: int = 60_000

    KEYS: ClassVar[tuple[Key, ...]] = (
        Key("threshold", "int", "Consecutive failures that open the circuit.", True, minimum=1),
        Key("timeout", "duration", f"How long it stays open (default 60s). {DURATION_HELP}"),
    )


@dataclass(frozen=True)
class RateLimitSpec(Spec):
    """A route's rate limit: `requests` per `period`, per consumer."""

    requests: int
    period: str  # one of RATE_PERIODS
    burst: int | None = None  # None: the same as `requests`
    algorithm: str = "token_bucket"
    headers: bool = True

    KEYS: ClassVar[tuple[Key, ...]] = (
        *(
            Key(
                f"requests_per_{period}",
                "int",
                f"Requests per {period} and consumer; give exactly one requests_per_* key.",
                minimum=1,
            )
            for period in RATE_PERIODS
        ),
        Key("burst", "int", "Requests that may pass at once (default: the rate).", minimum=1),
        Key(
            "algorithm",
            "choice",
            "token_bucket (allows bursts) or sliding_window.",
            choices=RATE_ALGORITHMS,
        ),
        Key("headers", "bool", "Send RateLimit-* headers to clients (default true)."),
    )


@dataclass(frozen=True)
class CorsSpec(Spec):
    """Which browser origins may call a route, and what their requests may carry."""

    origins: tuple[str, ...]  # lower-case scheme://host[:port], or ("*",)
    methods: tuple[str, ...] = ()  # empty: the route's methods (or every method)
    headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    credentials: bool = False
    max_age_ms: int | None = None  # None: no Access-Control-Max-Age

    KEYS: ClassVar[tuple[Key, ...]] = (
        Key(
            "origins",
            "list",
            'Allowed origins, scheme://host[:port], or ["*"] for any '
            f"(not with credentials). At most {MAX_POLICY_ENTRIES}.",
            True,
        ),
        Key(
            "methods",
            "list",
            "Methods a preflight allows; omitted: the route's methods.",
            choices=HTTP_METHODS,
        ),
        Key(
            "headers",
            "list",
            "Request headers a preflight allows, e.g. [Authorization, Content-Type].",
        ),
        Key(
            "expose_headers", "list", "Response headers the browser may read, e.g. [X-Request-ID]."
        ),
        Key(
            "credentials",
            "bool",
            "Allow cookies and credentials (Access-Control-Allow-"
            'Credentials: true); not with origins ["*"].',
        ),
        Key(
            "max_age",
            "duration",
            "How long a browser may cache the preflight answer "
            f"(at most 24h); omitted: no Access-Control-Max-Age. {DURATION_HELP}",
        ),
    )

    def to_json(self) -> dict[str, Any]:
        """The spec as the JSON the route row stores."""
        return {
            "origins": list(self.origins),
            "methods": list(self.methods),
            "headers": list(self.headers),
            "expose_headers": list(self.expose_headers),
            "credentials": self.credentials,
            "max_age_ms": self.max_age_ms,
        }

    @classmethod
    def from_json(cls, stored: dict[str, Any]) -> CorsSpec:
        """The spec from the JSON the route row stores (written by to_json)."""
        return cls(
            origins=tuple(stored["origins"]),
            methods=tuple(stored.get("methods", ())),
            headers=tuple(stored.get("headers", ())),
            expose_headers=tuple(stored.get("expose_headers", ())),
            credentials=bool(stored.get("credentials", False)),
            max_age_ms=stored.get("max_age_ms"),
        )


@dataclass(frozen=True)
class HeaderRulesSpec(Spec):
    """Headers to set (add or replace) and to remove on a request or response."""

    set: tuple[tuple[str, str], ...] = ()  # (name, value), sorted by lower-case name
    remove: tuple[str, ...] = ()  # sorted by lower-case name

    KEYS: ClassVar[tuple[Key, ...]] = (
        Key(
            "set",
            "map",
            "Headers to add or replace, name: value. Hop-by-hop headers, Host, "
            "Content-Length, X-Forwarded-*, X-Request-ID, Via and X-Consumer-* are refused.",
        ),
        Key("remove", "list", "Header names to delete (the same names are refused)."),
    )

    def to_json(self) -> dict[str, Any]:
        """The spec as the JSON the route row stores."""
        return {"set": [list(pair) for pair in self.set], "remove": list(self.remove)}

    @classmethod
    def from_json(cls, stored: dict[str, Any]) -> HeaderRulesSpec:
        """The spec from the JSON the route row stores (written by to_json)."""
        return cls(
            set=tuple((str(name), str(value)) for name, value in stored.get("set", ())),
            remove=tuple(stored.get("remove", ())),
        )


@dataclass(frozen=True)
class CacheSpec(Spec):
    """How long a route's 200 answers to GET/HEAD are kept."""

    ttl_ms: int

    KEYS: ClassVar[tuple[Key, ...]] = (
        Key(
            "ttl",
            "duration",
            "How long an answer is kept, from 1s to 24h (or the upstream's "
            f"shorter max-age). {DURATION_HELP}",
            True,
        ),
    )


@dataclass(frozen=True)
class RouteSpec(Spec):
    """A path pattern (and methods) leading to a service, with its limits and policies."""

    path: str
    service: str
    methods: tuple[str, ...] = ()  # sorted; empty: every method
    strip_prefix: bool = False
    timeout_ms: int | None = None
    retry: int = 0
    circuit_breaker: CircuitBreakerSpec | None = None
    rate_limit: RateLimitSpec | None = None
    authentication: str = "required"
    permissions: tuple[str, ...] = ()  # sorted, unique
    roles: tuple[str, ...] = ()  # sorted, unique
    priority: int = 0
    enabled: bool = True
    description: str = ""
    # Route policies (CONTRACT section 5).
    hide_credentials: bool = False
    ip_allow: tuple[str, ...] = ()  # normalized networks, e.g. 10.0.0.0/8, 2001:db8::/32
    ip_deny: tuple[str, ...] = ()
    cors: CorsSpec | None = None
    request_headers: HeaderRulesSpec | None = None
    response_headers: HeaderRulesSpec | None = None
    validate: bool = False
    cache: CacheSpec | None = None
    websocket: bool = False

    KEYS: ClassVar[tuple[Key, ...]] = (
        Key(
            "path",
            "text",
            "Path pattern: `*` is one segment, a final `**` any rest of the "
            "path, e.g. /api/v1/rd/**.",
            True,
            max_length=500,
        ),
        Key("service", "text", "The name of the service requests go to.", True),
        Key(
            "methods",
            "list",
            "HTTP methods; omitted: every method. GET also answers HEAD.",
            choices=HTTP_METHODS,
        ),
        Key("strip_prefix", "bool", "Drop the literal part before `**` when forwarding."),
        Key(
            "timeout",
            "duration",
            "How long the upstream has to answer; omitted uses "
            f"GATEWAY_DEFAULT_TIMEOUT. {DURATION_HELP}",
        ),
        Key(
            "retry",
            "int",
            "Retries after a failed attempt, idempotent methods only (0-100).",
            minimum=0,
        ),
        Key(
            "circuit_breaker",
            "entry",
            "Stop calling a failing upstream for a while.",
            entry=CircuitBreakerSpec,
        ),
        Key(
            "rate_limit", "entry", "Requests allowed per period and consumer.", entry=RateLimitSpec
        ),
        Key(
            "authentication",
            "choice",
            "required (default), optional or none.",
            choices=AUTHENTICATION_MODES,
        ),
        Key(
            "permissions",
            "list",
            "The caller needs ALL of these permissions (at most 100).",
            max_items=MAX_ROUTE_NAMES,
        ),
        Key(
            "roles",
            "list",
            "The caller needs ANY ONE of these roles (at most 100); each must be defined under "
            "roles: or exist already.",
            max_items=MAX_ROUTE_NAMES,
        ),
        Key("priority", "int", "Higher wins when several routes match."),
        Key("enabled", "bool", "Disabled routes answer 404 (default true)."),
        Key("description", "text", "Free text for people.", max_length=255),
        Key(
            "hide_credentials",
            "bool",
            "The upstream never sees the caller's Authorization or X-API-Key.",
        ),
        Key(
            "ip_allow",
            "list",
            "Only these client addresses or networks (IPv4/IPv6, CIDR) "
            f"may call the route; not with ip_deny. At most {MAX_POLICY_ENTRIES}.",
        ),
        Key(
            "ip_deny",
            "list",
            "These client addresses or networks may not call the route; "
            f"not with ip_allow. At most {MAX_POLICY_ENTRIES}.",
        ),
        Key(
            "cors",
            "entry",
            "Cross-origin calls from browsers; preflights are answered by the gateway.",
            entry=CorsSpec,
        ),
        Key(
            "request_headers",
            "entry",
            "Headers set or removed before forwarding.",
            entry=HeaderRulesSpec,
        ),
        Key(
            "response_headers",
            "entry",
            "Headers set or removed on the upstream's answers.",
            entry=HeaderRulesSpec,
        ),
        Key(
            "validate",
            "bool",
            "Check requests against the service's OpenAPI operation "
            "(needs the service's `openapi`).",
        ),
        Key("cache", "entry", "Keep 200 answers to GET/HEAD for a while.", entry=CacheSpec),
        Key("websocket", "bool", "Let `Upgrade: websocket` through and relay the connection."),
    )


@dataclass(frozen=True)
class RoleSpec(Spec):
    """A role: a named set of permissions."""

    name: str
    permissions: tuple[str, ...] = ()  # sorted, unique
    description: str = ""

    KEYS: ClassVar[tuple[Key, ...]] = (
        Key("name", "text", "Lower-case letters, digits, '-', '_' or '.'.", True, max_length=100),
        Key("permissions", "list", 'Permission names, like ["read:tasks"].'),
        Key("description", "text", "Free text for people.", max_length=255),
    )


QUOTA_SUBJECTS = ("role", "user", "client")


@dataclass(frozen=True)
class QuotaSpec(Spec):
    """A daily and/or monthly allowance of a role, user or API client (its subject)."""

    requests_per_day: int | None = None
    requests_per_month: int | None = None

    KEYS: ClassVar[tuple[Key, ...]] = (
        Key("role", "text", "The role the quota applies to; give one of role, user, client."),
        Key("user", "text", "The user the quota applies to."),
        Key("client", "text", "The API client the quota applies to."),
        Key("requests_per_day", "int", "Requests per calendar day (UTC).", minimum=1),
        Key("requests_per_month", "int", "Requests per calendar month (UTC).", minimum=1),
    )


@dataclass
class ConfigSpec:
    """Services, routes, roles and quotas as canonical specs, keyed by identity."""

    services: dict[str, ServiceSpec] = field(default_factory=dict)
    routes: dict[RouteKey, RouteSpec] = field(default_factory=dict)
    roles: dict[str, RoleSpec] = field(default_factory=dict)
    quotas: dict[QuotaKey, QuotaSpec] = field(default_factory=dict)


def route_key(route: RouteSpec) -> RouteKey:
    """A route's identity: (path, comma-joined sorted methods)."""
    return (route.path, ",".join(route.methods))


def route_label(key: RouteKey) -> str:
    """A readable name for a route key, e.g. `GET,POST /api/v1/rd/**`."""
    path, methods = key
    return f"{methods or 'ANY'} {path}"
