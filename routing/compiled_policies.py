"""A route's policies (CONTRACT section 5) compiled for the request path.

Placeholder until the specs branch is merged: the same dataclasses as that branch's
routing/compiled_policies.py (which also compiles them from the route's spec); at the merge
that file replaces this one.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class IpRules:
    """`ip_allow` (allow True) or `ip_deny` (allow False) over parsed networks."""

    allow: bool
    networks: tuple[IpNetwork, ...]
    ipv4: tuple[ipaddress.IPv4Network, ...]
    ipv6: tuple[ipaddress.IPv6Network, ...]


@dataclass(frozen=True, slots=True)
class CorsPolicy:
    """`cors`: the origins allowed and the ready header values."""

    origins: frozenset[str]
    any_origin: bool
    methods: frozenset[str]
    headers: frozenset[str]
    allow_methods: str
    allow_headers: str
    expose_headers: str
    credentials: bool
    max_age: str


@dataclass(frozen=True, slots=True)
class HeaderRules:
    """`request_headers` / `response_headers`: headers to set and to remove."""

    set: tuple[tuple[str, str], ...]
    set_names: frozenset[str]
    remove: frozenset[str]


@dataclass(frozen=True, slots=True)
class CachePolicy:
    """`cache`: how long 200 answers to GET/HEAD are kept."""

    ttl_seconds: float
