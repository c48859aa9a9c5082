"""What the proxy adds, keeps and drops in the headers it forwards both ways."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from gateway_project.ids import random_hex
from gateway_project.net import is_trusted_proxy

# RFC 9110 section 7.6.1, plus the legacy proxy headers the contract names.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "proxy-authorization",
        "proxy-authenticate",
        "proxy-connection",
    }
)
# Headers the gateway sets itself towards the upstream; a client's copy is always dropped.
GATEWAY_SET_REQUEST_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "x-request-id",
        "traceparent",
        "x-consumer-id",
        "x-consumer-username",
        "x-consumer-roles",
        "x-consumer-permissions",
        "via",
    }
)
# What a client may claim about its own address and how it came (RFC 7239, nginx's X-Real-IP):
# passed on only from a trusted proxy, as X-Forwarded-For is; upstreams believe their proxy.
CLIENT_ADDRESS_CLAIMS = frozenset({"forwarded", "x-real-ip"})
# Headers of the upstream's answer that the gateway's own server rewrites.
DROPPED_RESPONSE_HEADERS = HOP_BY_HOP | {"x-request-id"}

_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


def connection_listed(connection_value: str | None) -> set[str]:
    """Header names listed in a Connection header (themselves hop-by-hop)."""
    if not connection_value:
        return set()
    return {token.strip().lower() for token in connection_value.split(",") if token.strip()}


# The credentials the proxy accepts: a route with `hide_credentials` never forwards them.
CREDENTIAL_HEADERS = frozenset({"authorization", "x-api-key"})


# The request headers never forwarded, by (hide_credentials, from an untrusted peer).
_DROPPED_REQUEST_HEADERS = {
    (hide, untrusted): HOP_BY_HOP
    | GATEWAY_SET_REQUEST_HEADERS
    | (CREDENTIAL_HEADERS if hide else frozenset())
    | (CLIENT_ADDRESS_CLAIMS if untrusted else frozenset())
    for hide in (False, True)
    for untrusted in (False, True)
}


# The header name of each WSGI environ key seen ("" for a key that holds no header), so that a
# request looks its keys up instead of testing and rewriting each (25 or so per request).
# Bounded in count and in each key's length: clients choose header names (up to a request
# line's length each); a key past either bound is worked out every time.
_ENVIRON_NAMES_LIMIT = 1024
_ENVIRON_KEY_MAX = 64
_environ_names: dict[str, str] = {}


def _header_name(key: str) -> str:
    """The lower-case header name an environ key carries, or ""; remembered within the bound."""
    if key.startswith("HTTP_"):
        name = key[5:].replace("_", "-").lower()
    elif key == "CONTENT_TYPE":
        name = "content-type"
    else:
        name = ""
    if len(key) <= _ENVIRON_KEY_MAX and len(_environ_names) < _ENVIRON_NAMES_LIMIT:
        _environ_names[key] = name
    return name


def request_headers_from_meta(
    meta: Mapping[str, object], *, hide_credentials: bool = False
) -> list[tuple[str, str]]:
    """The client's end-to-end headers from a WSGI environ, minus what the gateway sets.

    `hide_credentials` also drops the caller's Authorization and X-API-Key; Forwarded and
    X-Real-IP are kept only from a trusted proxy.
    """
    dropped = _DROPPED_REQUEST_HEADERS[
        hide_credentials, not is_trusted_proxy(str(meta.get("REMOTE_ADDR", "")))
    ]
    listed = meta.get("HTTP_CONNECTION")
    if listed:
        dropped = dropped | connection_listed(str(listed))
    headers: list[tuple[str, str]] = []
    names = _environ_names
    for key, value in meta.items():
        name = names.get(key)
        if name is None:
            name = _header_name(key)
        if name and name not in dropped and value != "":
            headers.append((name, str(value)))
    return headers


def forwarded_for(remote_addr: str, client_value: str | None) -> str:
    """The X-Forwarded-For to send: the trusted chain (if any) plus our peer's address."""
    if client_value and is_trusted_proxy(remote_addr):
        return f"{client_value}, {remote_addr}"
    return remote_addr


def traceparent_for(client_value: str | None) -> str:
    """A W3C traceparent continuing the client's trace (new span id), or starting one."""
    span_id = random_hex(8)
    if client_value:
        match = _TRACEPARENT.match(client_value.strip())
        if match and match[1] != "ff" and set(match[2]) != {"0"} and set(match[3]) != {"0"}:
            return f"00-{match[2]}-{span_id}-{match[4]}"
    return f"00-{random_hex(16)}-{span_id}-01"


def response_headers(
    raw: Iterable[tuple[str, str]],
) -> tuple[dict[str, tuple[str, str]], list[str]]:
    """Split an upstream answer's headers into ({lower-case name: (name, values joined by
    ', ')}, Set-Cookie values): the first is the shape of Django's response header store."""
    pairs = [(name, name.lower(), value) for name, value in raw]
    dropped = DROPPED_RESPONSE_HEADERS | connection_listed(
        ", ".join(value for _, lowered, value in pairs if lowered == "connection")
    )
    joined: dict[str, tuple[str, str]] = {}
    cookies: list[str] = []
    for name, lowered, value in pairs:
        if lowered in dropped:
            continue
        if lowered == "set-cookie":
            cookies.append(value)  # never joined: Set-Cookie values may contain commas
        elif lowered not in joined:
            joined[lowered] = (name, value)
        elif lowered != "content-length":  # repeats carry the same value (checked by the parser)
            joined[lowered] = (joined[lowered][0], f"{joined[lowered][1]}, {value}")
    return joined, cookies
