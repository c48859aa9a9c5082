"""The lean upstream client: keep-alive reuse, stale pooled sockets, hostile answers, timeouts."""

from __future__ import annotations

import contextlib
import gc
import http.client
import logging
import socket
import struct
import threading
import time
from collections.abc import Iterator

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from urllib3.exceptions import NewConnectionError, ProtocolError, ReadTimeoutError

from gateway_project.errors import BadRequest
from gateway_project.upstream_head import InvalidUpstreamHead, well_formed_head
from routing import upstream_http
from routing.upstream_http import PlainUpstreams, request_head

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class KeepAliveUpstream:
    """A loopback server answering each request on a connection with the next scripted bytes.

    `answers` is consumed in order across all connections; after an answer whose entry is
    followed by None the connection is closed. Bounded: 5 s per read, 64 KiB per head.
    """

    def __init__(self, answers: list[bytes | None]) -> None:
        self._answers = list(answers)
        self._lock = threading.Lock()
        self.connections = 0
        self.heads: list[bytes] = []
        self.closed = threading.Semaphore(0)  # released each time a connection is closed
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            self._answer(conn)
        finally:
            conn.close()
            self.closed.release()

    def _answer(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        buffer = b""
        while True:
            while b"\r\n\r\n" not in buffer:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data or len(buffer) > 65536:
                    return
                buffer += data
            head, _, buffer = buffer.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            while len(buffer) < length:
                data = conn.recv(65536)
                if not data:
                    return
                buffer += data
            buffer = buffer[length:]
            with self._lock:
                self.heads.append(head)
                answer = self._answers.pop(0) if self._answers else None
                close = not self._answers or self._answers[0] is None
                if close and self._answers:
                    self._answers.pop(0)
            if answer is None:
                return
            conn.sendall(answer)
            if close:
                return

    def close(self) -> None:
        """Stop accepting."""
        self._listener.close()


@pytest.fixture
def client() -> Iterator[PlainUpstreams]:
    """A client with a small pool."""
    upstreams = PlainUpstreams(maxsize=2)
    yield upstreams
    upstreams.clear()


def get(client: PlainUpstreams, port: int, method: str = "GET", body: bytes | None = None):
    """One request to 127.0.0.1:port."""
    headers = {"content-length": str(len(body))} if body is not None else {}
    return client.request(
        host="127.0.0.1",
        port=port,
        host_header=f"127.0.0.1:{port}",
        method=method,
        target="/x",
        headers=headers,
        body=body,
        connect_timeout=2,
        read_timeout=2,
    )


def fetch(client: PlainUpstreams, port: int, method: str = "GET", body: bytes | None = None):
    """Status and body of one request, the connection released."""
    response = get(client, port, method, body)
    content = response.read()
    response.release_conn()
    return response.status, content


def test_a_kept_alive_connection_is_reused():
    upstream = KeepAliveUpstream([OK, OK, OK])
    client = PlainUpstreams(maxsize=2)
    try:
        assert [fetch(client, upstream.port) for _ in range(3)] == [(200, b"ok")] * 3
        assert upstream.connections == 1
    finally:
        client.clear()
        upstream.close()


def test_a_pooled_connection_the_upstream_closed_is_replaced_before_sending(client):
    # The first answer ends with a close: the pooled socket is stale. The next request, a POST,
    # must go out on a fresh connection (nothing was sent on the stale one), not fail.
    upstream = KeepAliveUpstream([OK, None, OK])
    try:
        assert fetch(client, upstream.port) == (200, b"ok")
        assert upstream.closed.acquire(timeout=5)  # the upstream has closed the pooled socket
        assert fetch(client, upstream.port, "POST", b"data") == (200, b"ok")
        assert upstream.connections == 2
        assert upstream.heads[-1].startswith(b"POST /x HTTP/1.1")
    finally:
        upstream.close()


def test_an_answer_with_connection_close_is_not_pooled(client):
    upstream = KeepAliveUpstream(
        [b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", None, OK]
    )
    try:
        assert fetch(client, upstream.port) == (200, b"ok")
        assert fetch(client, upstream.port) == (200, b"ok")
        assert upstream.connections == 2
    finally:
        upstream.close()


def test_bytes_after_the_answer_keep_the_connection_out_of_the_pool(client):
    upstream = KeepAliveUpstream([OK + b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nzz", OK])
    try:
        assert fetch(client, upstream.port) == (200, b"ok")
        assert fetch(client, upstream.port) == (200, b"ok")  # never the smuggled "zz"
        assert upstream.connections == 2
    finally:
        upstream.close()


def test_chunked_and_close_delimited_bodies_are_read_whole(client):
    upstream = KeepAliveUpstream(
        [
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\n\r\nuntil-close",
            None,
        ]
    )
    try:
        assert fetch(client, upstream.port) == (200, b"abcde")
        assert fetch(client, upstream.port) == (200, b"until-close")
    finally:
        upstream.close()


def test_a_chunked_answers_trailer_fields_never_become_its_headers(client):
    # The whole answer arrives with its head: the trailer is parsed before the headers are
    # relayed, and must not join them (a trailer could otherwise set a cookie or a length).
    upstream = KeepAliveUpstream(
        [
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n"
            b"3\r\nabc\r\n0\r\nSet-Cookie: injected=1\r\nX-Trailer: t\r\n\r\n"
        ]
    )
    try:
        response = get(client, upstream.port)
        assert response.read() == b"abc"
        assert response.headers.items() == [("Transfer-Encoding", "chunked"), ("X-A", "1")]
        response.release_conn()
    finally:
        upstream.close()


def test_head_answer_has_no_body_and_100_continue_is_skipped(client):
    upstream = KeepAliveUpstream(
        [
            b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n",
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok",
        ]
    )
    try:
        assert fetch(client, upstream.port, "HEAD") == (200, b"")
        assert fetch(client, upstream.port) == (201, b"ok")
        assert upstream.connections == 1
    finally:
        upstream.close()


HOSTILE = {
    "bare-cr": b"HTTP/1.1 200 OK\r\nLocation: /x\rSet-Cookie: a=b\r\nContent-Length: 0\r\n\r\n",
    "nul": b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 0\r\n\r\n",
    "te-and-cl": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
    "invalid-name": b"HTTP/1.1 200 OK\r\nX(A): 1\r\nContent-Length: 0\r\n\r\n",
    "bare-lf-head": b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
    "line-too-long": b"HTTP/1.1 200 OK\r\nX-A: " + b"a" * 70000 + b"\r\n\r\n",
    "head-without-end": b"HTTP/1.1 200 OK\r\n" + b"X-A: b\r\n" * 40000,
    "status-103": b"HTTP/1.1 103 Early\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
}


@pytest.mark.parametrize("key", list(HOSTILE))
def test_hostile_heads_are_refused_as_invalid(client, key):
    upstream = KeepAliveUpstream([HOSTILE[key], None])
    try:
        with pytest.raises(ProtocolError) as caught:
            get(client, upstream.port)
        assert isinstance(caught.value.args[1], InvalidUpstreamHead)
    finally:
        upstream.close()


def _answer_with(header_lines: list[bytes]) -> bytes:
    return b"HTTP/1.1 200 OK\r\n" + b"".join(header_lines) + b"Content-Length: 2\r\n\r\nok"


@pytest.mark.parametrize(
    "header_lines, refused",
    [
        # A line may take MAX_HEAD_LINE bytes with its CRLF; the head MAX_HEADERS fields.
        ([b"X-A: " + b"a" * (upstream_http.MAX_HEAD_LINE - 7) + b"\r\n"], False),
        ([b"X-A: " + b"a" * (upstream_http.MAX_HEAD_LINE - 6) + b"\r\n"], True),
        ([b"X-A: b\r\n"] * (upstream_http.MAX_HEADERS - 1), False),
        ([b"X-A: b\r\n"] * upstream_http.MAX_HEADERS, True),
    ],
)
def test_the_head_line_length_and_count_bounds_are_exact(client, header_lines, refused):
    upstream = KeepAliveUpstream([_answer_with(header_lines), None])
    try:
        if refused:
            with pytest.raises(ProtocolError) as caught:
                get(client, upstream.port)
            assert isinstance(caught.value.args[1], InvalidUpstreamHead)
        else:
            assert fetch(client, upstream.port) == (200, b"ok")
    finally:
        upstream.close()


def test_malformed_chunk_after_the_head_breaks_the_body_not_the_process(client):
    upstream = KeepAliveUpstream(
        [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n", None]
    )
    try:
        with pytest.raises(ProtocolError):  # refused with the head, or when the body is read
            get(client, upstream.port).read()
    finally:
        upstream.close()


def test_closed_before_any_answer_byte_is_remote_disconnected(client):
    upstream = KeepAliveUpstream([None])
    try:
        with pytest.raises(ProtocolError) as caught:
            get(client, upstream.port)
        assert isinstance(caught.value.args[1], http.client.RemoteDisconnected)
    finally:
        upstream.close()


def test_a_body_cut_short_raises_instead_of_looking_complete(client):
    upstream = KeepAliveUpstream([b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", None])
    try:
        response = get(client, upstream.port)
        with pytest.raises(ProtocolError):
            b"".join(response.stream(4))
    finally:
        upstream.close()


def test_a_silent_upstream_is_a_read_timeout():
    listener = socket.create_server(("127.0.0.1", 0))  # accepts (backlog), never answers
    client = PlainUpstreams(maxsize=1)
    try:
        with pytest.raises(ReadTimeoutError):
            client.request(
                host="127.0.0.1",
                port=listener.getsockname()[1],
                host_header="x",
                method="GET",
                target="/",
                headers={},
                body=None,
                connect_timeout=1,
                read_timeout=0.2,
            )
    finally:
        listener.close()
        client.clear()


def _request(client: PlainUpstreams, port: int, read_timeout: float, body: bytes | None = None):
    headers = {"content-length": str(len(body))} if body is not None else {}
    return client.request(
        host="127.0.0.1",
        port=port,
        host_header="x",
        method="POST" if body is not None else "GET",
        target="/",
        headers=headers,
        body=body,
        connect_timeout=1,
        read_timeout=read_timeout,
    )


def test_a_body_that_stalls_midway_is_a_read_timeout():
    upstream = socket.create_server(("127.0.0.1", 0))
    client = PlainUpstreams(maxsize=1)

    def answer_half() -> None:
        conn, _ = upstream.accept()
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        conn.recv(1)  # holds the connection open, sending nothing more, until closed

    server = threading.Thread(target=answer_half, daemon=True)
    server.start()
    try:
        response = _request(client, upstream.getsockname()[1], read_timeout=0.2)
        with pytest.raises(ReadTimeoutError):
            response.read()
    finally:
        upstream.close()
        client.clear()


def test_an_upstream_that_reads_nothing_is_a_write_timeout():
    listener = socket.create_server(("127.0.0.1", 0))  # accepts (backlog), never reads
    client = PlainUpstreams(maxsize=1)
    body = b"x" * (64 * 1024 * 1024)  # more than loopback's socket buffers hold
    try:
        with pytest.raises(ReadTimeoutError, match="Write timed out"):
            _request(client, listener.getsockname()[1], read_timeout=0.2, body=body)
    finally:
        listener.close()
        client.clear()


def test_an_upstream_reading_slowly_cannot_stretch_the_write_past_its_bound():
    # SO_SNDTIMEO bounds each send(); a reader emptying the socket every 0.2 s lets each one
    # progress in time. The write as a whole must still give up within its bound, meanwhile.
    listener = socket.create_server(("127.0.0.1", 0))
    client = PlainUpstreams(maxsize=1)
    gave_up = threading.Event()
    gave_up_while_read = threading.Event()

    def read_slowly() -> None:
        conn, _ = listener.accept()
        conn.settimeout(1)
        with conn:
            for _ in range(50):  # 10 s of reading at most
                if gave_up.is_set():
                    gave_up_while_read.set()
                    return
                try:
                    conn.recv(16 << 20)
                except OSError:
                    return
                time.sleep(0.2)

    reader = threading.Thread(target=read_slowly, daemon=True)
    reader.start()
    try:
        with pytest.raises(ReadTimeoutError, match="Write timed out"):
            _request(client, listener.getsockname()[1], read_timeout=0.3, body=b"x" * (256 << 20))
        gave_up.set()
        reader.join(15)
        assert gave_up_while_read.is_set()  # the gateway gave up long before the reader's 10 s
    finally:
        listener.close()
        client.clear()


def _bound_of(client: PlainUpstreams) -> float:
    [pool] = client._pools.values()
    [(sock, _)] = pool._idle
    whole, micros = struct.unpack("@ll", sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, 16))
    return whole + micros / 1_000_000


def test_a_pooled_socket_takes_each_routes_timeout_as_its_kernel_bound(client):
    upstream = KeepAliveUpstream([OK, OK])
    try:
        for read_timeout in (2.5, 0.25):
            response = _request(client, upstream.port, read_timeout=read_timeout)
            response.read()
            response.release_conn()
            assert _bound_of(client) == pytest.approx(read_timeout, abs=0.02)  # kernel ticks
        assert upstream.connections == 1  # one kept-alive socket served both
    finally:
        upstream.close()


def test_a_refused_connection_is_a_new_connection_error(client):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens here once closed
    with pytest.raises(NewConnectionError):
        get(client, port)


def test_the_address_guard_runs_before_every_new_connection(client, settings):
    import ipaddress

    settings.GATEWAY_UPSTREAM_BLOCKED_NETWORKS = (ipaddress.ip_network("127.0.0.0/8"),)
    settings.GATEWAY_UPSTREAM_ALLOWED_NETWORKS = ()
    upstream = KeepAliveUpstream([OK])
    try:
        with pytest.raises(NewConnectionError, match="blocked address"):
            get(client, upstream.port)
        assert upstream.connections == 0
    finally:
        upstream.close()


@pytest.mark.parametrize(
    ("target", "headers"),
    [
        ("/x", {"x-a": "1\r\nX-Injected: 1"}),
        ("/x", {"x-a": "1\nX-Injected: 1"}),
        ("/x", {"x-a": "a\x00b"}),
        ("/x HTTP/1.1\r\nX: y", {}),
        ("/x\x7f", {}),
    ],
)
def test_a_request_that_would_split_the_head_is_refused_before_sending(target, headers):
    with pytest.raises(BadRequest):
        request_head("GET", target, "h", headers)


def test_request_head_carries_host_and_every_header_once():
    head = request_head("POST", "/a?b=c", "svc:80", {"x-a": "1", "content-length": "0"})
    assert head == b"POST /a?b=c HTTP/1.1\r\nHost: svc:80\r\nx-a: 1\r\ncontent-length: 0\r\n\r\n"


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n",  # refused by httptools mid-head
    ],
)
def test_a_parsed_or_refused_answer_leaves_no_reference_cycle(answer):
    # The parser holds the parse state's callbacks; were the state to keep its parser, every
    # answer would wait for the cyclic garbage collector (see routing/upstream_http._Parse).
    end = answer.index(b"\r\n\r\n") + 4
    gc.collect()
    gc.disable()
    logging.disable(logging.CRITICAL)  # the log capture would keep the refusal's record
    try:
        with contextlib.suppress(ProtocolError):
            upstream_http._parsed(None, None, answer[:end], answer[end:], "GET", 1.0)  # type: ignore[arg-type]
        unreachable = gc.collect()
    finally:
        logging.disable(logging.NOTSET)
        gc.enable()
    assert unreachable == 0


def _httptools_fields(head: bytes) -> list[tuple[str, str]]:
    """The fields httptools' on_header callback reports for `head` (the reference)."""
    import httptools

    class Fields:
        def __init__(self) -> None:
            self.fields: list[tuple[str, str]] = []

        def on_header(self, name: bytes, value: bytes) -> None:
            self.fields.append((name.decode("latin-1"), value.decode("latin-1")))

    collected = Fields()
    httptools.HttpResponseParser(collected).feed_data(head)
    return collected.fields


_TOKEN = st.text(alphabet="!#$%&'*+-.^_`|~0123456789AZaz", min_size=1, max_size=12)
# A field value as the strict head check lets it through: HTAB, SP, VCHAR, obs-text.
_VALUE = st.text(alphabet=st.sampled_from(["\t", " ", ":", *map(chr, range(0x21, 0x100))]))


@settings(max_examples=300, deadline=None)
@given(
    fields=st.lists(st.tuples(_TOKEN, _VALUE | st.sampled_from(["", " ", "\t \t"])), max_size=8),
    reason=st.text(alphabet=st.sampled_from(["\t", " ", ":", "a", "\xe9"]), max_size=6),
    framing=st.sampled_from(["", "Content-Length: 0\r\n", "Transfer-Encoding: chunked\r\n"]),
)
def test_header_fields_are_httptools_fields_for_every_well_formed_head(fields, reason, framing):
    lines = "".join(f"{name}:{value}\r\n" for name, value in fields)
    head = f"HTTP/1.1 200 {reason}\r\n{lines}{framing}\r\n".encode("latin-1")
    assume(well_formed_head(head))

    assert upstream_http.header_fields(head.decode("latin-1")) == _httptools_fields(head)


def test_header_fields_keep_order_repeats_empty_values_and_trailing_whitespace():
    head = b"HTTP/1.1 200 OK: yes\r\nA:  1 \t\r\nB:\r\nA:2\r\nC: \xe9\r\n\r\n"
    expected = [("A", "1 \t"), ("B", ""), ("A", "2"), ("C", "\xe9")]
    assert upstream_http.header_fields(head.decode("latin-1")) == expected
    assert _httptools_fields(head) == expected


def test_an_idle_pooled_socket_is_usable_only_while_it_has_nothing_to_report():
    idle, idle_peer = socket.socketpair()
    stray, stray_peer = socket.socketpair()
    ended, ended_peer = socket.socketpair()
    closed, closed_peer = socket.socketpair()
    stray_peer.send(b"x")  # bytes nobody asked for
    ended_peer.close()  # EOF
    closed.close()  # no descriptor left
    try:
        usable = [upstream_http._still_open(s) for s in (idle, stray, ended, closed)]
        assert usable == [True, False, False, False]
        assert stray.recv(1) == b"x"  # looking did not consume it
    finally:
        for each in (idle, idle_peer, stray, stray_peer, ended, closed_peer):
            each.close()
