"""What a kept-alive request no longer costs in system calls: mode changes that change
nothing, a drain of a body that was never there, a poll before a send that fits, one getrandom()
per id, a separate write for an answer's head."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import types
from collections.abc import Iterator

import pytest
from gunicorn import util
from gunicorn.config import Config
from gunicorn.http import wsgi
from gunicorn.http.parser import RequestParser

from gateway_project import ids, server_errors
from gateway_project.client_socket import ClientSocket
from gateway_project.gunicorn_worker import DrainingThreadWorker, _body_read_to_end
from gateway_project.one_write_response import HeadWithBodyResponse


@pytest.fixture
def pair() -> Iterator[tuple[ClientSocket, socket.socket]]:
    """A ClientSocket bounded at 30 s and the peer that writes to it."""
    ours, peer = socket.socketpair()
    adopted = ClientSocket.adopt(ours, 30.0)
    yield adopted, peer
    adopted.close()
    peer.close()


@pytest.fixture
def mode_changes(monkeypatch: pytest.MonkeyPatch) -> list[float | None]:
    """Every timeout the socket module is asked to set (each one a system call)."""
    calls: list[float | None] = []
    real = socket.socket.settimeout

    def counted(sock: socket.socket, value: float | None) -> None:
        calls.append(value)
        real(sock, value)

    monkeypatch.setattr(socket.socket, "settimeout", counted)
    return calls


def test_adopting_keeps_the_descriptor_and_its_blocking_state():
    ours, peer = socket.socketpair()
    ours.setblocking(False)
    number = ours.fileno()
    adopted = ClientSocket.adopt(ours, 30.0)
    try:
        assert adopted.fileno() == number and ours.fileno() == -1
        assert adopted.gettimeout() == 0.0
    finally:
        adopted.close()
        peer.close()


def test_blocking_means_within_the_read_bound(pair):
    sock, _ = pair
    sock.setblocking(True)
    assert sock.gettimeout() == 30.0
    sock.setblocking(False)
    assert sock.gettimeout() == 0.0
    sock.bound = None
    sock.setblocking(True)
    assert sock.gettimeout() is None


def test_a_mode_change_that_changes_nothing_is_skipped(pair, mode_changes):
    sock, _ = pair
    sock.setblocking(True)  # as gthread does before serving
    sock.settimeout(30.0)  # as the worker's init does right after
    sock.setblocking(True)
    sock.setblocking(False)  # as the loop does for the poller
    sock.setblocking(False)
    assert mode_changes == [30.0, 0.0]


def test_read_now_reads_what_arrived_without_waiting_in_every_mode(pair):
    sock, peer = pair
    for timeout in (30.0, 0.0, None):
        sock.settimeout(timeout)
        with pytest.raises(BlockingIOError):  # socket.recv would wait 30 s, then time out
            sock.read_now(100)
        peer.sendall(b"GET / HTTP/1.1\r\n")
        assert sock.read_now(100) == b"GET / HTTP/1.1\r\n"
        assert sock.gettimeout() == timeout  # reading changed no mode
    peer.close()
    assert sock.read_now(100) == b""  # the peer is gone


def test_sendall_writes_first_and_waits_only_for_what_did_not_fit(pair, monkeypatch):
    sock, peer = pair
    polled: list[bytes] = []
    real = socket.socket.sendall

    def counted(self: socket.socket, data, flags: int = 0) -> None:
        polled.append(bytes(data))
        real(self, data, flags)

    monkeypatch.setattr(socket.socket, "sendall", counted)
    sock.setblocking(True)
    sock.sendall(b"HTTP/1.1 200 OK\r\n\r\nhello")
    assert peer.recv(100) == b"HTTP/1.1 200 OK\r\n\r\nhello"
    assert polled == []  # it fitted: written without CPython's poll-then-send

    big = bytes(range(256)) * 40_000  # ~10 MB: more than the socket buffers hold
    received = bytearray()
    reader = threading.Thread(target=lambda: _read_all(peer, len(big), received))
    reader.start()
    sock.sendall(big)
    reader.join(30)
    assert bytes(received) == big
    assert len(polled) == 1 and big.endswith(polled[0])  # the rest, within the timeout


def test_sendall_to_a_peer_that_stops_reading_times_out_within_the_bound(pair):
    sock, _ = pair
    sock.bound = 0.2
    sock.setblocking(True)
    with pytest.raises(TimeoutError):
        sock.sendall(b"x" * 10_000_000)


def _read_all(sock: socket.socket, size: int, into: bytearray) -> None:
    while len(into) < size:
        data = sock.recv(1 << 20)
        if not data:
            return
        into += data


def _parsed(raw: bytes, read_body: bool = False):
    ours, peer = socket.socketpair()
    peer.sendall(raw)
    peer.close()
    try:
        message = next(RequestParser(Config(), ours, ("127.0.0.1", 1)))
        if read_body:
            message.body.read()
        return message
    finally:
        ours.close()


@pytest.mark.parametrize(
    ("raw", "read_body", "expected"),
    [
        (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", False, True),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", False, True),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello", False, False),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello", True, True),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            False,
            False,  # a chunked body's end is only known by reading it: the drain reads it
        ),
    ],
)
def test_the_drain_is_skipped_only_when_no_body_byte_is_left(raw, read_body, expected):
    assert _body_read_to_end(_parsed(raw, read_body)) is expected


def test_a_body_that_failed_to_read_is_never_read_to_its_end():
    message = _parsed(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    message.body.failed = True
    assert _body_read_to_end(message) is False


def test_random_ids_are_hex_of_the_asked_length_and_never_repeat():
    drawn = [ids.random_hex(16) for _ in range(5000)]  # past one block
    assert all(len(value) == 32 and int(value, 16) >= 0 for value in drawn)
    assert len(set(drawn)) == len(drawn)
    assert len(ids.random_hex(8)) == 16
    assert len(ids.random_hex(5000)) == 10000  # larger than a block


def test_a_forked_child_does_not_hand_out_its_parents_next_ids():
    ids.random_hex(16)  # this thread holds a block now
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe
        try:
            os.write(write_end, ids.random_hex(16).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    try:
        childs = os.read(read_end, 64).decode()
    finally:
        os.close(read_end)
        os.waitpid(child, 0)
    assert len(childs) == 32
    assert childs != ids.random_hex(16)


class _Recorder:
    """A socket stand-in that records each sendall()."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def sendall(self, data: bytes) -> None:
        self.writes.append(bytes(data))


def _answer(response_class, request: bytes, status: str, headers, chunks) -> list[bytes]:
    recorder = _Recorder()
    response = response_class(_parsed(request), recorder, Config())
    response.start_response(status, headers)
    for chunk in chunks:
        response.write(chunk)
    response.close()
    return recorder.writes


_GET = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
_ANSWERS = [
    (_GET, "200 OK", [("Content-Length", "5")], [b"hello"]),
    (_GET, "200 OK", [("Content-Length", "5")], [b"he", b"llo"]),
    (_GET, "200 OK", [("Content-Length", "3")], [b"hello"]),  # past Content-Length: cut
    (_GET, "200 OK", [], [b"hello", b"", b"world"]),  # chunked
    (_GET, "200 OK", [("Content-Length", "0")], []),
    (_GET, "200 OK", [("Content-Length", "0")], [b""]),
    (_GET, "204 No Content", [], [b"dropped"]),
    (_GET, "304 Not Modified", [("Content-Length", "5")], [b"hello"]),
    (b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n", "200 OK", [("Content-Length", "5")], [b"hello"]),
    (b"GET / HTTP/1.0\r\n\r\n", "200 OK", [], [b"until ", b"close"]),
]


@pytest.mark.parametrize(("request_bytes", "status", "headers", "chunks"), _ANSWERS)
def test_an_answer_is_on_the_wire_byte_for_byte_as_gunicorn_writes_it(
    monkeypatch, request_bytes, status, headers, chunks
):
    monkeypatch.setattr(util, "http_date", lambda timestamp=None: "Thu, 01 Jan 2026 00:00:00 GMT")
    ours = _answer(HeadWithBodyResponse, request_bytes, status, headers, chunks)
    stock = _answer(wsgi.Response, request_bytes, status, headers, chunks)
    assert b"".join(ours) == b"".join(stock)


def test_a_plain_answer_goes_out_in_one_write(monkeypatch):
    ours = _answer(HeadWithBodyResponse, _GET, "200 OK", [("Content-Length", "5")], [b"hello"])
    stock = _answer(wsgi.Response, _GET, "200 OK", [("Content-Length", "5")], [b"hello"])
    assert len(ours) == 1 and ours[0].endswith(b"\r\n\r\nhello")
    assert len(stock) == 2


def test_the_loop_refusing_a_head_never_waits_for_room_in_the_send_buffer(monkeypatch):
    """A kept-alive socket waits in the poller in its timeout mode; the loop's 408/431 must not
    wait there for a client that reads nothing (the whole worker would wait with it)."""
    ours, peer = socket.socketpair()
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    sock = ClientSocket.adopt(ours, 30.0)
    sock.setblocking(False)
    with contextlib.suppress(BlockingIOError):
        while True:  # fill the send buffer: the peer never reads
            sock.send(b"x" * 4096)
    sock.setblocking(True)  # parked as a kept-alive socket is: within the read bound
    worker = object.__new__(DrainingThreadWorker)
    worker.head_bytes = 0
    monkeypatch.setattr(worker, "_log_refusal", lambda *_: None, raising=False)
    monkeypatch.setattr(worker, "_close_lingering", lambda _conn: None, raising=False)
    conn = types.SimpleNamespace(sock=sock, client=None, head=bytearray(b"GET /"), head_counted=0)
    refusing = threading.Thread(
        target=worker._refuse, args=(conn, server_errors.HeadTimeout("late")), daemon=True
    )
    try:
        refusing.start()
        refusing.join(10)  # it would wait the 30 s bound
        assert not refusing.is_alive()
    finally:
        peer.close()  # ends a waiting send at once
        refusing.join(10)
        sock.close()
