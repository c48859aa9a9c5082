"""`ip_allow` / `ip_deny`: which client addresses may use a route."""

from __future__ import annotations

import ipaddress

from gateway_project.errors import IpForbidden
from routing.compiled_policies import IpRules

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_client_address(text: str) -> IPAddress | None:
    """The client address as an IP (IPv4-mapped IPv6 unmapped, zone dropped); None if not one."""
    try:
        address = ipaddress.ip_address(text.strip().split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def permits(rules: IpRules, client_address: str) -> bool:
    """Whether `client_address` may use the route. An unreadable address never may."""
    address = parse_client_address(client_address)
    if address is None:
        return False
    networks = rules.ipv4 if isinstance(address, ipaddress.IPv4Address) else rules.ipv6
    listed = any(address in network for network in networks)
    return listed if rules.allow else not listed


def check(rules: IpRules, client_address: str) -> None:
    """Raise IpForbidden (403 ip_forbidden) unless `client_address` may use the route."""
    if not permits(rules, client_address):
        raise IpForbidden()


def describe(rules: IpRules) -> str:
    """The rules in one line, for explain."""
    networks = ", ".join(str(network) for network in rules.networks)
    return f"{'allow' if rules.allow else 'deny'} {networks}"
