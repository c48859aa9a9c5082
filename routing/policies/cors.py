"""`cors`: the gateway answers browsers' preflights itself and marks allowed origins' answers."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

# scheme://host[:port] as browsers serialize it (RFC 6454), or the opaque "null".
_ORIGIN = re.compile(r"^[a-z][a-z0-9+.-]{0,15}://[a-z0-9.\-]{1,253}(:[0-9]{1,5})?$|^null$")
_IPV6_ORIGIN = re.compile(r"^[a-z][a-z0-9+.-]{0,15}://\[[0-9a-f:.]{2,45}\](:[0-9]{1,5})?$")
_MAX_ORIGIN = 300
# A header name list as browsers send it in Access-Control-Request-Headers.
_HEADER_LIST = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+( *, *[A-Za-z0-9!#$%&'*+.^_`|~-]+)*$")
_MAX_HEADER_LIST = 1024
DEFAULT_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


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


@dataclass(frozen=True, slots=True)
class CorsPolicy:
    """A route's compiled CORS answer: what to say to which origin."""

    origins: frozenset[str]
    any_origin: bool
    allow_methods: str
    allow_headers: str  # "" echoes the preflight's requested headers (when well-formed)
    expose_headers: str
    credentials: bool
    max_age_seconds: int | None

    @classmethod
    def compile(
        cls,
        *,
        origins: Iterable[str],
        methods: Iterable[str] = (),
        headers: Iterable[str] = (),
        expose_headers: Iterable[str] = (),
        credentials: bool = False,
        max_age_seconds: float | None = None,
    ) -> CorsPolicy:
        """The policy for one route's `cors` settings."""
        listed = [origin.strip().lower().rstrip("/") for origin in origins]
        method_list = [m.upper() for m in methods] or list(DEFAULT_METHODS)
        return cls(
            origins=frozenset(o for o in listed if o != "*"),
            any_origin="*" in listed,
            allow_methods=", ".join(dict.fromkeys(method_list)),
            allow_headers=", ".join(dict.fromkeys(headers)),
            expose_headers=", ".join(dict.fromkeys(expose_headers)),
            credentials=credentials,
            max_age_seconds=None if max_age_seconds is None else int(max_age_seconds),
        )

    def allow_origin(self, origin_header: str | None) -> str | None:
        """The Access-Control-Allow-Origin value for this Origin header, or None if refused."""
        origin = normalized_origin(origin_header)
        if origin is None:
            return None
        if self.any_origin:
            # `*` cannot carry credentials (Fetch standard): then the origin itself is named.
            return origin if self.credentials else "*"
        return origin if origin in self.origins else None

    def _common(self, allowed: str) -> dict[str, str]:
        headers = {"Access-Control-Allow-Origin": allowed}
        if self.credentials:
            headers["Access-Control-Allow-Credentials"] = "true"
        if allowed != "*":
            headers["Vary"] = "Origin"  # the answer differs per origin: shared caches must know
        return headers

    def preflight_headers(
        self, origin_header: str | None, requested_headers: str | None
    ) -> dict[str, str]:
        """The headers of the gateway's 204 answer to a preflight ({} for a refused origin)."""
        allowed = self.allow_origin(origin_header)
        if allowed is None:
            return {}
        headers = self._common(allowed)
        headers["Access-Control-Allow-Methods"] = self.allow_methods
        allow_headers = self.allow_headers
        if not allow_headers and requested_headers:
            requested = requested_headers.strip()
            if len(requested) <= _MAX_HEADER_LIST and _HEADER_LIST.fullmatch(requested):
                allow_headers = requested
        if allow_headers:
            headers["Access-Control-Allow-Headers"] = allow_headers
        if self.max_age_seconds is not None:
            headers["Access-Control-Max-Age"] = str(self.max_age_seconds)
        return headers

    def response_headers(self, origin_header: str | None) -> dict[str, str]:
        """The CORS headers added to an ordinary answer ({} for a refused or missing origin)."""
        allowed = self.allow_origin(origin_header)
        if allowed is None:
            return {}
        headers = self._common(allowed)
        if self.expose_headers:
            headers["Access-Control-Expose-Headers"] = self.expose_headers
        return headers

    def describe(self) -> str:
        """The policy in one line, for explain and the docs portal."""
        origins = "any origin" if self.any_origin else ", ".join(sorted(self.origins))
        return f"origins {origins}; methods {self.allow_methods}" + (
            "; with credentials" if self.credentials else ""
        )
