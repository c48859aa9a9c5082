"""The gateway's network facts, defined once: who the caller is, whether an address is on an
allow-list, and which URL prefixes are the gateway's own.

Every layer reads these (the proxy's limits and forwarding, login throttling, the admin plane,
/metrics, the access log, the lean-handler dispatch, route validation), so they live at the
bottom and import nothing of the apps.

The client address rule (X-Forwarded-For, RFC 7239 section 7.4's reading):
- REMOTE_ADDR is the caller unless it is one of GATEWAY_TRUSTED_PROXIES and sent
  X-Forwarded-For; only then is the header believed at all.
- Walking the header from the right (the hop nearest to us), each hop added by a trusted proxy
  is skipped; the first untrusted hop is the client. Anything left of it was written by a
  party we do not trust and is never used, so a client cannot choose its own address.
- When every hop is trusted (traffic from one of our own proxies' networks), the left-most hop
  is the farthest address our proxies vouched for: that is the client. Falling back to
  REMOTE_ADDR instead would key every such caller on the nearest proxy, so one caller could
  lock all the others out of login and share their rate limits.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

from gateway_project.hot_settings import hot_setting

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# The gateway's own paths (CONTRACT section 3): served by the full Django stack, never by a
# route; a route pattern that would take one over is a validation error. A prefix owns itself
# and everything below it ("/o" owns "/o/token/", not "/oauth").
RESERVED_PREFIXES: tuple[str, ...] = (
    "/admin",
    "/api/gateway",
    "/api/docs",
    "/api/redoc",
    "/api/openapi.json",
    "/auth",
    "/o",
    "/users/me",
    "/health",
    "/metrics",
    "/static",
)
# The admin plane (console, management API, API docs): GATEWAY_ADMIN_ALLOWED_NETWORKS applies.
ADMIN_PLANE_PREFIXES: tuple[str, ...] = (
    "/admin/",
    "/api/gateway/",
    "/api/docs",
    "/api/redoc",
    "/api/openapi.json",
)
# Inside the admin plane but called from service hosts with its own token.
NOT_ADMIN_PLANE_PREFIXES: tuple[str, ...] = ("/api/gateway/registry/",)


def is_reserved_path(path: str) -> bool:
    """Whether `path` (PATH_INFO) is one of the gateway's own pages rather than a route."""
    if not path.startswith(RESERVED_PREFIXES):  # every proxied request: one call, not a loop
        return False
    for prefix in RESERVED_PREFIXES:
        if path.startswith(prefix) and (len(path) == len(prefix) or path[len(prefix)] == "/"):
            return True
    return False


def is_admin_plane_path(path: str) -> bool:
    """Whether `path` belongs to the admin plane."""
    return path.startswith(ADMIN_PLANE_PREFIXES) and not path.startswith(NOT_ADMIN_PLANE_PREFIXES)


def address_in(address: str, networks: Iterable[IPNetwork]) -> bool:
    """Whether `address` parses as an IP inside one of `networks` (garbage is never inside)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def is_trusted_proxy(address: str) -> bool:
    """Whether `address` is one of GATEWAY_TRUSTED_PROXIES (whose X-Forwarded-For we believe)."""
    networks = hot_setting("GATEWAY_TRUSTED_PROXIES")
    return bool(networks) and address_in(address, networks)


def client_address(remote_addr: str, forwarded_for: str | None) -> str:
    """The caller's address by the module's rule: REMOTE_ADDR, or the right-most untrusted hop
    of a trusted chain, or (every hop trusted) its left-most hop."""
    if not forwarded_for or not is_trusted_proxy(remote_addr):
        return remote_addr
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not is_trusted_proxy(hop):
            return hop
    return hops[0] if hops else remote_addr


def request_client_address(meta: Mapping[str, Any]) -> str:
    """The caller's address from a WSGI environ or `request.META`."""
    forwarded = meta.get("HTTP_X_FORWARDED_FOR")
    return client_address(str(meta.get("REMOTE_ADDR", "")), str(forwarded) if forwarded else None)


def caller_allowed(meta: Mapping[str, Any], networks: Iterable[IPNetwork]) -> bool:
    """Whether the caller (behind trusted proxies: the client) is inside `networks`."""
    return address_in(request_client_address(meta), networks)
