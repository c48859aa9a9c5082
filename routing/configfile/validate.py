"""Parse and validate a config file into a ConfigSpec, collecting every error with its place."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import yaml
from django.conf import settings

from gateway_project.units import parse_duration_ms
from routing.configfile.document import DocumentRefused, load_document, size_overrun_line
from routing.configfile.policies import check_cache, check_cors, check_header_rules, check_networks
from routing.configfile.spec import (
    AUTHENTICATION_MODES,
    HTTP_METHODS,
    LOAD_BALANCING,
    MAX_ROUTE_NAMES,
    QUOTA_SUBJECTS,
    RATE_ALGORITHMS,
    RATE_PERIODS,
    CircuitBreakerSpec,
    ConfigSpec,
    HealthCheckSpec,
    QuotaKey,
    QuotaSpec,
    RateLimitSpec,
    RoleSpec,
    RouteKey,
    RouteSpec,
    ServiceSpec,
    TargetSpec,
    route_key,
)
from routing.paths import pattern_errors
from routing.upstream_urls import upstream_url_error

T = TypeVar("T")
RATE_KEYS = {f"requests_per_{period}": period for period in RATE_PERIODS}
_SERVICE_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
# The same patterns as accounts.models' validators: what the config accepts, the models store.
PERMISSION_NAME = re.compile(r"^[a-z0-9_.-]+(:[a-z0-9_.*-]+)*$")
ROLE_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_INT = 2**31 - 1  # the largest value an integer column holds (PostgreSQL `integer`)
_TOP_KEYS = {"services", "routes", "roles", "quotas"}


@dataclass(frozen=True)
class ConfigError:
    """One problem in a config file, with where it is."""

    location: str  # e.g. routes[2].timeout
    line: int | None
    message: str
    column: int | None = None  # known for problems found while reading the YAML itself

    @property
    def place(self) -> str:
        """`line 3, column 7` / `line 3` / `` (unknown)."""
        if not self.line:
            return ""
        return f"line {self.line}, column {self.column}" if self.column else f"line {self.line}"

    def __str__(self) -> str:
        where = f"{self.place}: " if self.line else ""
        return f"{where}{self.location or '(file)'}: {self.message}"


def in_line_order(errors: list[ConfigError]) -> list[ConfigError]:
    """`errors` sorted by line and column; errors without a line (the whole file) first."""
    return sorted(errors, key=lambda e: (e.line or 0, e.column or 0))


class ConfigInvalid(Exception):
    """The config file has errors; nothing was changed. `errors` are in line order."""

    def __init__(self, errors: list[ConfigError]) -> None:
        super().__init__(f"{len(errors)} error(s) in the config file")
        self.errors = in_line_order(errors)


class ConfigTooLarge(ConfigInvalid):
    """The document is larger than GATEWAY_MAX_CONFIG_SIZE; it was not parsed."""


def size_error(size: int | None, limit: int, *, line: int | None = None) -> ConfigTooLarge:
    """The refusal of a `size`-byte document (unknown: None); the API answers it with 413."""
    what = f"{size} bytes, more than" if size and size > limit else "larger than"
    message = (
        f"the document is {what} GATEWAY_MAX_CONFIG_SIZE ({limit} bytes); split it or raise "
        "the setting."
    )
    return ConfigTooLarge([ConfigError("", line, message)])


def _yaml_error(error: yaml.YAMLError, text: str) -> ConfigError:
    """A YAML reader/parser/composer error as a ConfigError with line and column."""
    if isinstance(error, yaml.reader.ReaderError):
        # Raised for NUL and other characters YAML forbids; it knows only the offset.
        before = text[: error.position]
        line = before.count("\n") + 1
        column = error.position - (before.rfind("\n") + 1) + 1
        char = f"#x{error.character:04x}" if isinstance(error.character, int) else "a character"
        message = f"not valid YAML: {char} is not allowed in a YAML document; remove it."
        return ConfigError("", line, message, column)
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or "not valid YAML"
    refused = isinstance(error, DocumentRefused)  # valid YAML, refused by the gateway
    message = f"{problem}." if refused else f"not valid YAML: {problem}."
    if mark is None:
        return ConfigError("", None, message)
    return ConfigError("", mark.line + 1, message, mark.column + 1)


def _line_map(
    node: yaml.Node,
    path: str,
    lines: dict[str, int],
    errors: list[ConfigError],
    columns: dict[str, int] | None = None,
) -> None:
    """Record the line (and column) of every value under `node`; flag duplicate mapping keys."""
    lines[path] = node.start_mark.line + 1
    if columns is not None:
        columns[path] = node.start_mark.column + 1
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            child = f"{path}.{key}" if path else key
            if key in seen:
                errors.append(
                    ConfigError(
                        child, key_node.start_mark.line + 1, f"'{key}' is given twice; keep one."
                    )
                )
            seen.add(key)
            _line_map(value_node, child, lines, errors, columns)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _line_map(item, f"{path}[{index}]", lines, errors, columns)


class Checker:
    """Walks the parsed document, building the spec and collecting errors."""

    def __init__(self, lines: dict[str, int]) -> None:
        self.lines = lines
        self.errors: list[ConfigError] = []

    def error(self, location: str, message: str) -> None:
        """Record an error at `location`, finding its line (or its parent's)."""
        # A single entry (the management API) is checked at location "": no leading dot.
        location = location.lstrip(".")
        probe = location
        while probe and probe not in self.lines:
            probe = probe.rsplit(".", 1)[0] if "." in probe else probe.rsplit("[", 1)[0]
            if "[" not in probe and "." not in probe and probe not in self.lines:
                break
        self.errors.append(ConfigError(location, self.lines.get(probe), message))

    def mapping(
        self, value: Any, location: str, allowed: frozenset[str] | set[str]
    ) -> dict[str, Any] | None:
        """`value` as a mapping with only `allowed` keys, else an error and None."""
        if not isinstance(value, dict):
            self.error(location, "must be a mapping of keys to values.")
            return None
        for key in value:
            if key not in allowed:
                self.error(
                    f"{location}.{key}",
                    f"unknown key '{key}'; expected one of: {', '.join(sorted(allowed))}.",
                )
        return value

    def items(self, document: dict[str, Any], key: str) -> list[tuple[str, Any]]:
        """The entries of the top-level list `key`, with their locations."""
        value = document.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            self.error(key, "must be a list (each entry starting with '- ').")
            return []
        return [(f"{key}[{index}]", item) for index, item in enumerate(value)]

    def name(self, value: Any, location: str, what: str, *, max_length: int = 100) -> str | None:
        """A required non-empty string of at most `max_length` characters."""
        if not isinstance(value, str) or not value.strip():
            self.error(location, f"{what} is required and must be text.")
            return None
        if len(value.strip()) > max_length:
            self.error(location, f"must be at most {max_length} characters.")
            return None
        if _CONTROL.search(value):
            self.error(location, "must not contain control characters.")
            return None
        return value.strip()

    def duration(self, value: Any, location: str) -> int | None:
        """A duration in milliseconds, or None when absent."""
        if value is None:
            return None
        try:
            duration = parse_duration_ms(value)
        except ValueError as error:
            self.error(location, str(error))
            return None
        if duration > MAX_INT:
            self.error(location, "must be at most 596h (the longest duration stored).")
            return None
        return duration

    def count(
        self, value: Any, location: str, *, minimum: int = 0, maximum: int = MAX_INT
    ) -> int | None:
        """A whole number from `minimum` to `maximum`, or None when absent."""
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            self.error(location, f"must be a whole number of at least {minimum}.")
            return None
        if value > maximum:
            self.error(location, f"must be at most {maximum}.")
            return None
        return value

    def flag(self, value: Any, location: str, default: bool) -> bool:
        """A boolean, or `default` when absent."""
        if value is None:
            return default
        if not isinstance(value, bool):
            self.error(location, "must be true or false.")
            return default
        return value

    def strings(
        self,
        value: Any,
        location: str,
        *,
        pattern: re.Pattern[str],
        max_items: int | None = None,
    ) -> tuple[str, ...]:
        """A list of names matching `pattern` (as the models store them), sorted, unique.

        With `max_items`, a longer list is one error giving its size (its names are not read).
        """
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.error(location, 'must be a list of names, like ["read:tasks"].')
            return ()
        if max_items is not None and len(value) > max_items:
            self.error(location, f"lists {len(value)} names; at most {max_items} are allowed.")
            return ()
        for item in value:
            if len(item) > 100 or not pattern.fullmatch(item):
                self.error(
                    location,
                    f"'{item[:100]}' is not a valid name: use lower-case words joined by ':' "
                    "(permissions, like read:tasks) or letters, digits, '-', '_', '.' (roles).",
                )
                return ()
        return tuple(sorted(set(value)))

    def text(self, value: Any, location: str, *, max_length: int = 255) -> str:
        """Optional free text of at most `max_length` characters."""
        if value is None:
            return ""
        if not isinstance(value, str):
            self.error(location, "must be text.")
            return ""
        if len(value) > max_length or "\x00" in value:
            self.error(location, f"must be at most {max_length} characters, without NUL.")
            return ""
        return value


def _url_error(url: Any) -> str | None:
    if not isinstance(url, str):
        return "url is required and must be text."
    if len(url) > 500 or _CONTROL.search(url):
        return "url must be at most 500 characters, without control characters."
    return upstream_url_error(url)


def _path_value(c: Checker, value: Any, location: str, message: str) -> str:
    """An optional path starting with '/', e.g. of a health check or an OpenAPI document."""
    if value is None:
        return ""
    if (
        not isinstance(value, str)
        or not value.startswith("/")
        or len(value) > 255
        or _CONTROL.search(value)
    ):
        c.error(location, message)
        return ""
    return value


def _check_targets(c: Checker, loc: str, raw: Any) -> tuple[TargetSpec, ...]:
    # An empty list is allowed: the targets then come from self-registration.
    if not isinstance(raw, list):
        c.error(loc, "must be a list of {url, weight}.")
        return ()
    targets: list[TargetSpec] = []
    for index, target in enumerate(raw):
        tloc = f"{loc}[{index}]"
        t = c.mapping(target, tloc, TargetSpec.key_names())
        if t is None:
            continue
        turl = t.get("url")
        problem = _url_error(turl)
        if problem:
            c.error(f"{tloc}.url", problem)
            continue
        weight = c.count(t.get("weight", 100), f"{tloc}.weight")
        targets.append(TargetSpec(url=str(turl), weight=100 if weight is None else weight))
    urls = [t.url for t in targets]
    if len(set(urls)) != len(urls):
        c.error(loc, "lists the same url twice; give each target once.")
    return tuple(sorted(targets, key=lambda t: t.url))


def _check_health(c: Checker, loc: str, raw: Any) -> HealthCheckSpec | None:
    h = c.mapping(raw, loc, HealthCheckSpec.key_names())
    if h is None:
        return None
    path = _path_value(c, h.get("path"), f"{loc}.path", "must be a path starting with '/'.")
    if not path:
        if h.get("path") is None:
            c.error(f"{loc}.path", "must be a path starting with '/'.")
        return None
    interval = c.duration(h.get("interval", "10s"), f"{loc}.interval")
    return HealthCheckSpec(path=path, interval_ms=10_000 if interval is None else interval)


def check_service(c: Checker, loc: str, raw: Any) -> ServiceSpec | None:
    """A config-file service entry as its spec; None when it has errors (recorded on `c`)."""
    entry = c.mapping(raw, loc, ServiceSpec.key_names())
    if entry is None:
        return None
    before = len(c.errors)
    name = c.name(entry.get("name"), f"{loc}.name", "A service name")
    if name and not _SERVICE_NAME.fullmatch(name):
        c.error(f"{loc}.name", f"'{name}' must use lower-case letters, digits and '-'.")
    url = entry.get("url")
    if (url is None) == (entry.get("targets") is None):
        c.error(loc, "give either url: or targets:, not both and not neither.")
    if url is not None:
        problem = _url_error(url)
        if problem:
            c.error(f"{loc}.url", problem)
    targets: tuple[TargetSpec, ...] = ()
    if entry.get("targets") is not None:
        targets = _check_targets(c, f"{loc}.targets", entry["targets"])
    health = None
    if entry.get("health_check") is not None:
        health = _check_health(c, f"{loc}.health_check", entry["health_check"])
    balancing = entry.get("load_balancing", "round_robin")
    if balancing not in LOAD_BALANCING:
        c.error(f"{loc}.load_balancing", f"must be one of: {', '.join(LOAD_BALANCING)}.")
    openapi = _path_value(
        c,
        entry.get("openapi"),
        f"{loc}.openapi",
        "must be the path of the service's spec, like /openapi.json.",
    )
    connect_timeout = c.duration(entry.get("connect_timeout"), f"{loc}.connect_timeout")
    description = c.text(entry.get("description"), f"{loc}.description")
    if len(c.errors) > before or name is None:
        return None
    return ServiceSpec(
        name=name,
        url=url,
        targets=targets,
        openapi=openapi,
        health_check=health,
        connect_timeout_ms=connect_timeout,
        load_balancing=balancing,
        description=description,
    )


def _check_rate_limit(c: Checker, raw: Any, loc: str) -> RateLimitSpec | None:
    entry = c.mapping(raw, loc, RateLimitSpec.key_names())
    if entry is None:
        return None
    given = [key for key in RATE_KEYS if key in entry]
    if len(given) != 1:
        c.error(
            loc, "give exactly one of requests_per_second, requests_per_minute, requests_per_hour."
        )
        return None
    requests = c.count(entry[given[0]], f"{loc}.{given[0]}", minimum=1)
    burst = c.count(entry.get("burst"), f"{loc}.burst", minimum=1)
    algorithm = entry.get("algorithm", "token_bucket")
    if algorithm not in RATE_ALGORITHMS:
        c.error(f"{loc}.algorithm", f"must be one of: {', '.join(RATE_ALGORITHMS)}.")
    headers = c.flag(entry.get("headers"), f"{loc}.headers", True)
    if requests is None or algorithm not in RATE_ALGORITHMS:
        return None
    return RateLimitSpec(
        requests=requests,
        period=RATE_KEYS[given[0]],
        burst=burst,
        algorithm=algorithm,
        headers=headers,
    )


def _check_breaker(c: Checker, raw: Any, loc: str) -> CircuitBreakerSpec | None:
    b = c.mapping(raw, loc, CircuitBreakerSpec.key_names())
    if b is None:
        return None
    threshold = c.count(b.get("threshold"), f"{loc}.threshold", minimum=1)
    if threshold is None and b.get("threshold") is None:
        c.error(f"{loc}.threshold", "is required: consecutive failures that open it.")
    timeout = c.duration(b.get("timeout", "60s"), f"{loc}.timeout")
    if threshold is None or timeout is None:
        return None
    return CircuitBreakerSpec(threshold=threshold, timeout_ms=timeout)


def _check_methods(c: Checker, loc: str, raw: Any) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not raw:
        c.error(loc, "must be a non-empty list like [GET, POST]; omit it to accept every method.")
        return ()
    methods: set[str] = set()
    for method in raw:
        upper = str(method).upper()
        if upper not in HTTP_METHODS:
            c.error(loc, f"unknown method '{str(method)[:20]}'; use {', '.join(HTTP_METHODS)}.")
        methods.add(upper)
    return tuple(sorted(methods))


def _optional(
    c: Checker, entry: dict[str, Any], loc: str, key: str, check: Callable[[Checker, Any, str], T]
) -> T | None:
    """`check` of `entry[key]`, or None when the key is absent (or null)."""
    if entry.get(key) is None:
        return None
    return check(c, entry[key], f"{loc}.{key}")


def check_route(c: Checker, loc: str, raw: Any) -> RouteSpec | None:
    """A config-file route entry as its spec; None when it has errors (recorded on `c`)."""
    entry = c.mapping(raw, loc, RouteSpec.key_names())
    if entry is None:
        return None
    before = len(c.errors)
    path = c.name(entry.get("path"), f"{loc}.path", "A route path", max_length=500)
    if path:
        for problem in pattern_errors(path):
            c.error(f"{loc}.path", problem)
    service = c.name(entry.get("service"), f"{loc}.service", "The route's service")
    methods = _check_methods(c, f"{loc}.methods", entry.get("methods"))
    authentication = entry.get("authentication", "required")
    if authentication not in AUTHENTICATION_MODES:
        c.error(f"{loc}.authentication", "must be required, optional or none.")
    priority = entry.get("priority", 0)
    if isinstance(priority, bool) or not isinstance(priority, int) or abs(priority) > MAX_INT:
        c.error(f"{loc}.priority", "must be a whole number (higher wins).")
    if entry.get("ip_allow") is not None and entry.get("ip_deny") is not None:
        c.error(f"{loc}.ip_deny", "give ip_allow or ip_deny, not both.")
    spec = RouteSpec(
        path=path or "",
        service=service or "",
        methods=methods,
        strip_prefix=c.flag(entry.get("strip_prefix"), f"{loc}.strip_prefix", False),
        timeout_ms=c.duration(entry.get("timeout"), f"{loc}.timeout"),
        retry=c.count(entry.get("retry", 0), f"{loc}.retry", maximum=100) or 0,
        circuit_breaker=_optional(c, entry, loc, "circuit_breaker", _check_breaker),
        rate_limit=_optional(c, entry, loc, "rate_limit", _check_rate_limit),
        authentication=str(authentication),
        permissions=c.strings(
            entry.get("permissions"),
            f"{loc}.permissions",
            pattern=PERMISSION_NAME,
            max_items=MAX_ROUTE_NAMES,
        ),
        roles=c.strings(
            entry.get("roles"), f"{loc}.roles", pattern=ROLE_NAME, max_items=MAX_ROUTE_NAMES
        ),
        priority=priority if isinstance(priority, int) else 0,
        enabled=c.flag(entry.get("enabled"), f"{loc}.enabled", True),
        description=c.text(entry.get("description"), f"{loc}.description"),
        hide_credentials=c.flag(entry.get("hide_credentials"), f"{loc}.hide_credentials", False),
        ip_allow=check_networks(c, entry.get("ip_allow"), f"{loc}.ip_allow"),
        ip_deny=check_networks(c, entry.get("ip_deny"), f"{loc}.ip_deny"),
        cors=_optional(c, entry, loc, "cors", check_cors),
        request_headers=_optional(c, entry, loc, "request_headers", check_header_rules),
        response_headers=_optional(c, entry, loc, "response_headers", check_header_rules),
        validate=c.flag(entry.get("validate"), f"{loc}.validate", False),
        cache=_optional(c, entry, loc, "cache", check_cache),
        websocket=c.flag(entry.get("websocket"), f"{loc}.websocket", False),
    )
    if len(c.errors) > before:
        return None
    return spec


def named(raw: Any, key: str) -> str | None:
    """The name an entry gives under `key` (`service`, `name`), even when it has other errors.

    References are checked against these: a route naming a service whose entry has an error
    gets that error only, not also "service is not defined".
    """
    if not isinstance(raw, dict):
        return None
    value = raw.get(key)
    if not isinstance(value, str) or not value.strip() or len(value.strip()) > 100:
        return None
    return value.strip()


def named_roles(raw: Any, location: str) -> list[tuple[str, str]]:
    """(location, name) of each distinct well-formed role a route entry names, like `named`.

    `location` is the route's (`routes[2]`); each name's is its item's (`routes[2].roles[0]`),
    so that an unknown role is reported at its own line and column. A list that is not one of
    names, or is longer than MAX_ROUTE_NAMES, gives none: check_route reports it as it is.
    """
    if not isinstance(raw, dict):
        return []
    roles = raw.get("roles")
    if not isinstance(roles, list) or len(roles) > MAX_ROUTE_NAMES:
        return []
    found: dict[str, str] = {}
    for index, name in enumerate(roles):
        if isinstance(name, str) and len(name) <= 100 and ROLE_NAME.fullmatch(name):
            found.setdefault(name, f"{location}.roles[{index}]")
    return [(where, name) for name, where in found.items()]


def check_quota_subject(c: Checker, loc: str, entry: dict[str, Any]) -> QuotaKey | None:
    """The (kind, name) a quota entry applies to; None (with an error) when not exactly one."""
    subjects = [kind for kind in QUOTA_SUBJECTS if kind in entry]
    if len(subjects) != 1:
        c.error(loc, "give exactly one of role:, user: or client:.")
        return None
    kind = subjects[0]
    name = c.name(entry[kind], f"{loc}.{kind}", f"The quota's {kind}", max_length=150)
    if name and kind == "role" and not ROLE_NAME.fullmatch(name):
        c.error(f"{loc}.role", f"'{name}' is not a role name.")
    return None if name is None else (kind, name)


def check_quota(c: Checker, loc: str, raw: Any) -> tuple[QuotaKey, QuotaSpec | None] | None:
    """A config-file quota entry as (subject, spec); the spec is None when it has errors.

    The subject is returned even then, so that the report can say whether it exists.
    """
    entry = c.mapping(raw, loc, QuotaSpec.key_names())
    if entry is None:
        return None
    before = len(c.errors)
    key = check_quota_subject(c, loc, entry)
    per_day = c.count(entry.get("requests_per_day"), f"{loc}.requests_per_day", minimum=1)
    per_month = c.count(entry.get("requests_per_month"), f"{loc}.requests_per_month", minimum=1)
    # A key given as null is absent too: a quota needs a limit (the database refuses one without).
    if entry.get("requests_per_day") is None and entry.get("requests_per_month") is None:
        c.error(loc, "give requests_per_day and/or requests_per_month.")
    if key is None:
        return None
    if len(c.errors) > before:
        return key, None
    return key, QuotaSpec(requests_per_day=per_day, requests_per_month=per_month)


def check_role(c: Checker, loc: str, raw: Any) -> RoleSpec | None:
    """A config-file role entry as its spec; None when it has errors (recorded on `c`)."""
    entry = c.mapping(raw, loc, RoleSpec.key_names())
    if entry is None:
        return None
    before = len(c.errors)
    name = c.name(entry.get("name"), f"{loc}.name", "A role name")
    if name is not None and not ROLE_NAME.fullmatch(name):
        c.error(f"{loc}.name", f"'{name}' must use lower-case letters, digits, '-', '_' or '.'.")
    permissions = c.strings(entry.get("permissions"), f"{loc}.permissions", pattern=PERMISSION_NAME)
    description = c.text(entry.get("description"), f"{loc}.description")
    if name is None or len(c.errors) > before:
        return None
    return RoleSpec(name=name, permissions=permissions, description=description)


def _entry_checked(check: Callable[[Checker, str, Any], T | None], raw: Any) -> T:
    checker = Checker({})
    result = check(checker, "", raw)
    if checker.errors or result is None:
        raise ConfigInvalid(checker.errors or [ConfigError("", None, "is not a valid entry.")])
    return result


def check_service_entry(raw: Any) -> ServiceSpec:
    """One service entry checked on its own (the management API); ConfigInvalid lists every
    problem, at locations relative to the entry (`url`, `targets[0].weight`)."""
    return _entry_checked(check_service, raw)


def check_route_entry(raw: Any) -> RouteSpec:
    """One route entry checked on its own (the management API); see check_service_entry."""
    return _entry_checked(check_route, raw)


def check_role_entry(raw: Any) -> RoleSpec:
    """One role entry checked on its own (the management API); see check_service_entry."""
    return _entry_checked(check_role, raw)


def _check_whole_quota(c: Checker, loc: str, raw: Any) -> tuple[QuotaKey, QuotaSpec] | None:
    checked = check_quota(c, loc, raw)
    if checked is None or checked[1] is None:
        return None
    return checked[0], checked[1]


def check_quota_entry(raw: Any) -> tuple[QuotaKey, QuotaSpec]:
    """One quota entry checked on its own (the management API); see check_service_entry."""
    return _entry_checked(_check_whole_quota, raw)


@dataclass
class ConfigReading:
    """A config file read and checked on its own: the spec, its errors and its references.

    References to services, roles, users and clients are checked later against the database
    (live.reference_errors), in the same report as `errors`; `positions` places them.
    """

    spec: ConfigSpec
    errors: list[ConfigError]
    positions: dict[str, tuple[int, int]]  # location -> (line, column) of its value
    service_refs: list[tuple[str, str]]  # (location, service name) of every route
    role_refs: list[tuple[str, str]]  # (location, role name) of every role a route names
    quota_refs: list[tuple[str, QuotaKey]]  # (location, (kind, name)) of every quota
    route_locations: dict[RouteKey, str]  # where each valid route is, e.g. routes[2]
    declared_services: set[str]  # every service name the file gives, valid entry or not
    declared_roles: set[str]  # every role name the file gives, valid entry or not

    def error_at(self, location: str, message: str, *, at: str = "") -> ConfigError:
        """An error at `location` with the line and column of its value (or of `at`'s)."""
        line, column = self.positions.get(at or location, (None, None))
        return ConfigError(location, line, message, column)


NOTHING_DEFINED = (
    "the file defines nothing; add at least one of services:, routes:, roles: or quotas: "
    "(config/gateway.example.yaml shows each)."
)


def read_config(text: str) -> ConfigReading:
    """Parse and check config text as far as it can be read.

    A document that cannot be read at all (too large, not YAML, not a mapping) raises
    ConfigInvalid at once; every other problem is collected in the reading's errors.
    """
    errors: list[ConfigError] = []
    lines: dict[str, int] = {}
    columns: dict[str, int] = {}
    limit = settings.GATEWAY_MAX_CONFIG_SIZE
    # A character is at most 4 bytes: shorter texts need no byte count (and no copy).
    if len(text) * 4 > limit:
        size = len(text.encode("utf-8", "surrogatepass"))
        if size > limit:
            raise size_error(size, limit, line=size_overrun_line(text, limit))
    try:
        node, document = load_document(text)
    except yaml.YAMLError as error:
        raise ConfigInvalid([_yaml_error(error, text)]) from None
    if node is not None:
        _line_map(node, "", lines, errors, columns)
    if document is None:
        document = {}
    checker = Checker(lines)
    checker.errors.extend(errors)
    if not isinstance(document, dict):
        raise ConfigInvalid(
            [
                ConfigError(
                    "", 1, "the file must be a mapping with services:, routes:, roles: and quotas:."
                )
            ]
        )
    checker.mapping(document, "", _TOP_KEYS)
    if not _TOP_KEYS & set(document):
        # Empty, only comments, `{}` or only unknown keys: importing it would change nothing
        # (or, with --prune, delete every service), which is never what was meant.
        checker.errors.append(ConfigError("", None, NOTHING_DEFINED))
    spec = ConfigSpec()
    service_refs: list[tuple[str, str]] = []
    role_refs: list[tuple[str, str]] = []
    quota_refs: list[tuple[str, QuotaKey]] = []
    route_locations: dict[RouteKey, str] = {}
    quota_seen: set[QuotaKey] = set()
    declared_services: set[str] = set()
    declared_roles: set[str] = set()

    for loc, raw in checker.items(document, "services"):
        declared_services.add(named(raw, "name") or "")
        service = check_service(checker, loc, raw)
        if service:
            if service.name in spec.services:
                checker.error(f"{loc}.name", f"service '{service.name}' is defined twice.")
            spec.services[service.name] = service

    for loc, raw in checker.items(document, "roles"):
        declared_roles.add(named(raw, "name") or "")
        role = check_role(checker, loc, raw)
        if role:
            if role.name in spec.roles:
                checker.error(f"{loc}.name", f"role '{role.name}' is defined twice.")
            spec.roles[role.name] = role

    for loc, raw in checker.items(document, "routes"):
        route = check_route(checker, loc, raw)
        service_name = named(raw, "service")
        if service_name:
            # Checked even when the route has other errors: the report names every problem.
            service_refs.append((f"{loc}.service", service_name))
        role_refs.extend(named_roles(raw, loc))
        if route:
            key = route_key(route)
            if key in spec.routes:
                checker.error(loc, f"route {key[1] or 'ANY'} {key[0]} is defined twice.")
            spec.routes[key] = route
            route_locations[key] = loc

    for loc, raw in checker.items(document, "quotas"):
        quota = check_quota(checker, loc, raw)
        if quota:
            key, values = quota
            quota_refs.append((f"{loc}.{key[0]}", key))
            if key in quota_seen:
                checker.error(loc, f"a quota for {key[0]} '{key[1]}' is defined twice.")
            quota_seen.add(key)
            if values is not None:
                spec.quotas[key] = values

    positions = {loc: (line, columns.get(loc, 0)) for loc, line in lines.items()}
    return ConfigReading(
        spec,
        checker.errors,
        positions,
        service_refs,
        role_refs,
        quota_refs,
        route_locations,
        declared_services - {""},
        declared_roles - {""},
    )


def parse_config(text: str) -> ConfigSpec:
    """Parse and validate config text, without its references; ConfigInvalid lists every problem."""
    reading = read_config(text)
    if reading.errors:
        raise ConfigInvalid(reading.errors)
    return reading.spec
