"""Parse and validate a config file into a ConfigSpec, collecting every error with its place."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml
from django.conf import settings

from gateway_project.units import parse_duration_ms
from routing.configfile.document import DocumentRefused, load_document, size_overrun_line
from routing.configfile.spec import ConfigSpec, QuotaKey
from routing.paths import pattern_errors
from routing.upstream_urls import upstream_url_error

HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
AUTHENTICATION_MODES = ("required", "optional", "none")
RATE_KEYS = {
    "requests_per_second": "second",
    "requests_per_minute": "minute",
    "requests_per_hour": "hour",
}
RATE_ALGORITHMS = ("token_bucket", "sliding_window")
LOAD_BALANCING = ("round_robin", "least_requests")

_SERVICE_KEYS = {
    "name",
    "url",
    "targets",
    "openapi",
    "health_check",
    "connect_timeout",
    "load_balancing",
    "description",
}
_ROUTE_KEYS = {
    "path",
    "service",
    "methods",
    "strip_prefix",
    "timeout",
    "retry",
    "circuit_breaker",
    "rate_limit",
    "authentication",
    "permissions",
    "roles",
    "priority",
    "enabled",
    "description",
}
_ROLE_KEYS = {"name", "permissions", "description"}
_QUOTA_KEYS = {"role", "user", "client", "requests_per_day", "requests_per_month"}
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

    def mapping(self, value: Any, location: str, allowed: set[str]) -> dict[str, Any] | None:
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

    def strings(self, value: Any, location: str, *, pattern: re.Pattern[str]) -> list[str]:
        """A list of names matching `pattern` (as the models store them), sorted, unique."""
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.error(location, 'must be a list of names, like ["read:tasks"].')
            return []
        for item in value:
            if len(item) > 100 or not pattern.fullmatch(item):
                self.error(
                    location,
                    f"'{item[:100]}' is not a valid name: use lower-case words joined by ':' "
                    "(permissions, like read:tasks) or letters, digits, '-', '_', '.' (roles).",
                )
                return []
        return sorted(set(value))

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


def check_service(c: Checker, loc: str, raw: Any) -> dict[str, Any] | None:
    """A config-file service entry in canonical form; problems are recorded on `c`."""
    entry = c.mapping(raw, loc, _SERVICE_KEYS)
    if entry is None:
        return None
    name = c.name(entry.get("name"), f"{loc}.name", "A service name")
    if name and not _SERVICE_NAME.fullmatch(name):
        c.error(f"{loc}.name", f"'{name}' must use lower-case letters, digits and '-'.")
    url = entry.get("url")
    targets_raw = entry.get("targets")
    targets: list[dict[str, Any]] = []
    if (url is None) == (targets_raw is None):
        c.error(loc, "give either url: or targets:, not both and not neither.")
    if url is not None:
        problem = _url_error(url)
        if problem:
            c.error(f"{loc}.url", problem)
    if targets_raw is not None:
        # An empty list is allowed: the targets then come from self-registration.
        if not isinstance(targets_raw, list):
            c.error(f"{loc}.targets", "must be a list of {url, weight}.")
        else:
            for index, target in enumerate(targets_raw):
                tloc = f"{loc}.targets[{index}]"
                t = c.mapping(target, tloc, {"url", "weight"})
                if t is None:
                    continue
                turl = t.get("url")
                problem = _url_error(turl)
                if problem:
                    c.error(f"{tloc}.url", problem)
                weight = c.count(t.get("weight", 100), f"{tloc}.weight")
                targets.append({"url": turl, "weight": 100 if weight is None else weight})
            urls = [str(t["url"]) for t in targets]
            if len(set(urls)) != len(urls):
                c.error(f"{loc}.targets", "lists the same url twice; give each target once.")
    health = None
    health_raw = entry.get("health_check")
    if health_raw is not None:
        h = c.mapping(health_raw, f"{loc}.health_check", {"path", "interval"})
        if h is not None:
            hpath = h.get("path")
            if (
                not isinstance(hpath, str)
                or not hpath.startswith("/")
                or len(hpath) > 255
                or _CONTROL.search(hpath)
            ):
                c.error(f"{loc}.health_check.path", "must be a path starting with '/'.")
            interval = c.duration(h.get("interval", "10s"), f"{loc}.health_check.interval")
            health = {"path": hpath, "interval_ms": interval}
    balancing = entry.get("load_balancing", "round_robin")
    if balancing not in LOAD_BALANCING:
        c.error(f"{loc}.load_balancing", f"must be one of: {', '.join(LOAD_BALANCING)}.")
    openapi = entry.get("openapi")
    if openapi is not None and (
        not isinstance(openapi, str)
        or not openapi.startswith("/")
        or len(openapi) > 255
        or _CONTROL.search(openapi)
    ):
        c.error(f"{loc}.openapi", "must be the path of the service's spec, like /openapi.json.")
    return {
        "name": name,
        "url": url,
        "targets": sorted(targets, key=lambda t: str(t["url"])),
        "openapi": openapi or "",
        "health_check": health,
        "connect_timeout_ms": c.duration(entry.get("connect_timeout"), f"{loc}.connect_timeout"),
        "load_balancing": balancing,
        "description": c.text(entry.get("description"), f"{loc}.description"),
    }


def _check_rate_limit(c: Checker, loc: str, raw: Any) -> dict[str, Any] | None:
    allowed = set(RATE_KEYS) | {"burst", "algorithm", "headers"}
    entry = c.mapping(raw, loc, allowed)
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
    return {
        "requests": requests,
        "period": RATE_KEYS[given[0]],
        "burst": burst,
        "algorithm": algorithm,
        "headers": c.flag(entry.get("headers"), f"{loc}.headers", True),
    }


def check_route(c: Checker, loc: str, raw: Any) -> dict[str, Any] | None:
    """A config-file route entry in canonical form; problems are recorded on `c`."""
    entry = c.mapping(raw, loc, _ROUTE_KEYS)
    if entry is None:
        return None
    path = c.name(entry.get("path"), f"{loc}.path", "A route path", max_length=500)
    if path:
        for problem in pattern_errors(path):
            c.error(f"{loc}.path", problem)
    service = c.name(entry.get("service"), f"{loc}.service", "The route's service")
    methods_raw = entry.get("methods")
    methods: list[str] = []
    if methods_raw is not None:
        if not isinstance(methods_raw, list) or not methods_raw:
            c.error(
                f"{loc}.methods",
                "must be a non-empty list like [GET, POST]; omit it to accept every method.",
            )
        else:
            for method in methods_raw:
                upper = str(method).upper()
                if upper not in HTTP_METHODS:
                    c.error(
                        f"{loc}.methods",
                        f"unknown method '{method}'; use {', '.join(HTTP_METHODS)}.",
                    )
                methods.append(upper)
    authentication = entry.get("authentication", "required")
    if authentication not in AUTHENTICATION_MODES:
        c.error(f"{loc}.authentication", "must be required, optional or none.")
    breaker = None
    if entry.get("circuit_breaker") is not None:
        bloc = f"{loc}.circuit_breaker"
        b = c.mapping(entry["circuit_breaker"], bloc, {"threshold", "timeout"})
        if b is not None:
            threshold = c.count(b.get("threshold"), f"{bloc}.threshold", minimum=1)
            if threshold is None and b.get("threshold") is None:
                c.error(f"{bloc}.threshold", "is required: consecutive failures that open it.")
            breaker = {
                "threshold": threshold,
                "timeout_ms": c.duration(b.get("timeout", "60s"), f"{bloc}.timeout"),
            }
    rate_limit = None
    if entry.get("rate_limit") is not None:
        rate_limit = _check_rate_limit(c, f"{loc}.rate_limit", entry["rate_limit"])
    priority = entry.get("priority", 0)
    if isinstance(priority, bool) or not isinstance(priority, int) or abs(priority) > MAX_INT:
        c.error(f"{loc}.priority", "must be a whole number (higher wins).")
        priority = 0
    return {
        "path": path,
        "methods": sorted(set(methods)),
        "service": service,
        "strip_prefix": c.flag(entry.get("strip_prefix"), f"{loc}.strip_prefix", False),
        "timeout_ms": c.duration(entry.get("timeout"), f"{loc}.timeout"),
        "retry": c.count(entry.get("retry", 0), f"{loc}.retry", maximum=100) or 0,
        "circuit_breaker": breaker,
        "rate_limit": rate_limit,
        "authentication": authentication,
        "permissions": c.strings(
            entry.get("permissions"), f"{loc}.permissions", pattern=PERMISSION_NAME
        ),
        "roles": c.strings(entry.get("roles"), f"{loc}.roles", pattern=ROLE_NAME),
        "priority": priority,
        "enabled": c.flag(entry.get("enabled"), f"{loc}.enabled", True),
        "description": c.text(entry.get("description"), f"{loc}.description"),
    }


def check_quota(c: Checker, loc: str, raw: Any) -> tuple[tuple[str, str], dict[str, Any]] | None:
    """A config-file quota entry as (subject key, canonical values); problems recorded on `c`."""
    entry = c.mapping(raw, loc, _QUOTA_KEYS)
    if entry is None:
        return None
    subjects = [kind for kind in ("role", "user", "client") if kind in entry]
    if len(subjects) != 1:
        c.error(loc, "give exactly one of role:, user: or client:.")
        return None
    kind = subjects[0]
    name = c.name(entry[kind], f"{loc}.{kind}", f"The quota's {kind}", max_length=150)
    if name and kind == "role" and not ROLE_NAME.fullmatch(name):
        c.error(f"{loc}.role", f"'{name}' is not a role name.")
    per_day = c.count(entry.get("requests_per_day"), f"{loc}.requests_per_day", minimum=1)
    per_month = c.count(entry.get("requests_per_month"), f"{loc}.requests_per_month", minimum=1)
    if "requests_per_day" not in entry and "requests_per_month" not in entry:
        c.error(loc, "give requests_per_day and/or requests_per_month.")
    if name is None:
        return None
    return (kind, name), {"requests_per_day": per_day, "requests_per_month": per_month}


def check_role(c: Checker, loc: str, raw: Any) -> dict[str, Any] | None:
    """A config-file role entry in canonical form; problems are recorded on `c`."""
    entry = c.mapping(raw, loc, _ROLE_KEYS)
    if entry is None:
        return None
    name = c.name(entry.get("name"), f"{loc}.name", "A role name")
    if name is None:
        return None
    if not ROLE_NAME.fullmatch(name):
        c.error(f"{loc}.name", f"'{name}' must use lower-case letters, digits, '-', '_' or '.'.")
    return {
        "name": name,
        "permissions": c.strings(
            entry.get("permissions"), f"{loc}.permissions", pattern=PERMISSION_NAME
        ),
        "description": c.text(entry.get("description"), f"{loc}.description"),
    }


def check_entry(kind: str, raw: Any) -> Any:
    """One entry of a config section (service, route, role, quota), checked on its own.

    The management API's way into the config file's rules: locations are relative to the
    entry (`timeout`, `rate_limit.burst`); ConfigInvalid lists every problem.
    """
    checkers = {
        "service": check_service,
        "route": check_route,
        "role": check_role,
        "quota": check_quota,
    }
    checker = Checker({})
    result = checkers[kind](checker, "", raw)
    if checker.errors or result is None:
        raise ConfigInvalid(checker.errors or [ConfigError("", None, "is not a valid entry.")])
    return result


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
    quota_refs: list[tuple[str, QuotaKey]]  # (location, (kind, name)) of every quota

    def error_at(self, location: str, message: str) -> ConfigError:
        """An error at `location` with the line and column of its value, when known."""
        line, column = self.positions.get(location, (None, None))
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
    quota_refs: list[tuple[str, QuotaKey]] = []

    for loc, raw in checker.items(document, "services"):
        service = check_service(checker, loc, raw)
        if service and service["name"]:
            if service["name"] in spec.services:
                checker.error(f"{loc}.name", f"service '{service['name']}' is defined twice.")
            spec.services[service["name"]] = service

    for loc, raw in checker.items(document, "roles"):
        role = check_role(checker, loc, raw)
        if role:
            name = role["name"]
            if name in spec.roles:
                checker.error(f"{loc}.name", f"role '{name}' is defined twice.")
            spec.roles[name] = role

    for loc, raw in checker.items(document, "routes"):
        route = check_route(checker, loc, raw)
        if route and route["service"]:
            # Checked even when the path is wrong: the report names every problem at once.
            service_refs.append((f"{loc}.service", route["service"]))
        if route and route["path"]:
            key = (route["path"], ",".join(route["methods"]))
            if key in spec.routes:
                checker.error(loc, f"route {key[1] or 'ANY'} {key[0]} is defined twice.")
            route["_location"] = loc
            spec.routes[key] = route

    for loc, raw in checker.items(document, "quotas"):
        quota = check_quota(checker, loc, raw)
        if quota:
            key, values = quota
            quota_refs.append((f"{loc}.{key[0]}", key))
            if key in spec.quotas:
                checker.error(loc, f"a quota for {key[0]} '{key[1]}' is defined twice.")
            values["_location"] = loc
            spec.quotas[key] = values

    positions = {loc: (line, columns.get(loc, 0)) for loc, line in lines.items()}
    return ConfigReading(spec, checker.errors, positions, service_refs, quota_refs)


def parse_config(text: str) -> ConfigSpec:
    """Parse and validate config text, without its references; ConfigInvalid lists every problem."""
    reading = read_config(text)
    if reading.errors:
        raise ConfigInvalid(reading.errors)
    return reading.spec
