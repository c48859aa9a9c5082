"""Checking a route's policy keys (CONTRACT section 5) into their specs.

Every list and map is bounded (MAX_POLICY_ENTRIES), every header name must be an HTTP token and
every header value a single line without NUL, so that nothing a hostile document holds costs
more than a glance here, and nothing is left to check per request.
"""

from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING, Any

from routing.configfile.spec import (
    HTTP_METHODS,
    MAX_CACHE_TTL_MS,
    MAX_CORS_MAX_AGE_MS,
    MAX_HEADER_NAME_LENGTH,
    MAX_HEADER_VALUE_LENGTH,
    MAX_ORIGIN_LENGTH,
    MAX_POLICY_ENTRIES,
    CacheSpec,
    CorsSpec,
    HeaderRulesSpec,
)
from routing.forwarding import HOP_BY_HOP

if TYPE_CHECKING:
    from routing.configfile.validate import Checker

# RFC 9110 token characters: what a header name may be made of.
HEADER_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
# Any C0 control character but horizontal tab, and DEL: a value stays on one line, without NUL.
_HEADER_VALUE_FORBIDDEN = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_ORIGIN = re.compile(
    r"^[a-z][a-z0-9+.-]*://(\[[0-9a-f:.]+\]|[a-z0-9]([a-z0-9.-]*[a-z0-9])?)(:[0-9]{1,5})?$"
)

# Headers the gateway itself owns (CONTRACT section 5): a header rule may not name them.
# Content-Length and Forwarded as well: setting either would let a rule change how the body is
# framed or where the request seems to come from.
PROTECTED_HEADERS = HOP_BY_HOP | {"host", "content-length", "forwarded", "x-request-id", "via"}
PROTECTED_HEADER_PREFIXES = ("x-forwarded-", "x-consumer-")


def is_protected_header(name: str) -> bool:
    """Whether a header rule may not set or remove `name` (the gateway's own headers)."""
    lower = name.lower()
    return lower in PROTECTED_HEADERS or lower.startswith(PROTECTED_HEADER_PREFIXES)


def _bounded_list(c: Checker, value: Any, location: str, what: str) -> list[Any] | None:
    """`value` as a list of at most MAX_POLICY_ENTRIES entries, else an error and None."""
    if not isinstance(value, list):
        c.error(location, f"must be a list of {what}.")
        return None
    if len(value) > MAX_POLICY_ENTRIES:
        c.error(location, f"lists {len(value)} {what}; at most {MAX_POLICY_ENTRIES} are allowed.")
        return None
    return value


def _header_name(c: Checker, value: Any, location: str) -> str | None:
    """A header name (an HTTP token) that a rule may name, else an error and None."""
    if not isinstance(value, str) or not HEADER_TOKEN.fullmatch(value):
        shown = repr(value)[:MAX_HEADER_NAME_LENGTH]
        c.error(location, f"{shown} is not a header name (letters, digits and !#$%&'*+-.^_`|~).")
        return None
    if len(value) > MAX_HEADER_NAME_LENGTH:
        c.error(location, f"a header name has at most {MAX_HEADER_NAME_LENGTH} characters.")
        return None
    return value


def header_names(c: Checker, value: Any, location: str) -> tuple[str, ...]:
    """A bounded list of header names (CORS headers), in the order given, without repeats."""
    if value is None:
        return ()
    items = _bounded_list(c, value, location, "header names")
    if items is None:
        return ()
    names: dict[str, str] = {}
    for index, item in enumerate(items):
        name = _header_name(c, item, f"{location}[{index}]")
        if name is not None:
            names.setdefault(name.lower(), name)
    return tuple(names.values())


def check_networks(c: Checker, value: Any, location: str) -> tuple[str, ...]:
    """`ip_allow` / `ip_deny`: addresses or CIDR networks, IPv4 or IPv6, normalized."""
    if value is None:
        return ()
    items = _bounded_list(c, value, location, "addresses or networks")
    if items is None:
        return ()
    if not items:
        c.error(location, "is empty; list at least one address or network, or omit the key.")
    networks: list[str] = []
    for index, item in enumerate(items):
        where = f"{location}[{index}]"
        shown = repr(item)[:60]
        if not isinstance(item, str) or "%" in item or len(item) > 60:
            c.error(where, f"{shown} is not an IP address or network like 10.0.0.0/8.")
            continue
        try:
            network = ipaddress.ip_network(item.strip())
        except ValueError as error:
            # `10.0.0.1/8` says "has host bits set": name the network that was meant.
            hint = ""
            if "host bits" in str(error):
                hint = f"; did you mean {ipaddress.ip_network(item.strip(), strict=False)}"
            c.error(where, f"{shown} is not an IP address or CIDR network{hint}.")
            continue
        if str(network) not in networks:
            networks.append(str(network))
    return tuple(sorted(networks))


def _origin(c: Checker, value: Any, location: str) -> str | None:
    if not isinstance(value, str) or len(value) > MAX_ORIGIN_LENGTH:
        c.error(location, f"{repr(value)[:80]} is not an origin like https://app.example.com.")
        return None
    origin = value.lower()
    port = origin.rsplit(":", 1)[-1] if origin.count(":") > 1 else ""
    if value == "*" or (_ORIGIN.fullmatch(origin) and (not port.isdigit() or int(port) < 65536)):
        return origin
    c.error(
        location,
        f"{value!r} is not an origin: use scheme://host[:port] without a path or a trailing "
        "'/', e.g. https://app.example.com, or \"*\" for any origin.",
    )
    return None


def check_cors(c: Checker, value: Any, location: str) -> CorsSpec | None:
    """The `cors` key: origins (required), methods, headers, expose_headers, credentials, max_age."""
    entry = c.mapping(value, location, CorsSpec.key_names())
    if entry is None:
        return None
    before = len(c.errors)
    origins_raw = entry.get("origins")
    origins: list[str] = []
    if origins_raw is None:
        c.error(location, 'origins is required: the origins allowed, or ["*"] for any.')
    else:
        items = _bounded_list(c, origins_raw, f"{location}.origins", "origins") or []
        if origins_raw == []:
            c.error(f"{location}.origins", 'is empty; list the allowed origins or give ["*"].')
        for index, item in enumerate(items):
            origin = _origin(c, item, f"{location}.origins[{index}]")
            if origin is not None and origin not in origins:
                origins.append(origin)
    if "*" in origins and len(origins) > 1:
        c.error(f"{location}.origins", '"*" already allows every origin; give it alone.')
    credentials = c.flag(entry.get("credentials"), f"{location}.credentials", False)
    if origins == ["*"] and credentials:
        c.error(
            f"{location}.credentials",
            'cannot be true with origins ["*"]: browsers refuse credentials for any origin; '
            "list the origins instead.",
        )
    methods: list[str] = []
    methods_raw = entry.get("methods")
    if methods_raw is not None:
        for index, method in enumerate(
            _bounded_list(c, methods_raw, f"{location}.methods", "methods") or []
        ):
            upper = str(method).upper()
            if upper not in HTTP_METHODS:
                c.error(
                    f"{location}.methods[{index}]",
                    f"unknown method '{str(method)[:20]}'; use {', '.join(HTTP_METHODS)}.",
                )
            elif upper not in methods:
                methods.append(upper)
    max_age = c.duration(entry.get("max_age"), f"{location}.max_age")
    if max_age is not None and max_age > MAX_CORS_MAX_AGE_MS:
        c.error(f"{location}.max_age", "must be at most 24h.")
    headers = header_names(c, entry.get("headers"), f"{location}.headers")
    exposed = header_names(c, entry.get("expose_headers"), f"{location}.expose_headers")
    if len(c.errors) > before:
        return None
    return CorsSpec(
        origins=tuple(sorted(origins)),
        methods=tuple(sorted(methods)),
        headers=headers,
        expose_headers=exposed,
        credentials=credentials,
        max_age_ms=max_age,
    )


def check_header_rules(c: Checker, value: Any, location: str) -> HeaderRulesSpec | None:
    """`request_headers` / `response_headers`: {set: {name: value}, remove: [names]}."""
    entry = c.mapping(value, location, HeaderRulesSpec.key_names())
    if entry is None:
        return None
    before = len(c.errors)
    if not entry:
        c.error(location, "give set: and/or remove:, or omit the key.")
    set_raw = entry.get("set")
    pairs: dict[str, tuple[str, str]] = {}
    if set_raw is not None:
        if not isinstance(set_raw, dict):
            c.error(f"{location}.set", "must be a mapping of header names to values.")
        elif len(set_raw) > MAX_POLICY_ENTRIES:
            c.error(
                f"{location}.set",
                f"sets {len(set_raw)} headers; at most {MAX_POLICY_ENTRIES} are allowed.",
            )
        else:
            for raw_name, raw_value in set_raw.items():
                # A name that is not a token is reported at `set`: it never enters a location,
                # where a line break or NUL in it would garble the report.
                valid_name = isinstance(raw_name, str) and HEADER_TOKEN.fullmatch(raw_name)
                where = f"{location}.set.{raw_name}" if valid_name else f"{location}.set"
                name = _header_name(c, raw_name, where)
                header_value = _header_value(c, raw_value, where)
                if name is None or header_value is None:
                    continue
                if _refused(c, name, where):
                    continue
                if name.lower() in pairs:
                    c.error(where, f"{name} is set twice (names ignore case); keep one.")
                pairs[name.lower()] = (name, header_value)
    removed: dict[str, str] = {}
    remove_raw = entry.get("remove")
    if remove_raw is not None:
        items = _bounded_list(c, remove_raw, f"{location}.remove", "header names") or []
        for index, item in enumerate(items):
            where = f"{location}.remove[{index}]"
            name = _header_name(c, item, where)
            if name is None or _refused(c, name, where):
                continue
            if name.lower() in pairs:
                c.error(where, f"{name} is both set and removed; keep one.")
            removed.setdefault(name.lower(), name)
    if len(c.errors) > before:
        return None
    return HeaderRulesSpec(
        set=tuple(pairs[key] for key in sorted(pairs)),
        remove=tuple(removed[key] for key in sorted(removed)),
    )


def _header_value(c: Checker, value: Any, location: str) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int):
        c.error(location, 'must be text (quote numbers and words like "yes").')
        return None
    text = str(value)
    if len(text) > MAX_HEADER_VALUE_LENGTH:
        c.error(location, f"a header value has at most {MAX_HEADER_VALUE_LENGTH} characters.")
        return None
    if _HEADER_VALUE_FORBIDDEN.search(text):
        c.error(
            location, "a header value must not contain CR, LF, NUL or other control characters."
        )
        return None
    return text


def _refused(c: Checker, name: str, location: str) -> bool:
    """Record an error when `name` is a header the gateway owns; whether it was refused."""
    if not is_protected_header(name):
        return False
    c.error(
        location,
        f"{name} is managed by the gateway and cannot be set or removed (hop-by-hop headers, "
        "Host, Content-Length, Forwarded, X-Forwarded-*, X-Request-ID, Via, X-Consumer-*).",
    )
    return True


def check_cache(c: Checker, value: Any, location: str) -> CacheSpec | None:
    """The `cache` key: {ttl: duration}, from 1s to 24h."""
    entry = c.mapping(value, location, CacheSpec.key_names())
    if entry is None:
        return None
    if entry.get("ttl") is None:
        c.error(location, "ttl is required: how long an answer is kept, e.g. 30s.")
        return None
    ttl = c.duration(entry["ttl"], f"{location}.ttl")
    if ttl is None:
        return None
    if not 1000 <= ttl <= MAX_CACHE_TTL_MS:
        c.error(f"{location}.ttl", "must be from 1s to 24h.")
        return None
    return CacheSpec(ttl_ms=ttl)
