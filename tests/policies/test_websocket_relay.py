"""websocket: the handshake checks, the upstream head parser and the hand-off (the relay itself:
tests/policies/test_ws_relay.py)."""

from __future__ import annotations

import socket

import pytest

from gateway_project import handoff
from gateway_project.errors import BadRequest, UpstreamInvalidResponse
from routing.policies.websocket import check_handshake, is_upgrade_request, parse_head

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
    upstream, upstream_peer = socket.socketpair()
    try:
        upgrade = handoff.Upgrade(upstream, b"")
        handoff.hand_off(first, upgrade)
        assert handoff.claim(second) is None
        assert handoff.claim(first) is upgrade
        assert handoff.claim(first) is None
    finally:
        for sock in (first, second, upstream, upstream_peer):
            sock.close()


def test_discarding_an_upgrade_closes_its_upstream() -> None:
    upstream, upstream_peer = socket.socketpair()
    handoff.Upgrade(upstream, b"").discard()
    upstream_peer.settimeout(5)
    assert upstream_peer.recv(10) == b""
    upstream_peer.close()


def test_upgrade_is_refused_where_nothing_relays_it() -> None:
    """Outside the gateway's gunicorn worker (another server, a test client): 501, before
    any upstream is contacted."""
    from django.http import HttpRequest

    from routing.policies.websocket import WebSocketNotSupported, open_websocket

    client, peer = socket.socketpair()
    try:
        request = HttpRequest()
        request.META["gunicorn.socket"] = client
        assert not handoff.available()
        with pytest.raises(WebSocketNotSupported) as refused:
            open_websocket(request, None, None)  # type: ignore[arg-type]
        assert refused.value.status_code == 501
    finally:
        client.close()
        peer.close()
