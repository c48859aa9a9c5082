"""`cors`: the gateway answers browsers' preflights itself and marks allowed origins' answers."""

from __future__ import annotations

import re
from typing import Any

from routing.compiled_policies import CorsPolicy

# scheme://host[:port] as browsers serialize it (RFC 6454), or the opaque "null".
_ORIGIN = re.compile(r"^[a-z][a-z0-9+.-]{0,15}://[a-z0-9.\-]{1,253}(:[0-9]{1,5})?$|^null$")
_IPV6_ORIGIN = re.compile(r"^[a-z][a-z0-9+.-]{0,15}://\[[0-9a-f:.]{2,45}\](:[0-9]{1,5})?$")
_MAX_ORIGIN = 300
# A header name list as browsers send it in Access-Control-Request-Headers.
_HEADER_LIST = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+( *, *[A-Za-z0-9!#$%&'*+.^_`|~-]+)*$")
_MAX_HEADER_LIST = 1024
# The gateway's answer to every preflight on a route with `cors`, allowed origin or not.
PREFLIGHT_STATUS = 204


def normalized_origin(value: str | None) -> str | None:
    """The request's Origin if it is a well-formed origin (lower-cased), else None.

    Anything else (too long, CR/LF, a path, a userinfo) is no origin at all: never echoed.
    """
    if not value or len(value) > _MAX_ORIGIN:
        return None
    origin = value.lower()
    if _ORIGIN.fullmatch(origin) or _IPV6_ORIGIN.fullmatch(origin):
        return origin
    return None


def is_preflight(method: str, origin: str | None, requested_method: str | None) -> bool:
    """Whether a request is a CORS preflight (OPTIONS with Origin and the requested method)."""
    return method == "OPTIONS" and bool(origin) and bool(requested_method)


def allow_origin(policy: CorsPolicy, origin_header: str | None) -> str | None:
    """The Access-Control-Allow-Origin value for this Origin header, or None if refused."""
    origin = normalized_origin(origin_header)
    if origin is None:
        return None
    if policy.any_origin:
        # `*` cannot carry credentials (Fetch standard): then the origin itself is named.
        return origin if policy.credentials else "*"
    return origin if origin in policy.origins else None


def _common(policy: CorsPolicy, allowed: str) -> dict[str, str]:
    headers = {"Access-Control-Allow-Origin": allowed}
    if policy.credentials:
        headers["Access-Control-Allow-Credentials"] = "true"
    if allowed != "*":
        headers["Vary"] = "Origin"  # the answer differs per origin: shared caches must know
    return headers


def preflight_headers(
    policy: CorsPolicy, origin_header: str | None, requested_headers: str | None
) -> dict[str, str]:
    """The headers of the gateway's 204 answer to a preflight ({} for a refused origin)."""
    allowed = allow_origin(policy, origin_header)
    if allowed is None:
        return {}
    headers = _common(policy, allowed)
    headers["Access-Control-Allow-Methods"] = policy.allow_methods
    allow_headers = policy.allow_headers
    if not allow_headers and requested_headers:
        # Unconfigured: the browser's own list is allowed (Kong's default), if well-formed.
        requested = requested_headers.strip()
        if len(requested) <= _MAX_HEADER_LIST and _HEADER_LIST.fullmatch(requested):
            allow_headers = requested
    if allow_headers:
        headers["Access-Control-Allow-Headers"] = allow_headers
    if policy.max_age:
        headers["Access-Control-Max-Age"] = policy.max_age
    return headers


def response_headers(policy: CorsPolicy, origin_header: str | None) -> dict[str, str]:
    """The CORS headers added to an ordinary answer (only `Vary` for a refused or missing origin)."""
    allowed = allow_origin(policy, origin_header)
    if allowed is None:
        # No CORS headers for this Origin (or none sent), yet another one would get them: a
        # shared cache must key this answer by Origin too (the Fetch standard's advice).
        return {} if policy.any_origin else {"Vary": "Origin"}
    headers = _common(policy, allowed)
    if policy.expose_headers:
        headers["Access-Control-Expose-Headers"] = policy.expose_headers
    return headers


def add_to_response(response: Any, headers: dict[str, str]) -> None:
    """Put CORS headers on a response, merging Vary with the one it has."""
    for name, value in headers.items():
        if name == "Vary" and response.has_header("Vary"):
            present = [v.strip().lower() for v in response["Vary"].split(",")]
            if value.lower() not in present:
                response["Vary"] = f"{response['Vary']}, {value}"
        else:
            response[name] = value


def describe(policy: CorsPolicy) -> str:
    """The policy in one line, for explain and the docs portal."""
    origins = "any origin" if policy.any_origin else ", ".join(sorted(policy.origins))
    credentials = "; with credentials" if policy.credentials else ""
    return f"origins {origins}; methods {policy.allow_methods}{credentials}"
