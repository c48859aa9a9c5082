"""Validation of upstream URLs (service and target addresses)."""

from __future__ import annotations

import ipaddress
from urllib.parse import SplitResult, urlsplit

from django.conf import settings

from gateway_project.outbound_guard import IPAddress, host_refusal, parse_ip

_DEFAULT_PORTS = {"http": 80, "https": 443}
_LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain"})


def _host_key(host: str) -> IPAddress | str:
    """A host as compared with the gateway's own: its IP (any spelling), else the lower name."""
    ip = parse_ip(host)
    if ip is not None:
        return ip.ipv4_mapped or ip if isinstance(ip, ipaddress.IPv6Address) else ip
    return host.strip("[]").rstrip(".").lower()


def _is_local(key: IPAddress | str) -> bool:
    if isinstance(key, str):
        return key in _LOCAL_NAMES or key.endswith(".localhost")
    return key.is_loopback or key.is_unspecified


def _bind_endpoints(bind: str) -> list[tuple[IPAddress | str, int]]:
    """(host, port) pairs gunicorn listens on for GATEWAY_BIND (unix sockets have none)."""
    endpoints = []
    for item in bind.replace(",", " ").split():
        if item.startswith(("unix:", "fd://")) or ":" not in item:
            continue
        host, _, port = item.rpartition(":")
        if port.isdigit():
            endpoints.append((_host_key(host or "0.0.0.0"), int(port)))  # noqa: S104 - parsing only
    return endpoints


def own_address_error(parts: SplitResult, value: str) -> str | None:
    """Why `value` names this gateway itself (GATEWAY_BIND or GATEWAY_PUBLIC_URL), or None."""
    host = _host_key(parts.hostname or "")
    port = parts.port or _DEFAULT_PORTS.get(parts.scheme, 80)
    for bound, bound_port in _bind_endpoints(settings.GATEWAY_BIND):
        wildcard = isinstance(bound, IPAddress) and bound.is_unspecified
        same_host = host == bound or (_is_local(host) and (wildcard or _is_local(bound)))
        if port == bound_port and same_host:
            return (
                f"{value!r} is this gateway's own listen address (GATEWAY_BIND="
                f"{settings.GATEWAY_BIND}); the service would send every request back here."
            )
    public = settings.GATEWAY_PUBLIC_URL or ""
    if public:
        own = urlsplit(public)
        own_port = own.port or _DEFAULT_PORTS.get(own.scheme, 80)
        if own.hostname and _host_key(own.hostname) == host and own_port == port:
            return (
                f"{value!r} is this gateway's own public address (GATEWAY_PUBLIC_URL="
                f"{public}); the service would send every request back here."
            )
    return None


def upstream_url_error(value: str) -> str | None:
    """Return why `value` is not a usable upstream URL, or None when it is."""
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        return f"{value!r} is not a URL; use http://host:port or https://host."
    if parts.scheme not in ("http", "https"):
        return f"{value!r} must start with http:// or https://."
    if not parts.hostname:
        return f"{value!r} has no host; use http://host:port."
    if parts.username or parts.password:
        return f"{value!r} must not hold credentials; the gateway forwards the caller's."
    if parts.query or parts.fragment:
        return f"{value!r} must not have a query or fragment."
    if port == 0:
        return f"{value!r} has port 0; give the port the service listens on."
    return host_refusal(parts.hostname) or own_address_error(parts, value)
