"""The event-loop WebSocket relay (gateway_project/ws_relay.py), driven by a selector here as
the worker drives it, over real loopback TCP connections."""

from __future__ import annotations

import contextlib
import os
import selectors
import shutil
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gateway_project import ws_relay
from gateway_project.metrics import WEBSOCKETS_OPEN
from gateway_project.ws_relay import BUFFER_BYTES, FrameBoundary, Relays, close_frame
from tests.support.tls import self_signed_certificate

GOING_AWAY_FRAME = b"\x88\x02\x03\xe9"  # unmasked close frame, code 1001


def _tcp_pair() -> tuple[socket.socket, socket.socket]:
    """(application end, gateway end) of one loopback TCP connection."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        app = socket.create_connection(listener.getsockname())
        gateway, _ = listener.accept()
    return app, gateway


def _gauge() -> float:
    return float(WEBSOCKETS_OPEN._value.get())


class Loop:
    """A selector and its relays, run in the test's thread between the test's steps."""

    def __init__(self, idle_timeout: float = 300.0) -> None:
        self.selector = selectors.DefaultSelector()
        self.closed = 0
        self.relays = Relays(self.selector, idle_timeout=idle_timeout, on_closed=self._closed)

    def _closed(self) -> None:
        self.closed += 1

    def turn(self) -> None:
        for key, _ in self.selector.select(0.02):
            key.data(key.fileobj)
        self.relays.expire(time.monotonic())

    def until(self, condition: Callable[[], bool], seconds: float = 20.0) -> None:
        deadline = time.monotonic() + seconds
        while not condition():
            assert time.monotonic() < deadline, "the relay never got there"
            self.turn()


class Peer:
    """An application end (client or upstream) reading without blocking the loop."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        sock.setblocking(False)
        self.received = bytearray()
        self.ended = False  # EOF or reset seen

    def poll(self) -> None:
        while not self.ended:
            try:
                data = self.sock.recv(1 << 20)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self.ended = True
                return
            self.received += data


@pytest.fixture
def relay_pair() -> Iterator[tuple[Loop, Peer, Peer]]:
    """A relay between a client and an upstream, started with bytes each side sent early."""
    loop = Loop()
    client_app, client_gw = _tcp_pair()
    upstream_app, upstream_gw = _tcp_pair()
    loop.relays.start(client_gw, upstream_gw, b"early", b"first")
    client, upstream = Peer(client_app), Peer(upstream_app)
    yield loop, client, upstream
    client_app.close()
    upstream_app.close()
    for relay in list(loop.relays.open):
        loop.relays._finish(relay)


def _wait_for(loop: Loop, peer: Peer, data: bytes) -> None:
    def arrived() -> bool:
        peer.poll()
        return data in peer.received

    loop.until(arrived)


def _wait_end(loop: Loop, peer: Peer) -> None:
    def ended() -> bool:
        peer.poll()
        return peer.ended

    loop.until(ended)


def test_relay_copies_both_ways_and_passes_each_close_on(relay_pair) -> None:
    loop, client, upstream = relay_pair
    before = _gauge()
    _wait_for(loop, upstream, b"early")  # what the client sent right after its head
    _wait_for(loop, client, b"first")  # what followed the upstream's 101 head
    client.sock.sendall(b"to upstream")
    _wait_for(loop, upstream, b"to upstream")
    upstream.sock.sendall(b"to client")
    _wait_for(loop, client, b"to client")
    client.sock.shutdown(socket.SHUT_WR)  # the client closes its side
    _wait_end(loop, upstream)  # ... which the upstream sees
    assert len(loop.relays) == 1
    upstream.sock.sendall(b"last words")  # the other direction still flows (close handshake)
    _wait_for(loop, client, b"last words")
    upstream.sock.shutdown(socket.SHUT_WR)
    _wait_end(loop, client)
    loop.until(lambda: len(loop.relays) == 0)
    assert loop.closed == 1  # counted out exactly once
    assert _gauge() == before - 1


def test_an_upstream_reset_closes_the_client_after_what_was_buffered(relay_pair) -> None:
    loop, client, upstream = relay_pair
    upstream.sock.sendall(b"before the reset")
    _wait_for(loop, client, b"before the reset")
    upstream.sock.setsockopt(
        socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
    )
    upstream.sock.close()  # linger 0: RST
    _wait_end(loop, client)
    loop.until(lambda: len(loop.relays) == 0)
    assert loop.closed == 1


@pytest.mark.parametrize("towards", ["client", "upstream"])
def test_a_side_that_does_not_read_slows_the_sender_down(relay_pair, towards: str) -> None:
    """Back-pressure both ways: the relay's buffer stays bounded; the sender's sends block."""
    loop, client, upstream = relay_pair
    _wait_for(loop, client, b"first")
    _wait_for(loop, upstream, b"early")
    client.received.clear()
    upstream.received.clear()
    (relay,) = loop.relays.open
    if towards == "upstream":  # the same test the other way round
        client, upstream = upstream, client
    pipe = relay.to_client if towards == "client" else relay.to_upstream
    chunk = bytes(range(256)) * 256  # 64 KiB
    sent = 0
    blocked_turns = 0
    while blocked_turns < 20 and sent < 200 * len(chunk):  # bounded: 12.5 MiB at most
        try:
            sent += upstream.sock.send(chunk)
            blocked_turns = 0
        except BlockingIOError:
            blocked_turns += 1
        loop.turn()
        assert len(pipe.buffer) <= BUFFER_BYTES
    # The sender could not send everything: the receiver not reading stopped it.
    assert sent < 200 * len(chunk)
    # Everything sent arrives, in order, once the client reads.
    _wait_for_count(loop, client, sent)
    assert bytes(client.received) == (chunk * (sent // len(chunk) + 1))[:sent]


def _wait_for_count(loop: Loop, peer: Peer, count: int) -> None:
    def enough() -> bool:
        peer.poll()
        return len(peer.received) >= count

    loop.until(enough)


def _unmask(frame: bytes) -> tuple[int, bytes]:
    """(opcode, payload) of one masked frame with a short payload."""
    assert frame[1] & 0x80, "a frame towards the upstream must be masked"
    size = frame[1] & 0x7F
    key = frame[2:6]
    payload = bytes(b ^ key[i % 4] for i, b in enumerate(frame[6 : 6 + size]))
    return frame[0] & 0x0F, payload


def test_an_idle_relay_goes_away_with_a_close_frame_each_way() -> None:
    loop = Loop(idle_timeout=0.2)
    client_app, client_gw = _tcp_pair()
    upstream_app, upstream_gw = _tcp_pair()
    with client_app, upstream_app:
        loop.relays.start(client_gw, upstream_gw, b"", b"")
        client, upstream = Peer(client_app), Peer(upstream_app)
        _wait_end(loop, client)
        _wait_end(loop, upstream)
        assert bytes(client.received) == GOING_AWAY_FRAME
        assert _unmask(bytes(upstream.received)) == (0x8, (1001).to_bytes(2, "big"))
        # Each side answers with its close frame and closes: then the relay is gone.
        client_app.close()
        upstream_app.close()
        loop.until(lambda: len(loop.relays) == 0)
    assert loop.closed == 1


def test_going_away_waits_for_the_frame_in_flight_to_end(relay_pair) -> None:
    loop, client, upstream = relay_pair
    _wait_for(loop, client, b"first")
    client.received.clear()
    # "first" was no frame: from here the stream is followed as frames from a clean start.
    (relay,) = loop.relays.open
    relay.to_client.frames = FrameBoundary()
    upstream.sock.sendall(b"\x81\x05hel")  # a text frame, 2 of its 5 bytes still to come
    _wait_for(loop, client, b"hel")
    loop.relays.go_away_all()
    for _ in range(10):
        loop.turn()
    client.poll()
    assert bytes(client.received) == b"\x81\x05hel"  # no close frame inside a frame
    upstream.sock.sendall(b"lo\x81\x01x")
    _wait_end(loop, client)
    # The frame is finished, then the close frame; what followed it was dropped.
    assert bytes(client.received) == b"\x81\x05hello" + GOING_AWAY_FRAME


def test_a_stopping_relay_is_closed_even_when_no_side_cooperates(monkeypatch, relay_pair) -> None:
    monkeypatch.setattr(ws_relay, "CLOSING_SECONDS", 0.1)
    monkeypatch.setattr(ws_relay, "_SCAN_SECONDS", 0.05)
    loop, client, upstream = relay_pair
    (relay,) = loop.relays.open
    relay.to_client.frames.remaining = 10  # mid-frame: no close frame can go in
    loop.relays.go_away_all()
    _wait_end(loop, client)
    _wait_end(loop, upstream)
    assert len(loop.relays) == 0 and loop.closed == 1


@pytest.mark.parametrize("step", [1, 3, 7, 1000])
def test_frame_boundaries_are_followed_through_any_split(step: int) -> None:
    frames = [
        b"\x81\x00",  # empty text frame
        b"\x82\x7e\x01\x00" + b"a" * 256,  # 16-bit length
        b"\x82\x7f" + (70_000).to_bytes(8, "big") + b"b" * 70_000,  # 64-bit length
        b"\x81\x83abcd" + b"xyz",  # masked
        close_frame(1001, masked=True),
    ]
    tracker = FrameBoundary()
    for frame in frames:
        for index in range(0, len(frame), step):
            tracker.feed(frame[index : index + step])
            assert tracker.at_boundary == (index + step >= len(frame))


def test_close_frames_carry_the_code() -> None:
    assert close_frame(1001, masked=False) == GOING_AWAY_FRAME
    assert _unmask(close_frame(1001, masked=True)) == (0x8, b"\x03\xe9")


def test_a_fault_in_one_relay_closes_that_relay_not_the_loop(monkeypatch) -> None:
    loop = Loop()
    client_app, client_gw = _tcp_pair()
    upstream_app, upstream_gw = _tcp_pair()
    before = _gauge()

    def broken(*args: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(Relays, "_flush", broken)
    with client_app, upstream_app:
        loop.relays.start(client_gw, upstream_gw, b"x", b"")  # no exception out of it
        assert len(loop.relays) == 0 and loop.closed == 1
        assert _gauge() == before
        client = Peer(client_app)
        _wait_end(loop, client)


def _tls_contexts(directory: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server, client) contexts around a throwaway self-signed certificate for 127.0.0.1."""
    cert, key = self_signed_certificate(directory)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert, key)
    client = ssl.create_default_context(cafile=str(cert))
    return server, client


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_a_tls_upstream_is_relayed_both_ways(tmp_path) -> None:
    server_context, client_context = _tls_contexts(tmp_path)
    loop = Loop()
    client_app, client_gw = _tcp_pair()
    upstream_raw, upstream_gw_raw = _tcp_pair()
    accepted: list[ssl.SSLSocket] = []
    handshake = threading.Thread(
        target=lambda: accepted.append(server_context.wrap_socket(upstream_raw, server_side=True))
    )
    handshake.start()
    upstream_gw = client_context.wrap_socket(upstream_gw_raw, server_hostname="127.0.0.1")
    handshake.join(10)
    (upstream_app,) = accepted
    payload = os.urandom(300_000)  # more than one buffer and many TLS records
    with client_app, upstream_app:
        loop.relays.start(client_gw, upstream_gw, b"", b"")
        sender = threading.Thread(target=upstream_app.sendall, args=(payload,))
        sender.start()
        client = Peer(client_app)
        _wait_for_count(loop, client, len(payload))
        sender.join(10)
        assert bytes(client.received) == payload
        client_app.sendall(b"to the upstream")
        upstream_app.settimeout(10)
        got = b""
        while len(got) < len(b"to the upstream"):
            loop.turn()
            with contextlib.suppress(TimeoutError):
                upstream_app.settimeout(0.05)
                got += upstream_app.recv(100)
        assert got == b"to the upstream"
        upstream_app.close()
        _wait_end(loop, client)
        loop.until(lambda: len(loop.relays) == 0)


def test_a_stream_of_tiny_frames_is_no_longer_followed() -> None:
    """Bounded work per byte: 2-byte frames would cost the loop a header parse every 2 bytes."""
    tracker = FrameBoundary()
    assert tracker.feed(b"\x81\x00" * 8) == 16 and tracker.at_boundary  # a small burst is fine
    tracker.feed(b"\x81\x00" * 32768)
    assert not tracker.followed and not tracker.at_boundary  # never a close frame from here
    assert tracker.feed(b"\x81\x00", to_boundary=True) == 2  # bytes still all forwarded
