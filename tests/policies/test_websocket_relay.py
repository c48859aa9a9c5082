"""websocket: the handshake checks, the upstream head parser, the hand-off and the relay."""

from __future__ import annotations

import socket
import threading

import pytest

from gateway_project import handoff
from gateway_project.errors import BadRequest, UpstreamInvalidResponse
from gateway_project.metrics import WEBSOCKETS_OPEN
from routing.policies.websocket import check_handshake, is_upgrade_request, parse_head, relay

UPGRADE = {"HTTP_CONNECTION": "keep-alive, Upgrade", "HTTP_UPGRADE": "websocket"}


def test_upgrade_request_needs_both_headers() -> None:
    assert is_upgrade_request(UPGRADE)
    assert not is_upgrade_request({"HTTP_UPGRADE": "websocket"})
    assert not is_upgrade_request({"HTTP_CONNECTION": "Upgrade", "HTTP_UPGRADE": "h2c"})


@pytest.mark.parametrize(
    ("method", "meta"),
    [
        ("POST", {}),
        ("GET", {"CONTENT_LENGTH": "5"}),
        ("GET", {"HTTP_TRANSFER_ENCODING": "chunked"}),
    ],
)
def test_handshake_with_a_body_or_another_method_is_refused(method: str, meta: dict) -> None:
    with pytest.raises(BadRequest):
        check_handshake(method, {**UPGRADE, **meta})


def test_handshake_without_body_passes() -> None:
    check_handshake("GET", {**UPGRADE, "CONTENT_LENGTH": ""})


def test_parse_head_reads_a_101() -> None:
    status, headers = parse_head(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    )
    assert status == 101
    assert ("Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") in headers


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 101 OK\r\nUpgrade: websocket\nSet-Cookie: injected=1",
        b"HTTP/1.1 101 OK\r\nX-A: a\x00b",
        b"HTTP/1.1 101 OK\r\n folded: value",
        b"HTTP/1.1 101 OK\r\nBad Name: x",
        b"HTTP/1.1 101 OK\r\nX-A: a\rb",
        b"HTTP/2 101 OK",
        b"garbage",
    ],
)
def test_parse_head_refuses_malformed_upstream_heads(head: bytes) -> None:
    with pytest.raises(UpstreamInvalidResponse):
        parse_head(head)


def test_hand_off_is_claimed_once_and_only_for_its_socket() -> None:
    first, second = socket.socketpair()
    try:

        def take_over(sock: socket.socket, pending: bytes) -> None:
            """Nothing: only its identity matters here."""

        handoff.hand_off(first, take_over)
        assert handoff.claim(second) is None
        assert handoff.claim(first) is take_over
        assert handoff.claim(first) is None
    finally:
        first.close()
        second.close()


def _gauge() -> float:
    return float(WEBSOCKETS_OPEN._value.get())


def test_relay_copies_both_ways_and_passes_each_close_on() -> None:
    client_app, client_gw = socket.socketpair()
    upstream_app, upstream_gw = socket.socketpair()
    before = _gauge()
    thread = threading.Thread(
        target=relay,
        args=(client_gw, b"early"),
        kwargs={"upstream": upstream_gw, "from_upstream": b"first"},
        daemon=True,
    )
    thread.start()
    for sock in (client_app, upstream_app):
        sock.settimeout(10)
    assert upstream_app.recv(100) == b"early"  # what the client sent right after its head
    assert client_app.recv(100) == b"first"  # what followed the upstream's 101 head
    client_app.sendall(b"to upstream")
    assert upstream_app.recv(100) == b"to upstream"
    upstream_app.sendall(b"to client")
    assert client_app.recv(100) == b"to client"
    assert _gauge() == before + 1
    client_app.shutdown(socket.SHUT_WR)  # the client closes its side
    assert upstream_app.recv(100) == b""  # ... which the upstream sees
    upstream_app.sendall(b"last words")  # the other direction still flows (close handshake)
    assert client_app.recv(100) == b"last words"
    upstream_app.close()
    assert client_app.recv(100) == b""
    thread.join(10)
    assert not thread.is_alive()
    assert _gauge() == before
    client_app.close()


def test_relay_ends_when_the_upstream_resets() -> None:
    client_app, client_gw = socket.socketpair()
    upstream_app, upstream_gw = socket.socketpair()
    thread = threading.Thread(
        target=relay,
        args=(client_gw, b""),
        kwargs={"upstream": upstream_gw, "from_upstream": b""},
        daemon=True,
    )
    thread.start()
    upstream_app.close()
    client_app.settimeout(10)
    assert client_app.recv(100) == b""
    client_app.close()
    thread.join(10)
    assert not thread.is_alive()
