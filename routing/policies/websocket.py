"""`websocket`: an upgrade handshake forwarded to the upstream, then bytes relayed both ways.

The handshake is an ordinary request up to here (IP rules, authentication, limits have run).
This module sends it to a target over a guarded connection, reads the upstream's answer head,
and on `101` answers the client with the upstream's handshake headers and hands both sockets
over (gateway_project.handoff); once the 101 has gone out the gunicorn worker relays them in its
event loop (gateway_project/ws_relay.py), holding no thread; see README.
"""

from __future__ import annotations

import re
import socket
import ssl
import time
from typing import Any

from django.http import HttpRequest, HttpResponse

from gateway_project import handoff
from gateway_project.errors import (
    BadRequest,
    GatewayError,
    UpstreamInvalidResponse,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from gateway_project.outbound_guard import checked_addresses
from routing.forwarding import connection_listed
from routing.table import CompiledRoute, CompiledTarget
from routing.upstream import UpstreamRequest, upstream_client

_MAX_HEAD = 64 * 1024
_RECV = 64 * 1024
_STATUS_LINE = re.compile(rb"HTTP/1\.1 ([1-5][0-9][0-9])(?: [\t\x20-\x7e\x80-\xff]*)?")
_HEADER_LINE = re.compile(
    rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[\t\x20]*([\t\x20-\x7e\x80-\xff]*?)[\t\x20]*"
)
# Handshake headers of the upstream's 101 that the client needs (RFC 6455 section 4.2.2).
_HANDSHAKE_HEADERS = ("sec-websocket-accept", "sec-websocket-protocol", "sec-websocket-extensions")


class WebSocketNotSupported(GatewayError):
    """The server running the gateway cannot hand a connection over (not its gunicorn worker)."""

    status_code = 501
    default_code = "websocket_not_supported"
    default_detail = "WebSocket relaying needs the gateway's gunicorn worker."
    title = "Not implemented"


def is_upgrade_request(meta: Any) -> bool:
    """Whether the request asks for a WebSocket upgrade (Connection: Upgrade + Upgrade: websocket)."""
    upgrade = str(meta.get("HTTP_UPGRADE", "")).strip().lower()
    return upgrade == "websocket" and "upgrade" in connection_listed(meta.get("HTTP_CONNECTION"))


def check_handshake(method: str, meta: Any) -> None:
    """An upgrade must be a GET without a body (RFC 6455 section 4.1); BadRequest otherwise."""
    if method != "GET":
        raise BadRequest("A WebSocket handshake is a GET request.")
    length = str(meta.get("CONTENT_LENGTH") or "0").strip()
    if meta.get("HTTP_TRANSFER_ENCODING") or length not in ("", "0"):
        raise BadRequest("A WebSocket handshake carries no body.")


def _connect(target: CompiledTarget, timeout: float) -> socket.socket:
    """A connection to `target` through the address guard (TLS for https targets)."""
    try:
        infos = checked_addresses(target.connect_host or target.host, target.port)
    except (ValueError, OSError):
        raise UpstreamUnavailable() from None
    for family, socktype, proto, _, address in infos:
        sock = socket.socket(family, socktype, proto)
        sock.settimeout(timeout)
        try:
            sock.connect(address)
        except TimeoutError:
            sock.close()
            raise UpstreamTimeout() from None
        except OSError:
            sock.close()
            continue
        if target.scheme == "https":
            try:
                sock = ssl.create_default_context().wrap_socket(sock, server_hostname=target.host)
            except (OSError, ssl.SSLError):
                sock.close()
                raise UpstreamUnavailable() from None
        return sock
    raise UpstreamUnavailable()


def _read_head(sock: socket.socket, deadline: float) -> tuple[bytes, bytes]:
    """The upstream's answer head and whatever followed it in the same reads."""
    data = bytearray()
    while b"\r\n\r\n" not in data:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise UpstreamTimeout()
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(_RECV)
        except TimeoutError:
            raise UpstreamTimeout() from None
        except OSError:
            raise UpstreamUnavailable() from None
        if not chunk:
            raise UpstreamUnavailable()
        data += chunk
        if len(data) > _MAX_HEAD and b"\r\n\r\n" not in data[:_MAX_HEAD]:
            raise UpstreamInvalidResponse()
    head, _, rest = bytes(data).partition(b"\r\n\r\n")
    return head, rest


def parse_head(head: bytes) -> tuple[int, list[tuple[str, str]]]:
    """(status, headers) of an answer head; UpstreamInvalidResponse for anything malformed."""
    lines = head.split(b"\r\n")
    status = _STATUS_LINE.fullmatch(lines[0])
    if status is None:
        raise UpstreamInvalidResponse()
    headers = []
    for line in lines[1:]:
        field = _HEADER_LINE.fullmatch(line)
        if field is None:  # bare CR/LF, NUL, obs-fold, a bad name: no smuggling through here
            raise UpstreamInvalidResponse()
        headers.append((field[1].decode("latin-1"), field[2].decode("latin-1")))
    return int(status[1]), headers


def _request_head(target: CompiledTarget, outgoing: UpstreamRequest) -> bytes:
    lines = [f"GET {target.base_path}{outgoing.path} HTTP/1.1", f"Host: {target.host_header}"]
    lines += [f"{name}: {value}" for name, value in outgoing.headers.items() if name != "host"]
    lines += ["Connection: Upgrade", "Upgrade: websocket"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def open_websocket(
    request: HttpRequest, route: CompiledRoute, outgoing: UpstreamRequest
) -> HttpResponse:
    """Forward the handshake; on the upstream's 101 answer 101 and register the relay.

    Any other answer of the upstream (a refused handshake) is passed back as it is when it is
    small; the client's socket is then served as ordinary HTTP.
    """
    client = request.META.get("gunicorn.socket")
    if client is None or not handoff.available():
        raise WebSocketNotSupported()
    outgoing.headers.pop("content-length", None)
    target = upstream_client().picker.pick(route.service, set())
    deadline = time.monotonic() + route.timeout_seconds
    upstream = _connect(target, min(route.service.connect_timeout_seconds, route.timeout_seconds))
    try:
        upstream.settimeout(max(deadline - time.monotonic(), 0.001))
        upstream.sendall(_request_head(target, outgoing))
        head, rest = _read_head(upstream, deadline)
        status, headers = parse_head(head)
    except (GatewayError, OSError) as error:
        upstream.close()
        if isinstance(error, GatewayError):
            raise
        raise UpstreamUnavailable() from None
    lowered = {name.lower(): value for name, value in headers}
    if status != 101:
        upstream.close()
        return _refusal(status, lowered, rest)
    if lowered.get("upgrade", "").strip().lower() != "websocket":
        upstream.close()
        raise UpstreamInvalidResponse()
    response = HttpResponse(status=101)
    del response["Content-Type"]
    response["Connection"] = "Upgrade"
    response["Upgrade"] = "websocket"
    for name in _HANDSHAKE_HEADERS:
        if name in lowered:
            response[name] = lowered[name]
    response.gateway_proxied = True  # type: ignore[attr-defined] # no security headers of ours
    response.xframe_options_exempt = True
    handoff.hand_off(client, handoff.Upgrade(upstream, rest))
    return response


def _refusal(status: int, headers: dict[str, str], body: bytes) -> HttpResponse:
    """The upstream's non-101 answer to a handshake, when it came whole with its head."""
    length = headers.get("content-length", "0").strip()
    if status < 200 or not length.isdigit() or int(length) != len(body):
        raise UpstreamInvalidResponse()
    response = HttpResponse(body, status=status)
    if "content-type" in headers:
        response["Content-Type"] = headers["content-type"]
    else:
        del response["Content-Type"]
    return response
