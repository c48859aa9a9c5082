"""A route's policies (CONTRACT section 5) compiled for the request path.

Everything here is computed once, when the route table is compiled, from the route's validated
spec (routing.configfile.spec.RouteSpec): sets of lower-cased names, parsed networks, ready
header values. The pipeline's policy steps read these objects and compute nothing per request
but the lookups. A route without a policy holds None (or False) for it and pays nothing.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from routing.configfile.spec import (
    HTTP_METHODS,
    CacheSpec,
    CorsSpec,
    HeaderRulesSpec,
    RouteSpec,
)

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_IPV4_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")


@dataclass(frozen=True, slots=True)
class IpRules:
    """`ip_allow` or `ip_deny`: which client addresses may call the route.

    `allow` True: only addresses inside `networks` pass (ip_allow); False: addresses inside
    `networks` are refused (ip_deny). Refusals are 403 `ip_forbidden`.
    """

    allow: bool
    networks: tuple[IpNetwork, ...]
    ipv4: tuple[ipaddress.IPv4Network, ...]  # the IPv4 part of `networks`
    ipv6: tuple[ipaddress.IPv6Network, ...]  # the IPv6 part of `networks`


@dataclass(frozen=True, slots=True)
class CorsPolicy:
    """`cors`: the origins allowed and the header values the gateway answers with.

    `origins` are lower-cased `scheme://host[:port]`; `any_origin` is `origins: ["*"]` (then
    `origins` is empty and, credentials being refused with "*", `Access-Control-Allow-Origin`
    may be `*`). The `allow_*` / `expose_headers` / `max_age` strings are the ready header
    values ("" when the header is not sent).
    """

    origins: frozenset[str]
    any_origin: bool
    methods: frozenset[str]  # upper-case; the route's methods when cors.methods is omitted
    headers: frozenset[str]  # lower-cased names a preflight may ask for
    allow_methods: str  # Access-Control-Allow-Methods, e.g. "GET, POST"
    allow_headers: str  # Access-Control-Allow-Headers, as configured ("" none)
    expose_headers: str  # Access-Control-Expose-Headers ("" none)
    credentials: bool  # Access-Control-Allow-Credentials: true
    max_age: str  # Access-Control-Max-Age in whole seconds ("" not sent)


@dataclass(frozen=True, slots=True)
class HeaderRules:
    """`request_headers` / `response_headers`: headers to set and to remove.

    `set` holds (name as configured, value) pairs; `set_names` and `remove` are lower-cased, for
    case-insensitive matching. Protected headers were refused at validation.
    """

    set: tuple[tuple[str, str], ...]
    set_names: frozenset[str]
    remove: frozenset[str]


@dataclass(frozen=True, slots=True)
class CachePolicy:
    """`cache`: how long 200 answers to GET/HEAD are kept."""

    ttl_seconds: float


def _judged_as(network: IpNetwork) -> IpNetwork:
    """An IPv4-mapped IPv6 network as the IPv4 network it stands for, else itself.

    Clients arriving as ::ffff:a.b.c.d are judged as IPv4 (routing.policies.ip), so a rule
    written in the mapped form must be too, or an ip_deny of it would never refuse anyone.
    """
    if isinstance(network, ipaddress.IPv6Network) and network.subnet_of(_IPV4_MAPPED):
        mapped = network.network_address.ipv4_mapped
        assert mapped is not None
        return ipaddress.IPv4Network((mapped, network.prefixlen - 96))
    return network


def compile_ip_rules(route: RouteSpec) -> IpRules | None:
    """The route's ip_allow / ip_deny as parsed networks, or None without either."""
    given = route.ip_allow or route.ip_deny
    if not given:
        return None
    networks = tuple(_judged_as(ipaddress.ip_network(network)) for network in given)
    return IpRules(
        allow=bool(route.ip_allow),
        networks=networks,
        ipv4=tuple(n for n in networks if isinstance(n, ipaddress.IPv4Network)),
        ipv6=tuple(n for n in networks if isinstance(n, ipaddress.IPv6Network)),
    )


def compile_cors(cors: CorsSpec | None, route_methods: tuple[str, ...]) -> CorsPolicy | None:
    """The CORS policy with its header values, or None without `cors`."""
    if cors is None:
        return None
    methods = cors.methods or route_methods or HTTP_METHODS
    any_origin = cors.origins == ("*",)
    return CorsPolicy(
        origins=frozenset() if any_origin else frozenset(cors.origins),
        any_origin=any_origin,
        methods=frozenset(methods),
        headers=frozenset(name.lower() for name in cors.headers),
        allow_methods=", ".join(sorted(methods)),
        allow_headers=", ".join(cors.headers),
        expose_headers=", ".join(cors.expose_headers),
        credentials=cors.credentials,
        max_age="" if cors.max_age_ms is None else str(cors.max_age_ms // 1000),
    )


def compile_header_rules(rules: HeaderRulesSpec | None) -> HeaderRules | None:
    """Header rules with lower-cased name sets, or None without them."""
    if rules is None:
        return None
    return HeaderRules(
        set=rules.set,
        set_names=frozenset(name.lower() for name, _ in rules.set),
        remove=frozenset(name.lower() for name in rules.remove),
    )


def compile_cache(cache: CacheSpec | None) -> CachePolicy | None:
    """The cache policy in seconds, or None without `cache`."""
    return None if cache is None else CachePolicy(ttl_seconds=cache.ttl_ms / 1000)
