"""A lean HTTP/1.1 client for plain-HTTP upstreams: pooled keep-alive sockets, a C parser.

urllib3 and http.client cost more than the rest of a proxied request's forwarding together
(header parsing through the email package, several layers of wrappers). Here a request is one
`sendall` of a prebuilt head (plus the body), the answer's head is checked by the strict
parser's rules (gateway_project/upstream_head.py) and then parsed with httptools (llhttp, the
parser uvicorn and Node.js use), which also frames the body (Content-Length, chunked, or until
the connection closes).

Behaviour kept from the urllib3 pool it replaces (routing/upstream.py chooses which one):
- every new connection passes the outbound address guard (gateway_project/outbound_guard.py);
- a pooled connection is checked before reuse (a peek without waiting): one the upstream has
  closed, or that holds unexpected bytes, is dropped and another taken, so nothing is ever
  sent on it; no other silent retry (retries are routing/upstream.py's, by method);
- failures are urllib3's exception classes, so the retry rules and the proxy's error mapping
  stay as they are: NewConnectionError / ConnectTimeoutError (not sent), ReadTimeoutError,
  ProtocolError (wrapping InvalidUpstreamHead for a refused head, RemoteDisconnected when the
  upstream closed before answering, IncompleteRead when the body broke off);
- at most GATEWAY_UPSTREAM_POOL_SIZE idle connections per target are kept; more may be open
  at once (a busy target is never waited for), the extra ones are closed after use;
- the answer timeout bounds each send and each read (not the whole answer), as urllib3's does.

Sockets stay in blocking mode and the kernel enforces that bound (SO_SNDTIMEO/SO_RCVTIMEO, set
again only when the timeout wanted differs from the socket's by more than the kernel's own
resolution): a Python socket with a timeout polls before every send and read and switches its
blocking mode with an ioctl, four system calls per request that each also let another thread
take the GIL.
"""

from __future__ import annotations

import http.client
import re
import select
import socket
import threading
from collections.abc import Iterator
from typing import IO

import httptools
from urllib3.exceptions import ProtocolError, ReadTimeoutError

from gateway_project.errors import BadRequest
from gateway_project.outbound_guard import guarded_socket
from gateway_project.socket_bounds import TIMED_OUT, bound_each_call, send_within
from gateway_project.upstream_head import (
    InvalidUpstreamHead,
    framing_error_of,
    head_error,
    head_lines,
    logger,
    well_formed_head,
)

# A head may take this many bytes at most (http.client: 100 lines of up to 64 KiB each).
MAX_HEAD_BYTES = 256 * 1024
MAX_HEAD_LINE = 65536
MAX_HEADERS = 100
_SHORTEST_HEAD_TO_MEASURE = min(3 * (MAX_HEADERS + 2), MAX_HEAD_LINE)
_RECV_SIZE = 65536
_BODY_BLOCK = 65536
_NO_DELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]  # as urllib3 sets it
# A socket's bound within this of the one wanted is kept: the kernel counts it in ticks of up to
# 4 ms, and what is left of a route's timeout differs by a little on every request.
_BOUND_SLACK = 0.005


class ResponseHeaders:
    """An answer's header fields in order, names as sent (latin-1 text, as http.client)."""

    __slots__ = ("_fields",)

    def __init__(self, fields: list[tuple[str, str]]) -> None:
        self._fields = fields

    def items(self) -> list[tuple[str, str]]:
        """Every (name, value), repeated names included."""
        return self._fields

    def get(self, name: str, default: str | None = None) -> str | None:
        """The value of `name` (any case), repeated fields joined by ', ' as urllib3 does."""
        wanted = name.lower()
        values = [value for field, value in self._fields if field.lower() == wanted]
        return ", ".join(values) if values else default


# A header line of a head well_formed_head() accepted: its name (a token) and its value
# without the leading whitespace, up to the line's CR (llhttp's field: trailing whitespace
# kept). Every line after the status line starts after an LF; the status line does not, and
# the blank line holds no name. `.` stops at the LF (no other CR or LF is in such a head).
_FIELD = re.compile(r"\n([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*(.*)\r")


def header_fields(head: str) -> list[tuple[str, str]]:
    """The (name, value) fields of a well-formed head, in order, as httptools reports them.

    One C call for all of them, where httptools' callback costs a Python call per field.
    """
    return _FIELD.findall(head)


class _Parse:
    """httptools' callbacks: the body pieces and whether the message ended.

    There is no on_header: httptools then calls nothing per header field (the fields come from
    header_fields), and a chunked body's trailer fields are not collected (they are not relayed).
    """

    __slots__ = ("body", "complete", "keep_alive", "parser", "trailing")

    def __init__(self) -> None:
        self.body: list[bytes] = []
        self.complete = False
        self.keep_alive = False
        self.trailing = False  # bytes after the end of the message: the connection is not reused
        self.parser: httptools.HttpResponseParser | None = httptools.HttpResponseParser(self)

    def on_headers_complete(self) -> None:
        # The parser is dropped once read: it holds this object's callbacks, so keeping it would
        # make a reference cycle, and every answer's objects would wait for the cyclic garbage
        # collector instead of being freed when the answer is done.
        parser, self.parser = self.parser, None
        self.keep_alive = parser.should_keep_alive() if parser is not None else False

    def on_body(self, body: bytes) -> None:
        if self.complete:
            self.trailing = True
        else:
            self.body.append(body)

    def on_message_begin(self) -> None:
        if self.complete:
            self.trailing = True

    def on_message_complete(self) -> None:
        self.complete = True


class IdleConnections:
    """One target's idle keep-alive sockets (each with its send/read bound), most recent first."""

    def __init__(self, maxsize: int) -> None:
        self._idle: list[tuple[socket.socket, float]] = []
        self._lock = threading.Lock()
        self._maxsize = maxsize

    def take(self) -> tuple[socket.socket, float] | None:
        """A pooled socket the upstream has not closed and its bound, or None (connect anew)."""
        while True:
            with self._lock:
                if not self._idle:
                    return None
                sock, bound = self._idle.pop()
            if _still_open(sock):
                return sock, bound
            sock.close()

    def give_back(self, sock: socket.socket, bound: float) -> None:
        """Keep `sock` for the next request, or close it when enough are kept."""
        with self._lock:
            if len(self._idle) < self._maxsize:
                self._idle.append((sock, bound))
                return
        sock.close()

    def close(self) -> None:
        """Close every idle socket."""
        with self._lock:
            idle, self._idle = self._idle, []
        for sock, _bound in idle:
            sock.close()


def _still_open(sock: socket.socket) -> bool:
    """Whether an idle socket is usable: open and holding no unexpected bytes (as urllib3).

    Anything to report (an EOF, bytes nobody asked for, an error or a hang-up) makes it
    unusable. poll() with no wait, not a peeking recv(): that one raises on every idle socket.
    """
    poller = select.poll()
    try:
        poller.register(sock, select.POLLIN)
        return not poller.poll(0)
    except (OSError, ValueError):  # closed (no descriptor)
        return False


def check_forwardable(target: str, headers: dict[str, str]) -> None:
    """BadRequest when the request target or a header value would split the request head.

    Checked before any upstream or breaker is involved: the client's request is at fault.
    """
    _head_text("GET", target, "-", headers)


def request_head(method: str, target: str, host: str, headers: dict[str, str]) -> bytes:
    """The request's head bytes; BadRequest when a value would break the framing."""
    text = _head_text(method, target, host, headers)
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:  # a value of the gateway's own (a user name) beyond latin-1
        return text.encode("utf-8")


# A request target holds no control character, space or DEL (RFC 9112 section 3.2).
_UNSAFE_IN_TARGET = re.compile("[\x00-\x20\x7f]")


def _head_text(method: str, target: str, host: str, headers: dict[str, str]) -> str:
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    # No line holds a CR, LF or NUL, and the target no space: otherwise a value would split the
    # head (http.client refuses these the same way). Three scans of the joined lines (memchr)
    # rather than counting the line ends in the head (a loop over every character).
    unsplit = "".join(lines)
    if "\r" in unsplit or "\n" in unsplit or "\x00" in unsplit or _UNSAFE_IN_TARGET.search(target):
        raise BadRequest("The request holds a character that cannot be forwarded.")
    lines.append("\r\n")
    return "\r\n".join(lines)


class PlainResponse:
    """An upstream's answer, body read on demand (the subset of urllib3's response used)."""

    def __init__(
        self,
        sock: socket.socket,
        pool: IdleConnections,
        parse: _Parse,
        parser: httptools.HttpResponseParser,
        status: int,
        fields: list[tuple[str, str]],
        *,
        bodiless: bool,
        until_close: bool,
        bound: float,
    ) -> None:
        self.status = status
        self.headers = ResponseHeaders(fields)
        self._sock: socket.socket | None = sock
        self._pool = pool
        self._bound = bound  # the socket's send/read bound, kept with it in the pool
        self._parse = parse
        self._parser = parser
        self._bodiless = bodiless
        self._until_close = until_close
        if bodiless:
            parse.body.clear()
            parse.complete = True

    def _read_more(self, size: int) -> None:
        """Feed the parser the next bytes from the upstream; raise when they broke off."""
        sock = self._sock
        if sock is None:
            raise ProtocolError("Connection closed.", http.client.IncompleteRead(b""))
        try:
            data = sock.recv(size)
        except TIMED_OUT:
            self.close()
            raise ReadTimeoutError(None, "", "Read timed out.") from None  # type: ignore[arg-type]
        except OSError as error:
            self.close()
            raise ProtocolError("Connection broken.", error) from None
        if not data:
            if self._until_close:
                self._parse.complete = True
                return
            self.close()
            raise ProtocolError("Connection broken.", http.client.IncompleteRead(b""))
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            if not self._parse.complete:
                self.close()
                logger.warning("upstream answer refused: malformed body framing")
                raise ProtocolError(
                    "Invalid body.", InvalidUpstreamHead("malformed body framing")
                ) from None
            self._parse.trailing = True

    def read(self, amt: int | None = None, decode_content: bool | None = None) -> bytes:
        """The whole body (the answer's bytes as sent: no decoding)."""
        while not self._parse.complete:
            self._read_more(_RECV_SIZE)
        body = b"".join(self._parse.body)
        self._parse.body.clear()
        return body

    def stream(
        self, amt: int | None = 2**16, decode_content: bool | None = None
    ) -> Iterator[bytes]:
        """The body in pieces as they arrive (at most `amt` bytes read at a time)."""
        pieces = self._parse.body
        while True:
            while pieces:
                yield pieces.pop(0)
            if self._parse.complete:
                return
            self._read_more(amt or _RECV_SIZE)

    def release_conn(self) -> None:
        """Give the connection back to the pool when the answer was read whole, else close it."""
        sock, self._sock = self._sock, None
        if sock is None:
            return
        parse = self._parse
        if parse.complete and parse.keep_alive and not parse.trailing and not self._until_close:
            self._pool.give_back(sock, self._bound)
        else:
            sock.close()

    def close(self) -> None:
        """Close the connection (a broken or abandoned answer: it is not reused)."""
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()


def _head_end(buffer: bytearray, start: int) -> int:
    """The index just past the blank line ending the head in `buffer`, or -1."""
    lf = buffer.find(b"\n\r\n", start)
    bare = buffer.find(b"\n\n", start)  # refused by the line check, but the head ends there
    if bare != -1 and (lf == -1 or bare < lf):
        return bare + 2
    return lf + 3 if lf != -1 else -1


class PlainUpstreams:
    """Keep-alive connection pools to plain-HTTP upstreams, one per (address, port)."""

    def __init__(self, maxsize: int, max_targets: int = 256) -> None:
        self._pools: dict[tuple[str, int], IdleConnections] = {}
        self._lock = threading.Lock()
        self._maxsize = maxsize
        self._max_targets = max_targets

    def _pool(self, host: str, port: int) -> IdleConnections:
        key = (host, port)
        pool = self._pools.get(key)
        if pool is None:
            with self._lock:
                pool = self._pools.get(key)
                if pool is None:
                    if len(self._pools) >= self._max_targets:  # targets long gone (DNS changes)
                        oldest = next(iter(self._pools))
                        self._pools.pop(oldest).close()
                    pool = self._pools[key] = IdleConnections(self._maxsize)
        return pool

    def request(
        self,
        *,
        host: str,
        port: int,
        host_header: str,
        method: str,
        target: str,
        headers: dict[str, str],
        body: IO[bytes] | bytes | None,
        connect_timeout: float,
        read_timeout: float,
    ) -> PlainResponse:
        """Send one request and read the answer's head; the body is read from the response."""
        head = request_head(method, target, host_header, headers)
        pool = self._pool(host, port)
        taken = pool.take()
        if taken is None:
            sock = guarded_socket(
                host, port, timeout=connect_timeout, socket_options=_NO_DELAY, owner=self
            )
            bound: float | None = None
        else:
            sock, bound = taken
        try:
            if bound is None:
                sock.settimeout(None)  # blocking from now on: the kernel bounds each call
            if bound is None or abs(bound - read_timeout) > _BOUND_SLACK:
                bound = read_timeout
                bound_each_call(sock, bound)
            _send(sock, head, body, bound)
            return _read_answer(sock, pool, method, bound)
        except BaseException:
            sock.close()
            raise

    def clear(self) -> None:
        """Close every idle connection."""
        with self._lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.close()


def _send(sock: socket.socket, head: bytes, body: IO[bytes] | bytes | None, bound: float) -> None:
    """Write the head and body; a timeout or a broken connection as urllib3 reports them."""
    try:
        if body is None:
            send_within(sock, head, bound)
        elif isinstance(body, bytes):
            send_within(sock, head + body, bound)
        else:
            send_within(sock, head, bound)
            while block := body.read(_BODY_BLOCK):
                send_within(sock, block, bound)
    except TIMED_OUT:
        raise ReadTimeoutError(None, "", "Write timed out.") from None  # type: ignore[arg-type]
    except OSError as error:
        raise ProtocolError("Connection aborted.", error) from None


def _refuse(reason: str) -> ProtocolError:
    # The reason is fixed text: none of the upstream's bytes reach the log.
    logger.warning("upstream answer refused: %s", reason)
    return ProtocolError("Invalid answer.", InvalidUpstreamHead(reason))


def _read_answer(
    sock: socket.socket, pool: IdleConnections, method: str, bound: float
) -> PlainResponse:
    """Read and check the answer's head (skipping a 100 Continue), then parse it."""
    buffer = bytearray()
    searched = 0
    while True:
        end = _head_end(buffer, max(searched - 2, 0))
        if end == -1:
            if len(buffer) > MAX_HEAD_BYTES:
                raise _refuse("answer head too large")
            searched = len(buffer)
            try:
                data = sock.recv(_RECV_SIZE)
            except TIMED_OUT:
                raise ReadTimeoutError(None, "", "Read timed out.") from None  # type: ignore[arg-type]
            except OSError as error:
                raise ProtocolError("Connection aborted.", error) from None
            if not data:
                if buffer:
                    raise _refuse("connection closed inside the answer head")
                raise ProtocolError(
                    "Connection aborted.",
                    http.client.RemoteDisconnected("Remote end closed connection without response"),
                )
            buffer += data
            continue
        head = bytes(buffer[:end])
        reason = None if well_formed_head(head) else head_error(head_lines(head))
        # The head's lines each end in LF: as many lines as LFs, each as long as up to its LF.
        # A head of at most _SHORTEST_HEAD_TO_MEASURE bytes can hold neither (a checked head's
        # status line takes 14 bytes or more, each header line 4 or more), so is not split.
        if (
            reason is None
            and len(head) > _SHORTEST_HEAD_TO_MEASURE
            and (
                head.count(b"\n") > MAX_HEADERS + 2
                or max(map(len, head.split(b"\n"))) + 1 > MAX_HEAD_LINE
            )
        ):
            reason = "too many or too long header lines"
        if reason is not None:
            raise _refuse(reason)
        if head[9:12] == b"100":  # an interim answer: the real one follows
            del buffer[:end]
            searched = 0
            continue
        return _parsed(sock, pool, head, bytes(buffer[end:]), method, bound)


def _parsed(
    sock: socket.socket,
    pool: IdleConnections,
    head: bytes,
    rest: bytes,
    method: str,
    bound: float,
) -> PlainResponse:
    parse = _Parse()
    parser = parse.parser
    assert parser is not None  # a new _Parse holds its parser until the head is parsed
    try:
        parser.feed_data(head)
    except httptools.HttpParserError:
        parse.parser = None  # on_headers_complete never ran to break the cycle (see _Parse)
        raise _refuse("malformed head") from None
    status = parser.get_status_code()
    fields = header_fields(head.decode("latin-1"))
    lengths: list[str] = []
    codings: list[str] = []
    for name, value in fields:  # one pass, each name lowered once
        lowered = name.lower()
        if lowered == "content-length":
            lengths.append(value)
        elif lowered == "transfer-encoding":
            codings.append(value)
    reason = framing_error_of(lengths, codings)
    if reason is not None:
        raise _refuse(reason)
    bodiless = method == "HEAD" or status in (204, 304)
    until_close = not bodiless and not lengths and not codings
    response = PlainResponse(
        sock,
        pool,
        parse,
        parser,
        status,
        fields,
        bodiless=bodiless,
        until_close=until_close,
        bound=bound,
    )
    if bodiless:
        parse.trailing = bool(rest)
    elif rest:
        try:
            parser.feed_data(rest)
        except httptools.HttpParserError:
            if not parse.complete:
                raise _refuse("malformed body framing") from None
            parse.trailing = True
    return response
