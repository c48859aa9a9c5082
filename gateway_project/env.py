"""Small helpers that read settings from the environment and fail loudly on bad values."""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from gateway_project.units import parse_duration_ms, parse_size

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str | None = None) -> str | None:
    """Return the variable `name`, or `default` when it is unset."""
    return os.environ.get(name, default)


def env_secret(name: str) -> str | None:
    """Return a secret from `name`, or from the file named by `NAME_FILE`."""
    value = os.environ.get(name)
    file_name = os.environ.get(f"{name}_FILE")
    if value is not None and file_name is not None:
        raise ImproperlyConfigured(f"Set either {name} or {name}_FILE, not both.")
    if file_name is None:
        return value
    try:
        return Path(file_name).read_text().strip()
    except OSError as error:
        raise ImproperlyConfigured(
            f"{name}_FILE={file_name!r} cannot be read ({error.strerror})."
        ) from None


def env_bool(name: str, default: bool) -> bool:
    """Return the boolean variable `name` (true/false, yes/no, on/off, 1/0)."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    lowered = raw.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean; use true or false.")


def env_int(name: str, default: int, *, minimum: int = 0) -> int:
    """Return the integer variable `name`, at least `minimum`."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a whole number.") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name}={raw!r} must be at least {minimum}.")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    """Return the comma-separated variable `name` as a list of non-empty items."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_duration_ms(name: str, default: str) -> int:
    """Return the duration variable `name` (`500ms`, `1s`, `5m`) in milliseconds."""
    raw = os.environ.get(name, default)
    try:
        return parse_duration_ms(raw)
    except ValueError as error:
        raise ImproperlyConfigured(f"{name}: {error}") from None


def env_size(name: str, default: str) -> int:
    """Return the size variable `name` (`1048576`, `512KiB`, `10MiB`) in bytes."""
    raw = os.environ.get(name, default)
    try:
        return parse_size(raw)
    except ValueError as error:
        raise ImproperlyConfigured(f"{name}: {error}") from None


def env_networks(
    name: str, default: list[str]
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """Return the comma-separated addresses or CIDR ranges in `name` as networks."""
    networks = []
    for item in env_list(name, default):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ImproperlyConfigured(
                f"{name}: {item!r} is not an IP address or CIDR range."
            ) from None
    return tuple(networks)


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    """Return the variable `name`, which must be one of `choices`."""
    raw = os.environ.get(name, default).strip().lower()
    if raw not in choices:
        raise ImproperlyConfigured(f"{name}={raw!r} must be one of: {', '.join(choices)}.")
    return raw


def env_public_url(name: str) -> str | None:
    """An absolute http(s) base URL without a trailing slash (`https://api.example.com`), or None."""
    raw = (os.environ.get(name) or "").strip().rstrip("/")
    if not raw:
        return None
    if not re.fullmatch(r"https?://[A-Za-z0-9.\-\[\]:]+(/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*)?", raw):
        raise ImproperlyConfigured(
            f"{name}={raw!r} is not an http(s) base URL; use e.g. https://api.example.com "
            "(no query or fragment)."
        )
    return raw
