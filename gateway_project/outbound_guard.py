"""The one address guard for every outbound connection the gateway opens (SSRF defence).

Used at validation (config file, console, management API, registry: no DNS lookup there) and
at connect time (proxy, health checks, docs-portal spec fetch, JWKS fetch). At connect time the
host is resolved once, EVERY address it resolves to is checked, and the socket connects to the
checked addresses themselves: no second resolution, so DNS rebinding cannot slip past.

Addresses are compared in canonical form: every IPv4 spelling the C resolver accepts
(`2852039166`, `0xa9fea9fe`, `0251.0376.0251.0376`, `169.254.43518`, `127.1`) and every IPv6
form that carries an IPv4 address (mapped `::ffff:a.b.c.d`, compatible `::a.b.c.d`, NAT64
`64:ff9b::/96` and `64:ff9b:1::/48`, 6to4 `2002::/16`) is checked as the address it reaches.
GATEWAY_UPSTREAM_BLOCKED_NETWORKS lists the refused ranges; GATEWAY_UPSTREAM_ALLOWED_NETWORKS
re-allows ranges inside them.
"""

from __future__ import annotations

import http.client
import ipaddress
import logging
import re
import socket
from typing import Any

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util.connection import allowed_gai_family
from urllib3.util.timeout import _DEFAULT_TIMEOUT

from gateway_project.upstream_head import StrictHTTPResponse

logger = logging.getLogger("gateway.upstream")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Cloud metadata services known by name; refused whatever they resolve to.
BLOCKED_NAMES = frozenset(
    {"metadata", "metadata.google.internal", "instance-data", "instance-data.ec2.internal"}
)
# One part of a numeric IPv4 host as inet_aton reads it: hex, octal (leading 0) or decimal.
_IPV4_PART = re.compile(r"0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*")
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
# RFC 6761: every name under localhost is loopback, whatever DNS says.
_LOOPBACK = ipaddress.ip_address("127.0.0.1")


def parse_ipv4_spelling(text: str) -> ipaddress.IPv4Address | None:
    """The IPv4 address `text` spells as the C resolver reads it (1-4 parts), else None."""
    parts = text.split(".")
    if not 1 <= len(parts) <= 4 or not all(_IPV4_PART.fullmatch(p) for p in parts):
        return None
    values = [int(p, 16) if p[:2] in ("0x", "0X") else int(p, 8 if p[0] == "0" else 10)
              for p in parts]  # fmt: skip
    *leading, last = values
    if any(v > 255 for v in leading) or last >= 256 ** (5 - len(parts)):
        return None
    number = last
    for index, value in enumerate(leading):
        number |= value << (8 * (3 - index))
    return ipaddress.IPv4Address(number)


def parse_ip(text: str) -> IPAddress | None:
    """The IP address a host string names (any IPv4 spelling, IPv6 with or without brackets or
    a zone id), or None for a name."""
    host = text.strip().strip("[]").split("%", 1)[0]
    if host.endswith(".") and not host.endswith(".."):
        host = host[:-1]
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return parse_ipv4_spelling(host)


def reached_addresses(address: IPAddress) -> tuple[IPAddress, ...]:
    """`address` and the IPv4 address it carries (mapped, compatible, NAT64, 6to4), if any."""
    if isinstance(address, ipaddress.IPv4Address):
        return (address,)
    embedded = address.ipv4_mapped or address.sixtofour
    if embedded is None and any(address in net for net in _NAT64):
        embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if embedded is None and int(address) >> 32 == 0 and int(address) > 1:  # ::a.b.c.d
        embedded = ipaddress.IPv4Address(int(address))
    return (address,) if embedded is None else (address, embedded)


def ip_blocked(address: IPAddress) -> bool:
    """Whether `address` (or the IPv4 address it carries) is blocked and not re-allowed."""
    blocked: tuple[IPNetwork, ...] = settings.GATEWAY_UPSTREAM_BLOCKED_NETWORKS
    allowed: tuple[IPNetwork, ...] = settings.GATEWAY_UPSTREAM_ALLOWED_NETWORKS
    return any(
        any(ip in net for net in blocked) and not any(ip in net for net in allowed)
        for ip in reached_addresses(address)
    )


def address_blocked(address: str) -> bool:
    """Whether the IP literal `address` (any spelling) is blocked; False for a name."""
    ip = parse_ip(address)
    return ip is not None and ip_blocked(ip)


def host_refusal(host: str) -> str | None:
    """Why an outbound URL's `host` is refused at validation (no DNS lookup), or None."""
    name = host.strip("[]").rstrip(".").lower()
    if name in BLOCKED_NAMES:
        return f"{host!r} is a cloud metadata service name; the gateway does not proxy to it."
    ip = parse_ip(name)
    if ip is None:
        local = name == "localhost" or name.endswith(".localhost")
        if local and ip_blocked(_LOOPBACK):
            return f"{host!r} is loopback, a blocked address (GATEWAY_UPSTREAM_BLOCKED_NETWORKS)."
        return None
    if ip_blocked(ip):
        return (
            f"{host!r} is a link-local, cloud metadata or otherwise blocked address "
            f"({reached_addresses(ip)[-1]}); allow its range with "
            "GATEWAY_UPSTREAM_ALLOWED_NETWORKS if the service really lives there."
        )
    if ip.version == 4 and str(ip) != name:
        # Other parsers (the upstream's, a log reader's) may read `127.1` differently.
        return f"{host!r} is an unusual spelling of an IP address; write it as {ip}."
    return None


class BlockedUpstreamAddress(NewConnectionError):
    """The host resolved to a blocked address; no connection was opened."""


def checked_addresses(host: str, port: int) -> list[tuple[Any, ...]]:
    """Resolve `host` once; every address must pass the guard. getaddrinfo entries to connect to.

    ValueError (the reason) when one address is blocked: a name with one bad address among
    good ones is refused whole (whoever controls its DNS also controls which one is used).
    """
    name = host.strip("[]").rstrip(".").lower()
    if name in BLOCKED_NAMES:
        raise ValueError(f"{host} is a cloud metadata service name")
    infos = socket.getaddrinfo(host.strip("[]"), port, allowed_gai_family(), socket.SOCK_STREAM)
    for info in infos:
        ip = parse_ip(str(info[4][0]))
        if ip is None or ip_blocked(ip):
            raise ValueError(f"{host} resolved to {info[4][0]}, a blocked address")
    return infos


def guarded_socket(
    host: str,
    port: int,
    *,
    timeout: Any = _DEFAULT_TIMEOUT,
    socket_options: Any = (),
    source_address: Any = None,
    owner: Any = None,
) -> socket.socket:
    """A socket connected to `host` once every address it resolves to has passed the guard.

    Failures are urllib3's, naming `owner` (the connection or pool): BlockedUpstreamAddress,
    NameResolutionError, ConnectTimeoutError, NewConnectionError. `timeout` is the connect
    timeout (left as the socket's default when not given).
    """
    try:
        infos = checked_addresses(host, port)
    except ValueError as refusal:
        logger.warning("outbound connection refused: %s", refusal)
        raise BlockedUpstreamAddress(owner, str(refusal)) from None
    except socket.gaierror as error:  # as urllib3's own connect reports it
        raise NameResolutionError(host, owner, error) from None
    last: OSError | None = None
    for family, socktype, proto, _, address in infos:
        sock = socket.socket(family, socktype, proto)
        try:
            for level, option, value in socket_options or ():
                sock.setsockopt(level, option, value)
            if timeout is not _DEFAULT_TIMEOUT:
                sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            sock.connect(address)
            return sock
        except OSError as error:
            sock.close()
            last = error.with_traceback(None)  # its traceback holds this frame: a cycle
    if isinstance(last, TimeoutError):
        raise ConnectTimeoutError(owner, f"Connection to {host} timed out.")
    raise NewConnectionError(owner, f"Failed to establish a new connection: {last}")


class _GuardedConnectMixin:
    """Resolves, checks every address, then connects to exactly those addresses."""

    host: str
    port: int
    timeout: Any
    source_address: Any
    socket_options: Any
    response_class: type[http.client.HTTPResponse] = StrictHTTPResponse  # a strict head parse

    def _new_conn(self) -> socket.socket:
        return guarded_socket(
            self.host,
            self.port,
            timeout=self.timeout,
            socket_options=self.socket_options,
            source_address=self.source_address,
            owner=self,
        )


class GuardedHTTPConnection(_GuardedConnectMixin, HTTPConnection):
    """urllib3's HTTPConnection behind the address guard."""


class GuardedHTTPSConnection(_GuardedConnectMixin, HTTPSConnection):
    """urllib3's HTTPSConnection behind the address guard (checked before the TLS handshake)."""


class GuardedHTTPConnectionPool(HTTPConnectionPool):
    """A pool of GuardedHTTPConnection."""

    ConnectionCls = GuardedHTTPConnection


class GuardedHTTPSConnectionPool(HTTPSConnectionPool):
    """A pool of GuardedHTTPSConnection."""

    ConnectionCls = GuardedHTTPSConnection


def guarded_pool_classes() -> dict[str, Any]:
    """`PoolManager.pool_classes_by_scheme` whose connections pass the address guard."""
    return {"http": GuardedHTTPConnectionPool, "https": GuardedHTTPSConnectionPool}


class _GuardedAdapter(HTTPAdapter):
    """A requests adapter whose pools pass the address guard."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        """Build the pool manager as requests does, with guarded pool classes."""
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = guarded_pool_classes()


def guarded_session() -> requests.Session:
    """A requests session behind the address guard (no proxies from the environment: a proxy
    would resolve the name itself, out of the guard's sight)."""
    session = requests.Session()
    session.trust_env = False
    adapter = _GuardedAdapter()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
