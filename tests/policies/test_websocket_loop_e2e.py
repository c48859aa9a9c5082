"""WebSockets relayed by the worker's event loop, against real gunicorn and a real WebSocket
echo server: no thread per connection, bounded buffers, idle timeout, the connection cap,
close propagation, graceful stop, and hostile peers on raw sockets."""

from __future__ import annotations

import os
import resource
import signal
import socket
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.policies.conftest import api_key, import_config, policy_config, remove_config
from tests.policies.policy_upstream import PolicyUpstream
from tests.support.gateway_server import GatewayServer

pytestmark = [pytest.mark.e2e, pytest.mark.django_db]

THREADS = 2
START_SECONDS = 120.0
WS_KEY = "dGhlIHNhbXBsZSBub25jZQ=="


# --- helpers ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def key(django_db_setup, django_db_blocker, policy_servers) -> Iterator[str]:
    """The policy config imported (route /ws/** -> the echo server) and an API key."""
    with django_db_blocker.unblock():
        import_config(policy_config(policy_servers))
        try:
            yield api_key("wsl-client")
        finally:
            remove_config()
            from accounts.models import ApiClient

            ApiClient.objects.filter(name__startswith="wsl-").delete()


def _gateway(**env: str) -> GatewayServer:
    settings = {"GATEWAY_WORKERS": "1", "GATEWAY_THREADS": str(THREADS)}
    return GatewayServer(**{**settings, **env}).start(timeout=START_SECONDS)


@pytest.fixture(scope="module")
def gateway(key) -> Iterator[GatewayServer]:
    """One worker, two request threads, the default idle timeout and connection cap."""
    server = _gateway()
    try:
        yield server
    finally:
        server.stop()


def _worker_pid(server: GatewayServer) -> int:
    assert server.process is not None
    master = server.process.pid
    with open(f"/proc/{master}/task/{master}/children") as children:
        (pid,) = children.read().split()
    return int(pid)


def _threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1])


def _health(server: GatewayServer) -> int:
    with urllib.request.urlopen(f"{server.url}/health", timeout=15) as response:
        return int(response.status)


def _open_gauge(server: GatewayServer) -> float:
    with urllib.request.urlopen(f"{server.url}/metrics", timeout=15) as response:
        text = response.read().decode()
    return sum(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("gateway_websockets_open")
    )


def _eventually(condition: Callable[[], bool], seconds: float = 30.0) -> bool:
    """Whether `condition` holds within `seconds` (polled; a functional wait, not a timing)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def _handshake(
    server: GatewayServer, key: str, timeout: float = 20.0
) -> tuple[socket.socket, bytes]:
    """A raw client socket past its 101, and the bytes that followed the 101 head."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=timeout)
    sock.sendall(
        (
            "GET /ws/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\n"
            f"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {WS_KEY}\r\n"
            f"X-API-Key: {key}\r\n\r\n"
        ).encode()
    )
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, f"closed during the handshake: {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock, rest


def _text_frame(text: str) -> bytes:
    """A masked text frame (a client's), payload under 126 bytes."""
    payload = text.encode()
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x81, 0x80 | len(payload)]) + mask + masked


class FrameReader:
    """Reads a server's (unmasked) frames from a raw socket."""

    def __init__(self, sock: socket.socket, buffered: bytes = b"") -> None:
        self.sock = sock
        self.buffer = bytearray(buffered)

    def _need(self, count: int) -> None:
        while len(self.buffer) < count:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise EOFError
            self.buffer += chunk

    def frame(self) -> tuple[int, bytes]:
        """(opcode, payload) of the next frame."""
        self._need(2)
        size, start = self.buffer[1] & 0x7F, 2
        if size == 126:
            self._need(4)
            size, start = int.from_bytes(self.buffer[2:4], "big"), 4
        elif size == 127:
            self._need(10)
            size, start = int.from_bytes(self.buffer[2:10], "big"), 10
        self._need(start + size)
        opcode, payload = self.buffer[0] & 0x0F, bytes(self.buffer[start : start + size])
        del self.buffer[: start + size]
        return opcode, payload


def _read_to_end(sock: socket.socket) -> bytes:
    """Everything until the gateway closes (EOF or reset); a timeout fails the test."""
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


def _open_files_for(count: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = count + 512
    if hard != resource.RLIM_INFINITY and hard < wanted:
        pytest.skip(f"needs {wanted} open files, the hard limit is {hard}")
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def _upstream_back_to(servers: PolicyUpstream, count: int) -> bool:
    return _eventually(lambda: servers.ws_open == count)


# --- with the module's gateway ------------------------------------------------------------------


def test_echo_through_the_loop_relay(gateway, key, servers):
    with connect(
        f"ws://127.0.0.1:{gateway.port}/ws/echo", additional_headers={"X-API-Key": key}
    ) as ws:
        for message in ("hello", b"\x00\x01" * 100_000):
            ws.send(message)
            assert ws.recv(timeout=20) == message
    assert _upstream_back_to(servers, 0)  # the client's close closed the upstream too
    assert 1000 in servers.close_codes
    assert _eventually(lambda: _open_gauge(gateway) == 0)


def test_many_open_websockets_hold_no_thread_and_http_is_still_served(gateway, key, servers):
    count = 200
    _open_files_for(3 * count)
    worker = _worker_pid(gateway)
    # The request threads exist once THREADS requests ran at the same time at most: the pool
    # never grows past THREADS, whatever the number of WebSockets.
    before = _threads(worker)
    with ExitStack() as stack:
        readers = []
        for _ in range(count):
            sock, rest = _handshake(gateway, key)
            stack.callback(sock.close)
            readers.append(FrameReader(sock, rest))
        for index, reader in enumerate(readers):
            reader.sock.sendall(_text_frame(f"m{index}"))
        for index, reader in enumerate(readers):
            assert reader.frame() == (0x1, f"m{index}".encode())
        during = _threads(worker)
        assert servers.ws_open == count
        assert _health(gateway) == 200  # normal HTTP traffic is answered meanwhile
        assert _open_gauge(gateway) == count
    assert during <= before + THREADS, f"{before} threads before, {during} with {count} open"
    assert _upstream_back_to(servers, 0)
    assert _eventually(lambda: _open_gauge(gateway) == 0)


def test_a_client_that_does_not_read_gets_back_pressure_not_gateway_memory(gateway, key, servers):
    total = 50 * 1024 * 1024
    worker = _worker_pid(gateway)
    sock, rest = _handshake(gateway, key, timeout=60)
    with sock:
        rss_before = _rss_kib(worker)
        sock.sendall(_text_frame(f"flood {total}"))
        last, unchanged = -1, 0
        for _ in range(300):  # until the upstream's sending stalls (at most ~60 s)
            sent = servers.flood_sent
            unchanged = unchanged + 1 if sent == last and sent > 0 else 0
            if unchanged >= 5:
                break
            last = sent
            time.sleep(0.2)
        rss_stalled = _rss_kib(worker)
        assert unchanged >= 5, "the upstream never stalled"
        assert servers.flood_sent < total / 4, f"{servers.flood_sent} bytes went out unread"
        growth = rss_stalled - rss_before
        assert growth < 16 * 1024, f"the worker grew by {growth} KiB"
        # Everything arrives once the client reads.
        reader, received = FrameReader(sock, rest), 0
        while received < total:
            opcode, payload = reader.frame()
            assert opcode == 0x2
            received += len(payload)
        assert received == total
        sock.sendall(_text_frame("after"))
        assert reader.frame() == (0x1, b"after")


def test_the_upstream_closing_closes_the_client(gateway, key, servers):
    with connect(
        f"ws://127.0.0.1:{gateway.port}/ws/echo", additional_headers={"X-API-Key": key}
    ) as ws:
        ws.send("close")
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=20)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000
    assert _eventually(lambda: _open_gauge(gateway) == 0)


def test_an_upstream_reset_closes_the_client(gateway, key, servers):
    with connect(
        f"ws://127.0.0.1:{gateway.port}/ws/echo", additional_headers={"X-API-Key": key}
    ) as ws:
        ws.send("reset")
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=20)
    assert closed.value.rcvd is None  # no close frame: the connection just ended
    assert _eventually(lambda: _open_gauge(gateway) == 0)
    assert _health(gateway) == 200


def test_garbage_after_the_101_ends_the_connection_and_nothing_else(gateway, key, servers):
    sock, rest = _handshake(gateway, key)
    with sock:
        sock.sendall(b"\xff" * 10 + b"GET / HTTP/1.1\r\n\r\n" + os.urandom(5000))
        answer = rest + _read_to_end(sock)
    # The upstream refuses the frames (close 1002 protocol error) and closes: so does the relay.
    assert answer == b"" or answer[0] == 0x88, answer[:20]
    assert _upstream_back_to(servers, 0)
    assert _eventually(lambda: _open_gauge(gateway) == 0)
    assert _health(gateway) == 200


def test_a_client_half_close_reaches_the_upstream_which_closes(gateway, key, servers):
    sock, rest = _handshake(gateway, key)
    with sock:
        reader = FrameReader(sock, rest)
        sock.sendall(_text_frame("hi"))
        assert reader.frame() == (0x1, b"hi")
        sock.shutdown(socket.SHUT_WR)  # no close frame, just the TCP end of our side
        _read_to_end(sock)  # the upstream saw the end and closed; then so did the gateway
    assert _upstream_back_to(servers, 0)
    assert _eventually(lambda: _open_gauge(gateway) == 0)


# --- gateways of their own -------------------------------------------------------------------


def test_an_idle_websocket_is_closed_going_away(key, servers):
    server = _gateway(GATEWAY_WEBSOCKET_IDLE_TIMEOUT="2s")
    try:
        with connect(
            f"ws://127.0.0.1:{server.port}/ws/echo",
            additional_headers={"X-API-Key": key},
            ping_interval=None,  # really idle: no pings either
        ) as ws:
            ws.send("once")
            assert ws.recv(timeout=20) == "once"
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=60)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
        assert _upstream_back_to(servers, 0)
        assert 1001 in servers.close_codes  # the upstream was told too
        assert _eventually(lambda: _open_gauge(server) == 0)
    finally:
        server.stop()


def _answer_within(sock: socket.socket, seconds: float) -> bytes | None:
    sock.settimeout(seconds)
    try:
        return sock.recv(65536)
    except TimeoutError:
        return None


def test_websockets_count_against_the_connection_cap_and_go_away_on_stop(key, servers):
    cap = 4
    server = _gateway(GATEWAY_WORKER_CONNECTIONS=str(cap))
    try:
        clients: list[Any] = []
        with ExitStack() as stack:
            for _ in range(cap):
                clients.append(
                    stack.enter_context(
                        connect(
                            f"ws://127.0.0.1:{server.port}/ws/echo",
                            additional_headers={"X-API-Key": key},
                            ping_interval=None,
                        )
                    )
                )
            # Every slot is a WebSocket: a new connection waits in the listen queue.
            waiting = stack.enter_context(socket.create_connection(("127.0.0.1", server.port)))
            waiting.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            assert _answer_within(waiting, 2.0) is None
            clients.pop().close()  # a slot frees up: the waiting request is served
            answer = _answer_within(waiting, 30.0)
            assert answer is not None and answer.startswith(b"HTTP/1.1 200"), answer
            # Graceful stop: the open WebSockets are told 1001 (going away), then closed.
            assert server.process is not None
            server.process.send_signal(signal.SIGTERM)
            for ws in clients:
                with pytest.raises(ConnectionClosed) as closed:
                    ws.recv(timeout=60)
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
            assert server.process.wait(60) == 0
        assert _upstream_back_to(servers, 0)
        assert servers.close_codes.count(1001) == cap - 1
    finally:
        server.stop()
