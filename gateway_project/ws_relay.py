"""WebSocket relays in the worker's event loop: after the 101, bytes copied both ways, no thread.

The gunicorn worker (gateway_project/gunicorn_worker.py) hands a relay both sockets (client,
upstream) once the 101 has gone out; from then on its main thread's selector drives them:

- non-blocking sockets, one bounded buffer per direction (BUFFER_BYTES): while the buffer
  towards one side is full, the other side is not read, so a peer that stops reading slows
  the sender down through TCP (back-pressure) instead of growing the gateway's memory;
- one side's end (EOF) is passed on as a half-close once what is buffered towards the other
  side went out, so a WebSocket close handshake completes in both directions; a side that
  fails (reset) gets nothing more, and the other side gets what is buffered and then the end.
  Once one direction has ended, the other has CLOSING_SECONDS to end too;
- a relay that moves no byte for the idle timeout, and every relay of a stopping worker, is
  "going away": each direction is forwarded to the end of the frame in flight (the relay
  follows the frame headers only, never the payload), then gets a close frame 1001 (RFC 6455
  section 7.4.1) and a half-close; what a side still sends is read and dropped until it
  closes, at most CLOSING_SECONDS; past that (or when no frame end came) both are closed.

Every call runs on the worker's main thread; nothing here takes a lock.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import selectors
import socket
import ssl
import time
from collections.abc import Callable

from gateway_project import metrics

logger = logging.getLogger("gateway.websocket")

# What one direction holds at most, beyond the kernel's socket buffers.
BUFFER_BYTES = 64 * 1024
# A relay whose one direction ended (or that is going away) is closed after this at the latest.
CLOSING_SECONDS = 5.0
# RFC 6455 section 7.4.1: "an endpoint is going away, such as a server going down".
GOING_AWAY = 1001
# Reads of one socket per event: a fast pair cannot keep the loop from everything else.
_READS_PER_EVENT = 8
# Idle relays and closing deadlines are looked for at most this often (a scan is O(relays)).
_SCAN_SECONDS = 1.0
# 2 bytes, a 64-bit length, a masking key.
_LONGEST_HEADER = 14
# What TLS calls "not now" on a non-blocking socket, like BlockingIOError for plain ones.
_NOT_NOW = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)


def close_frame(code: int, *, masked: bool) -> bytes:
    """A close frame carrying `code`; masked as a client's frames must be (RFC 6455 5.3)."""
    payload = code.to_bytes(2, "big")
    if not masked:
        return bytes([0x88, len(payload)]) + payload
    key = os.urandom(4)
    return (
        bytes([0x88, 0x80 | len(payload)]) + key + bytes(b ^ key[i] for i, b in enumerate(payload))
    )


def _header_length(header: bytearray) -> int:
    if len(header) < 2:
        return 2
    size = header[1] & 0x7F
    extended = 2 if size == 126 else 8 if size == 127 else 0
    return 2 + extended + (4 if header[1] & 0x80 else 0)


def _payload_length(header: bytearray) -> int:
    size = header[1] & 0x7F
    if size == 126:
        return int.from_bytes(header[2:4], "big")
    if size == 127:
        return int.from_bytes(header[2:10], "big")
    return size


def _tls_pending(sock: socket.socket) -> bool:
    return isinstance(sock, ssl.SSLSocket) and sock.pending() > 0


class FrameBoundary:
    """Whether a stream of WebSocket frames is between two frames (RFC 6455 section 5.2).

    Only headers are read (payload lengths), so a close frame can be put in without cutting a
    frame; bytes that are no frames at all just make a boundary unlikely ever to come. Each
    header costs the loop some Python work: a read holding more than 8 frames and more than
    one per 64 bytes on average (a stream of tiny frames) ends the following for good, so a
    peer cannot make the loop parse headers at everyone else's cost (one per 64 bytes costs
    about what a read of 64 bytes costs anyway); that direction then gets no close frame when
    going away, only the close.
    """

    def __init__(self) -> None:
        self.header = bytearray()  # a header split across reads, until it is whole
        self.remaining = 0  # payload bytes of the current frame still to come
        self.followed = True

    @property
    def at_boundary(self) -> bool:
        """Whether the bytes fed so far end exactly after a whole frame."""
        return self.followed and self.remaining == 0 and not self.header

    def feed(self, data: bytes | bytearray, *, to_boundary: bool = False) -> int:
        """Follow the frames through `data`, the stream's next bytes; how many were taken
        (all of them, or with `to_boundary` those up to the first boundary)."""
        index, end = 0, len(data)
        frames, allowed = 0, 8 + end // 64
        while index < end and self.followed:
            if self.remaining:
                step = min(self.remaining, end - index)
                index += step
                self.remaining -= step
                continue
            if to_boundary and self.at_boundary:
                return index
            frames += 1
            if frames > allowed:
                self.followed = False
                break
            if not self.header and end - index >= _LONGEST_HEADER:
                # The whole header is here (the usual case): read it in place.
                second = data[index + 1]
                size, index = second & 0x7F, index + 2
                if size >= 126:
                    width = 2 if size == 126 else 8
                    size = int.from_bytes(data[index : index + width], "big")
                    index += width
                index += 4 if second & 0x80 else 0
                self.remaining = size
                continue
            take = min(_header_length(self.header) - len(self.header), end - index)
            self.header += data[index : index + take]
            index += take
            if len(self.header) == _header_length(self.header):
                self.remaining = _payload_length(self.header)
                self.header.clear()
        return end if not self.followed else index


class _Pipe:
    """One direction: bytes read from `source`, held in a bounded buffer, written to `sink`."""

    def __init__(
        self, source: socket.socket, sink: socket.socket, pending: bytes, *, masked: bool
    ) -> None:
        self.source = source
        self.sink = sink
        self.buffer = bytearray(pending)
        self.frames = FrameBoundary()
        self.frames.feed(pending)
        self.masked = masked  # frames towards the upstream are masked (the client's side)
        self.forwarding = True  # False: what the source still sends is read and dropped
        self.eof = False  # the source ended (EOF or failure): no more reads
        self.shut = False  # the sink gets nothing more (half-closed, or failed)
        self.retry = 0  # a TLS write to retry with exactly this many bytes (OpenSSL's rule)

    def wants_read(self) -> bool:
        """Whether the source is read now (never while a forwarding buffer is full)."""
        return not self.eof and (not self.forwarding or len(self.buffer) < BUFFER_BYTES)

    def wants_write(self) -> bool:
        """Whether bytes wait for the sink."""
        return bool(self.buffer) and not self.shut

    @property
    def done(self) -> bool:
        """Whether this direction has ended on both of its ends."""
        return self.eof and self.shut


class Relay:
    """One relayed WebSocket: its two sockets, a pipe each way, its activity and deadlines."""

    def __init__(
        self,
        client: socket.socket,
        upstream: socket.socket,
        from_client: bytes,
        from_upstream: bytes,
    ) -> None:
        self.client = client
        self.upstream = upstream
        self.to_upstream = _Pipe(client, upstream, from_client, masked=True)
        self.to_client = _Pipe(upstream, client, from_upstream, masked=False)
        self.last_activity = time.monotonic()
        self.going_away = False
        self.close_by: float | None = None  # closed at this time at the latest
        self.registered: dict[socket.socket, int] = {}
        self.closed = False

    @property
    def pipes(self) -> tuple[_Pipe, _Pipe]:
        """Both directions."""
        return (self.to_upstream, self.to_client)

    def close_within(self, seconds: float) -> None:
        """Close by now + `seconds` at the latest (an earlier deadline stays)."""
        deadline = time.monotonic() + seconds
        if self.close_by is None or deadline < self.close_by:
            self.close_by = deadline


class Relays:
    """The open relays of one worker, driven by its selector (`poller`) on its main thread."""

    def __init__(
        self,
        poller: selectors.BaseSelector,
        *,
        idle_timeout: float,
        on_closed: Callable[[], None],
    ) -> None:
        self.poller = poller
        self.idle_timeout = idle_timeout
        self.on_closed = on_closed  # the worker counts the connection out
        self.open: set[Relay] = set()
        self.stopping = False
        self.next_scan = 0.0

    def __len__(self) -> int:
        return len(self.open)

    def start(
        self,
        client: socket.socket,
        upstream: socket.socket,
        from_client: bytes,
        from_upstream: bytes,
    ) -> Relay:
        """Relay between `client` and `upstream` from now on, beginning with the bytes each
        already sent (after the client's request head, after the upstream's 101 head)."""
        relay = Relay(client, upstream, from_client, from_upstream)
        self.open.add(relay)
        metrics.websocket_opened()
        try:
            client.setblocking(False)
            upstream.setblocking(False)
        except OSError:
            self._finish(relay)
            return relay
        if self.stopping:
            self._go_away(relay)
        self._guarded(relay, self._pump)
        return relay

    def go_away_all(self) -> None:
        """The worker stops: every relay is going away (close frames 1001, then closed)."""
        self.stopping = True
        for relay in list(self.open):
            self._go_away(relay)
            self._guarded(relay, self._pump)

    def expire(self, now: float) -> None:
        """Idle relays go away; relays past their closing deadline are closed."""
        if now < self.next_scan:
            return
        self.next_scan = now + _SCAN_SECONDS
        for relay in list(self.open):
            if relay.close_by is not None and now >= relay.close_by:
                self._finish(relay)
            elif not relay.going_away and now - relay.last_activity >= self.idle_timeout:
                self._go_away(relay)
                self._guarded(relay, self._pump)

    # --- moving bytes ------------------------------------------------------------------------

    def _guarded(self, relay: Relay, step: Callable[[Relay], None]) -> None:
        """Run `step`; a fault in one relay closes that relay, never the worker's loop."""
        try:
            step(relay)
        except Exception:
            logger.exception("WebSocket relay failed; closing it")
            self._finish(relay)

    def _pump(self, relay: Relay) -> None:
        """Do what can be done without waiting, then wait for what is left (or close)."""
        if relay.closed:
            return
        for pipe in relay.pipes:
            self._flush(relay, pipe)
        for pipe in relay.pipes:
            self._read(relay, pipe)
        if all(pipe.done for pipe in relay.pipes):
            self._finish(relay)
        else:
            self._register(relay)

    def _read(self, relay: Relay, pipe: _Pipe) -> None:
        for attempt in itertools.count():
            # Bytes TLS decrypted already wake no selector: those are always taken now.
            if not pipe.wants_read() or (
                attempt >= _READS_PER_EVENT and not _tls_pending(pipe.source)
            ):
                return
            room = BUFFER_BYTES if not pipe.forwarding else BUFFER_BYTES - len(pipe.buffer)
            try:
                data = pipe.source.recv(room)
            except _NOT_NOW:
                return
            except (ssl.SSLEOFError, ssl.SSLZeroReturnError):
                data = b""
            except OSError:
                self._lost(relay, pipe.source)
                return
            if not data:
                self._source_ended(relay, pipe)
                return
            relay.last_activity = time.monotonic()
            if not pipe.forwarding:
                continue  # a side that was told we go away: read until it closes, dropped
            if relay.going_away:  # forwarded up to the frame's end, then the close frame
                data = data[: pipe.frames.feed(data, to_boundary=True)]
                pipe.buffer += data
                self._say_going_away(pipe)
            else:
                pipe.buffer += data
                pipe.frames.feed(data)
            self._flush(relay, pipe)

    def _flush(self, relay: Relay, pipe: _Pipe) -> None:
        while pipe.wants_write():
            size = pipe.retry or len(pipe.buffer)
            try:
                sent = pipe.sink.send(pipe.buffer[:size])
            except _NOT_NOW:
                pipe.retry = size if isinstance(pipe.sink, ssl.SSLSocket) else 0
                return
            except OSError:
                self._lost(relay, pipe.sink)
                return
            pipe.retry = 0
            del pipe.buffer[:sent]
            relay.last_activity = time.monotonic()
        if not pipe.buffer and not pipe.forwarding and not pipe.shut:
            pipe.shut = True
            # A TLS socket's shutdown() would drop its TLS state: the upstream over TLS is not
            # half-closed, it just gets nothing more (and is closed with the relay).
            if not isinstance(pipe.sink, ssl.SSLSocket):
                with contextlib.suppress(OSError):
                    pipe.sink.shutdown(socket.SHUT_WR)

    def _source_ended(self, relay: Relay, pipe: _Pipe) -> None:
        """EOF from `pipe.source`: passed on once the buffer went out; the rest closes soon."""
        pipe.eof = True
        pipe.forwarding = False
        relay.close_within(CLOSING_SECONDS)
        self._flush(relay, pipe)

    def _lost(self, relay: Relay, sock: socket.socket) -> None:
        """`sock` failed (reset, broken pipe): it gets nothing more and sends nothing more."""
        for pipe in relay.pipes:
            if pipe.source is sock:
                pipe.eof = True
                pipe.forwarding = False
            if pipe.sink is sock:
                pipe.buffer.clear()
                pipe.forwarding = False  # the other side's bytes are read and dropped
                pipe.shut = True
        relay.close_within(CLOSING_SECONDS)
        for pipe in relay.pipes:
            self._flush(relay, pipe)

    def _go_away(self, relay: Relay) -> None:
        if relay.going_away or relay.closed:
            return
        relay.going_away = True
        relay.close_within(CLOSING_SECONDS)
        for pipe in relay.pipes:
            self._say_going_away(pipe)

    @staticmethod
    def _say_going_away(pipe: _Pipe) -> None:
        """At a frame boundary, end this direction with a close frame 1001."""
        if pipe.forwarding and not pipe.shut and pipe.frames.at_boundary:
            pipe.buffer += close_frame(GOING_AWAY, masked=pipe.masked)
            pipe.forwarding = False

    # --- the selector ------------------------------------------------------------------------

    def _register(self, relay: Relay) -> None:
        for sock in (relay.client, relay.upstream):
            events = 0
            for pipe in relay.pipes:
                if pipe.source is sock and pipe.wants_read():
                    events |= selectors.EVENT_READ
                if pipe.sink is sock and pipe.wants_write():
                    events |= selectors.EVENT_WRITE
            current = relay.registered.get(sock, 0)
            if events == current:
                continue
            try:
                if not current:
                    self.poller.register(sock, events, self._callback(relay))
                elif not events:
                    self.poller.unregister(sock)
                else:
                    self.poller.modify(sock, events, self._callback(relay))
            except (KeyError, ValueError, OSError):
                self._finish(relay)
                return
            relay.registered[sock] = events

    def _callback(self, relay: Relay) -> Callable[[object], None]:
        return lambda _sock: self._guarded(relay, self._pump)

    def _finish(self, relay: Relay) -> None:
        """Close both sockets; the connection is counted out exactly once."""
        if relay.closed:
            return
        relay.closed = True
        try:
            for sock in relay.registered:
                with contextlib.suppress(KeyError, ValueError, OSError):
                    self.poller.unregister(sock)
            relay.registered.clear()
            for sock in (relay.client, relay.upstream):
                with contextlib.suppress(OSError):
                    sock.close()
        finally:
            self.open.discard(relay)
            metrics.websocket_closed()
            self.on_closed()
