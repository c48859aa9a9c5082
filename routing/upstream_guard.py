"""Upstream addresses the gateway refuses: link-local and cloud metadata endpoints (SSRF).

A service URL naming such an address is a validation error (config import, console and API all
validate through routing/upstream_urls.py); a name that *resolves* to one is refused at connect
time, on the peer address of the socket actually opened, so DNS rebinding cannot slip past the
validation. GATEWAY_UPSTREAM_ALLOWED_NETWORKS re-allows ranges (an upstream that really lives on
a link-local address); GATEWAY_UPSTREAM_BLOCKED_NETWORKS replaces the blocked list.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from typing import Any

from django.conf import settings
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NewConnectionError

logger = logging.getLogger("gateway.upstream")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Link-local ranges hold every major cloud's instance metadata service (AWS, GCP, Azure,
# OpenStack: 169.254.169.254); AWS's IPv6 endpoint and Alibaba Cloud's sit outside them.
DEFAULT_BLOCKED_NETWORKS = (
    "169.254.0.0/16",
    "fe80::/10",
    "fd00:ec2::254/128",
    "100.100.100.200/32",
)
BLOCKED_NAMES = frozenset(
    {"metadata", "metadata.google.internal", "instance-data", "instance-data.ec2.internal"}
)


def _ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(value.split("%", 1)[0])  # drop an IPv6 zone id
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped  # ::ffff:169.254.169.254 is 169.254.169.254
    return address


def address_blocked(address: str) -> bool:
    """Whether the IP literal `address` is in a blocked range and not re-allowed."""
    ip = _ip(address)
    if ip is None:
        return False
    blocked: tuple[IPNetwork, ...] = settings.GATEWAY_UPSTREAM_BLOCKED_NETWORKS
    allowed: tuple[IPNetwork, ...] = settings.GATEWAY_UPSTREAM_ALLOWED_NETWORKS
    return any(ip in net for net in blocked) and not any(ip in net for net in allowed)


def host_refusal(host: str) -> str | None:
    """Why an upstream URL's `host` is refused at validation (no DNS lookup), or None."""
    name = host.strip("[]").rstrip(".").lower()
    if name in BLOCKED_NAMES:
        return f"{host!r} is a cloud metadata service name; the gateway does not proxy to it."
    if address_blocked(name):
        return (
            f"{host!r} is a link-local or cloud metadata address; allow its range with "
            "GATEWAY_UPSTREAM_ALLOWED_NETWORKS if the service really lives there."
        )
    return None


class BlockedUpstreamAddress(NewConnectionError):
    """The upstream's name resolved to a blocked address; the connection was closed unused."""


class _PeerCheckMixin:
    """Checks the peer address of every new upstream socket before anything is sent on it."""

    host: str
    port: int

    def _new_conn(self) -> socket.socket:
        sock: socket.socket = super()._new_conn()  # type: ignore[misc]
        peer = str(sock.getpeername()[0])
        if address_blocked(peer):
            sock.close()
            logger.warning(
                "upstream %s:%s resolved to blocked address %s", self.host, self.port, peer
            )
            raise BlockedUpstreamAddress(
                self,  # type: ignore[arg-type]
                f"{self.host} resolved to {peer}, a blocked address",
            )
        return sock


class GuardedHTTPConnection(_PeerCheckMixin, HTTPConnection):
    """urllib3's HTTPConnection, refusing blocked peer addresses."""


class GuardedHTTPSConnection(_PeerCheckMixin, HTTPSConnection):
    """urllib3's HTTPSConnection, refusing blocked peer addresses before the TLS handshake."""


class GuardedHTTPConnectionPool(HTTPConnectionPool):
    """A pool of GuardedHTTPConnection."""

    ConnectionCls = GuardedHTTPConnection


class GuardedHTTPSConnectionPool(HTTPSConnectionPool):
    """A pool of GuardedHTTPSConnection."""

    ConnectionCls = GuardedHTTPSConnection


def guarded_pool_classes() -> dict[str, Any]:
    """`PoolManager.pool_classes_by_scheme` whose connections refuse blocked addresses."""
    return {"http": GuardedHTTPConnectionPool, "https": GuardedHTTPSConnectionPool}
