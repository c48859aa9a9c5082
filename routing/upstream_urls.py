"""Validation of upstream URLs (service and target addresses)."""

from __future__ import annotations

from urllib.parse import urlsplit

from routing.upstream_guard import host_refusal


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
    return host_refusal(parts.hostname)
