"""What a developer calling a route must know about its policies, for the docs portal.

One place turns a compiled route's policies (CONTRACT section 5) into the sentences and the
`x-gateway-policies` extension the rewritten OpenAPI document carries (routing/spec_rewrite.py)
and the portal's service list shows. Only what changes how a caller calls the route is said:
validation, CORS, caching, IP restriction (that one exists, never its networks) and WebSocket.
Header rules and hide_credentials are the upstream's business and are never mentioned.
"""

from __future__ import annotations

from typing import Any

from routing.compiled_policies import CorsPolicy
from routing.table import CompiledRoute

# Methods whose answers the cache keeps and on which a WebSocket handshake is made.
_CACHED_METHODS = frozenset({"get", "head"})


def _cors_sentence(policy: CorsPolicy) -> str:
    origins = "any origin" if policy.any_origin else ", ".join(sorted(policy.origins))
    details = [f"methods {policy.allow_methods}"]
    if policy.allow_headers:
        details.append(f"request headers {policy.allow_headers}")
    if policy.expose_headers:
        details.append(f"readable response headers {policy.expose_headers}")
    details.append("with credentials (cookies)" if policy.credentials else "without credentials")
    if policy.max_age:
        details.append(f"preflight answers cached by the browser for {policy.max_age} s")
    return f"Browsers may call it from {origins} (CORS: {'; '.join(details)})."


def _cors_extension(policy: CorsPolicy) -> dict[str, Any]:
    return {
        "origins": ["*"] if policy.any_origin else sorted(policy.origins),
        "methods": sorted(policy.methods),
        "headers": [h.strip() for h in policy.allow_headers.split(",") if h.strip()],
        "expose_headers": [h.strip() for h in policy.expose_headers.split(",") if h.strip()],
        "credentials": policy.credentials,
        "max_age_seconds": int(policy.max_age) if policy.max_age else None,
    }


def operation_notes(route: CompiledRoute, method: str) -> list[str]:
    """Sentences for one operation (`method` lower-case) exposed through `route`; [] for none."""
    notes: list[str] = []
    if route.validate:
        notes.append(
            "Requests are validated against this operation's schema (path and query "
            "parameters, headers, JSON body) before they reach the service: a violation is "
            "400 with `errors[]`."
        )
    if route.cors is not None:
        notes.append(_cors_sentence(route.cors))
    if route.cache is not None and method in _CACHED_METHODS:
        notes.append(
            f"Answers may be cached for {route.cache.ttl_seconds:g} s "
            "(`X-Cache: HIT|MISS`, `Age` on hits)."
        )
    if route.ip_rules is not None:
        # That a restriction exists helps a caller understand a 403; the networks never leak.
        notes.append("Restricted to some networks: other client addresses get 403 `ip_forbidden`.")
    if route.websocket and method == "get":
        notes.append("WebSocket upgrade supported (`Connection: Upgrade`, `Upgrade: websocket`).")
    return notes


def operation_extension(route: CompiledRoute, method: str) -> dict[str, Any]:
    """The `x-gateway-policies` value of one operation; {} when no policy concerns a caller."""
    extension: dict[str, Any] = {}
    if route.validate:
        extension["validate"] = True
    if route.cors is not None:
        extension["cors"] = _cors_extension(route.cors)
    if route.cache is not None and method in _CACHED_METHODS:
        extension["cache_ttl_seconds"] = route.cache.ttl_seconds
    if route.ip_rules is not None:
        extension["ip_restricted"] = True
    if route.websocket and method == "get":
        extension["websocket"] = True
    return extension


def route_notes(route: CompiledRoute) -> list[str]:
    """Sentences about the whole route (all its methods), for the portal's summaries."""
    notes: list[str] = []
    if route.validate:
        notes.append(
            "Requests are validated against the service's OpenAPI schema (400 `errors[]`)."
        )
    if route.cors is not None:
        notes.append(_cors_sentence(route.cors))
    if route.cache is not None:
        notes.append(f"Answers to GET/HEAD may be cached for {route.cache.ttl_seconds:g} s.")
    if route.ip_rules is not None:
        notes.append("Restricted to some networks (403 `ip_forbidden` from others).")
    if route.websocket:
        notes.append("WebSocket upgrade supported.")
    return notes
