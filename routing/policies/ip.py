"""`ip_allow` / `ip_deny`: which client addresses may use a route."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from gateway_project.errors import IpForbidden

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_network(text: str) -> IPNetwork:
    """`10.0.0.0/8`, `2001:db8::/32` or a single address as a network; ValueError otherwise."""
    network = ipaddress.ip_network(text.strip(), strict=False)
    if isinstance(network, ipaddress.IPv6Network) and network.network_address.ipv4_mapped:
        # `::ffff:10.0.0.0/104` means the IPv4 range; addresses are compared unmapped below.
        mapped = network.network_address.ipv4_mapped
        return ipaddress.ip_network(f"{mapped}/{max(network.prefixlen - 96, 0)}", strict=False)
    return network


def parse_client_address(text: str) -> IPAddress | None:
    """The client address as an IP (IPv4-mapped IPv6 unmapped, zone dropped); None if not one."""
    try:
        address = ipaddress.ip_address(text.strip().split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


@dataclass(frozen=True, slots=True)
class IpRules:
    """A route's compiled address rules: a denied address is refused, then one not allowed."""

    allow: tuple[IPNetwork, ...] = ()
    deny: tuple[IPNetwork, ...] = ()

    @classmethod
    def compile(cls, *, allow: Iterable[str] = (), deny: Iterable[str] = ()) -> IpRules | None:
        """The rules for these lists; None when both are empty (the route pays nothing)."""
        rules = cls(tuple(parse_network(n) for n in allow), tuple(parse_network(n) for n in deny))
        return rules if rules.allow or rules.deny else None

    def permits(self, client_address: str) -> bool:
        """Whether `client_address` may use the route. An unreadable address never may."""
        address = parse_client_address(client_address)
        if address is None:
            return False
        if any(address in network for network in self.deny):
            return False
        return not self.allow or any(address in network for network in self.allow)

    def check(self, client_address: str) -> None:
        """Raise IpForbidden (403 ip_forbidden) unless `client_address` may use the route."""
        if not self.permits(client_address):
            raise IpForbidden()

    def describe(self) -> str:
        """The rules in one line, for explain."""
        parts = []
        if self.allow:
            parts.append("allow " + ", ".join(str(n) for n in self.allow))
        if self.deny:
            parts.append("deny " + ", ".join(str(n) for n in self.deny))
        return "; ".join(parts)
