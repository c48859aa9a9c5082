"""The gateway's gunicorn worker: unfinished request heads wait in the event loop, not in threads.

Serving model. gunicorn's gthread worker hands every new connection to a thread, which then
blocks reading the request head; a client that sends its head one byte at a time (slowloris)
holds that thread, and threads x workers such clients stall the node. Here the worker's main
thread (the event loop) owns every connection that is not being served: it accepts, and waits
for bytes. When bytes arrive, a request thread reads what is there without waiting (usually the
whole head, in one read, as gthread would) and serves the request; if the head is not complete
yet, the thread keeps the bytes with the connection and gives it back to the loop at once. So:

- a connection still sending its head, idle on keep-alive, or lingering while it closes holds
  no request thread, only a socket and its head bytes in the loop;
- a head must be complete within GATEWAY_CLIENT_HEADER_TIMEOUT of its first byte being
  awaited (total, not per read), else it is answered 408 and closed;
- a request thread runs Django exactly as under gthread (psycopg, thread-locals, the upstream
  pool); the loop never reads itself, so it needs the GIL no more often than gthread's does.
  A body that trickles is read by the thread, each read bounded by GATEWAY_CLIENT_TIMEOUT;
- after a kept-alive answer, the thread serves the client's next request itself if its head
  has arrived already and no other connection waits for a thread (at most _SERVED_IN_A_ROW in
  a row), sparing the round trip through the loop; otherwise the loop takes the connection.

Connections per worker are capped by GATEWAY_WORKER_CONNECTIONS (gunicorn's
worker_connections); past it the worker stops accepting and the kernel queues. A streamed
response holds its thread until it ends (WSGI is synchronous): at most GATEWAY_THREADS
streams per worker, each write bounded by GATEWAY_CLIENT_TIMEOUT.

A WebSocket leaves the worker's HTTP handling after its 101: its request thread returns at once
and hands both sockets (client, upstream) to the loop, which relays them non-blocking with a
bounded buffer per direction (gateway_project/ws_relay.py): no thread per WebSocket. A relayed
connection still counts against GATEWAY_WORKER_CONNECTIONS; one that moves no byte for
GATEWAY_WEBSOCKET_IDLE_TIMEOUT is closed (a close frame 1001 first).

Stopping (SIGTERM) still drains: the listeners close at once, queued connections are taken
and served with `Connection: close`, kept-alive ones and unfinished heads linger briefly, and
open WebSockets get a close frame 1001 (going away) each way and are closed within
ws_relay.CLOSING_SECONDS.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import hashlib
import inspect
import logging
import os
import select
import selectors
import socket
import time
import types
from collections import deque
from functools import partial
from typing import Any

from gunicorn import glogging, http, util
from gunicorn.config import PreRequest
from gunicorn.http import errors as parse_errors
from gunicorn.http import message as http_message
from gunicorn.http import wsgi
from gunicorn.http.body import ChunkedReader, LengthReader
from gunicorn.http.message import MAX_REQUEST_LINE
from gunicorn.workers.gthread import STOP_KEEPALIVE_LINGER, TConn, ThreadWorker

from gateway_project import (
    accept_balance,
    client_framing,
    handoff,
    one_write_response,
    server_errors,
    ws_relay,
)
from gateway_project.client_socket import ClientSocket

# A stopping worker takes at most this many queued connections per listener (the kernel's
# listen backlog is 2048 by default), so the loop is bounded even under a connection flood.
_MAX_QUEUED_ACCEPTS = 4096
# One non-blocking read of a head (gunicorn's own read size); a larger head takes several.
_HEAD_RECV_SIZE = 8192
# One read of what a closing client still sends.
_RECV_SIZE = 65536
# A closing connection is read (and discarded) this long, at most this much, before the close:
# closing with unread request bytes makes the kernel send RST, which can destroy the answer
# still in flight (RFC 9112 section 9.6). gunicorn does this blocking; here the loop does it.
_LINGER_SECONDS = 2.0
# Unfinished heads one worker holds in memory at most, all connections together.
_HEAD_BUDGET = 64 * 1024 * 1024
# What a thread's non-blocking look at a head found.
_HEAD_COMPLETE = object()
_AWAIT_HEAD = object()
_LINGER_MAX_BYTES = 65536
# Requests of one kept-alive connection a thread serves in a row, its next head already there
# and no other connection waiting (DrainingThreadWorker.handle); then it goes back to the loop.
_SERVED_IN_A_ROW = 32


class _HandedOver:
    """A thread's outcome when its request handed the socket over (a WebSocket relay)."""

    def __init__(self, upgrade: handoff.Upgrade) -> None:
        self.upgrade = upgrade


def _seconds_from_env(name: str) -> float | None:
    """A duration gunicorn.conf.py put in the environment, in seconds; None when 0 (no bound)."""
    seconds = float(os.environ.get(name, "0") or 0)
    return seconds if seconds > 0 else None


def _head_end(head: bytearray, searched: int) -> bool:
    """Whether `head` holds the empty line ending a request head (at or after `searched`).

    A bare-LF empty line counts too: gunicorn's parser then refuses the head at once,
    rather than the loop waiting for a CRLF that will never come.
    """
    start = max(0, searched - 3)
    return head.find(b"\n\r\n", start) >= 0 or head.find(b"\n\n", start) >= 0


def _body_read_to_end(message: Any) -> bool:
    """Whether a request's body has no byte left on the socket (none, or all of it read)."""
    body = getattr(message, "body", None)
    reader = getattr(body, "reader", None)
    return type(reader) is LengthReader and reader.length == 0 and not body.failed  # type: ignore[union-attr]


def _head_too_large() -> BaseException:
    return parse_errors.LimitRequestHeaders("request head too large")


_gunicorn_http_date = util.http_date
_date_header: tuple[int, str] = (0, "")


def http_date_per_second(timestamp: float | None = None) -> str:
    """gunicorn's `Date` value, formatted once per second instead of per answer (through
    the email package: ~1.5% of a proxied request's CPU); an explicit `timestamp` as before."""
    global _date_header
    if timestamp is not None:
        return str(_gunicorn_http_date(timestamp))
    second = int(time.time())
    cached = _date_header  # one read: another thread may replace it meanwhile
    if cached[0] != second:
        cached = _date_header = (second, str(_gunicorn_http_date(second)))
    return cached[1]


_gunicorn_ip_in_allow_list = http_message._ip_in_allow_list
# Peer address and the identity of the list it was checked against -> (lists, answer).
_allow_list_answers: dict[tuple[str, int, int], tuple[Any, Any, bool]] = {}
_ALLOW_LIST_ANSWERS_LIMIT = 4096


def ip_in_allow_list_per_peer(ip_str: str, allow_list: Any, networks: Any) -> bool:
    """gunicorn's check that a peer may set forwarding headers, remembered per address.

    gunicorn parses the peer's address (ipaddress, in Python) and tests it against
    forwarded_allow_ips on every request; a worker's lists never change (a reload starts new
    workers), so the answer for one address is the same every time. Bounded: past the
    limit the remembered answers are dropped and checked again.
    """
    key = (ip_str, id(allow_list), id(networks))
    known = _allow_list_answers.get(key)
    if known is not None and known[0] is allow_list and known[1] is networks:
        return known[2]
    answer = bool(_gunicorn_ip_in_allow_list(ip_str, allow_list, networks))
    if len(_allow_list_answers) >= _ALLOW_LIST_ANSWERS_LIMIT:
        _allow_list_answers.clear()
    _allow_list_answers[key] = (allow_list, networks, answer)
    return answer


_GunicornErrorsWrapper: type[Any] = wsgi.WSGIErrorsWrapper


class ErrorsStreamPerWrite(wsgi.WSGIErrorsWrapper):
    """gunicorn's `wsgi.errors`, finding its streams when written to rather than when made.

    gunicorn makes one per request, and each looks up its logger (under the logging module's
    lock) and that logger's handlers; the gateway hardly ever writes to it. The streams are
    the same ones gunicorn would find (a log reopened since is found as it is now).
    """

    def __init__(self, cfg: Any) -> None:  # RawIOBase has no __init__ to call
        self._cfg = cfg

    @property
    def streams(self) -> list[Any]:
        """What gunicorn's __init__ would have collected."""
        found = types.SimpleNamespace()  # gunicorn's __init__ only sets `streams` on it
        _GunicornErrorsWrapper.__init__(found, self._cfg)
        return list(found.streams)


# gunicorn's functions that wsgi_create_inlined reproduces (as gunicorn defines them, taken
# before install_per_request_savings() replaces create), and the digest of their source
# (gunicorn 27.0.1) when they were last compared.
WSGI_CREATE_COPIED_FROM = (
    (wsgi.create, "2c35d4a2dc629ede"),
    (wsgi.base_environ, "942494574f2cdd6d"),
    (wsgi.default_environ, "b7e18b84d829cb5a"),
    (wsgi.proxy_environ, "aa15bdf8b7edd256"),
    (util.unquote_to_wsgi_str, "7bc6d0bf7f60e86d"),
)
_gunicorn_wsgi_create = wsgi.create

# os.environ as gunicorn reads it on every request (os.environ.get("SCRIPT_NAME", "")): its
# store is a dict of encoded names and values, read here directly, so an unset variable
# costs a dict lookup instead of a raised and caught KeyError. Should os.environ ever be
# replaced by another object, the read is os.environ.get again.
_OS_ENVIRON = os.environ
_OS_ENVIRON_STORE: dict[Any, Any] = vars(os.environ)["_data"]
_SCRIPT_NAME_KEY: Any = os.environ.encodekey("SCRIPT_NAME")


def source_digest(function: Any) -> str:
    """A short digest of a function's source, to tell whether gunicorn's code has changed."""
    return hashlib.sha256(inspect.getsource(function).encode()).hexdigest()[:16]


def wsgi_create_copied_code_unchanged() -> bool:
    """Whether gunicorn's functions are still those wsgi_create_inlined was copied from (False
    when their source cannot be read, e.g. gunicorn installed as .pyc files only)."""
    try:
        return all(
            source_digest(function) == digest for function, digest in WSGI_CREATE_COPIED_FROM
        )
    except (OSError, TypeError):
        return False


def wsgi_create_inlined(
    req: Any,
    sock: Any,
    client: Any,
    server: Any,
    cfg: Any,
    response_class: Any = None,
    response_args: Any = (),
) -> tuple[Any, dict[str, Any]]:
    """gunicorn's wsgi.create(), the (response, environ) pair for a request, without its
    per-request helper calls.

    gunicorn builds each environ through base_environ() and default_environ() (two functions
    and a list comprehension for the protocol string), os.environ.get("SCRIPT_NAME")
    (os.environ is a Python mapping: a key encoding and, the variable being unset, a KeyError
    raised and caught inside), proxy_environ() and unquote_to_wsgi_str() (urllib's unquoting of
    a path with nothing to unquote): about ten Python function calls per request, half of
    gunicorn's environ work. This is the same function with those calls inlined: the same keys
    in the same order, the same values, the same precedence (the SCRIPT_NAME header over the
    environment variable, read per request as gunicorn does; Content-Type/-Length under their
    CGI names; repeated headers joined with ","), the same 100-continue, REMOTE_* and SERVER_*
    (unix sockets included), proxy protocol, early hints and HTTP/2 priority keys, and the same
    ConfigurationProblem for a path outside SCRIPT_NAME. Anything unusual (an address that is
    not a tuple, a version that is not a pair, a path to unquote) takes gunicorn's own
    expressions.

    It is a copy of gunicorn's code: it is installed only while gunicorn's functions are the
    ones it was copied from (WSGI_CREATE_COPIED_FROM); after a gunicorn upgrade the worker
    keeps gunicorn's create() until the two are compared again (the deploy tests fail).
    """
    if response_class is None:
        response_class = wsgi.Response
    resp = response_class(req, sock, cfg, *response_args)

    version = req.version
    try:
        protocol = "HTTP/%s.%s" % version  # noqa: UP031 - str() of each, as gunicorn's join
    except TypeError:  # not a pair: gunicorn's own expression (which may raise the same)
        protocol = "HTTP/%s" % ".".join([str(v) for v in version])  # noqa: UP031
    # base_environ() and default_environ(), in their order.
    environ: dict[str, Any] = {
        "wsgi.errors": wsgi.WSGIErrorsWrapper(cfg),
        "wsgi.version": (1, 0),
        "wsgi.multithread": False,
        "wsgi.multiprocess": (cfg.workers > 1),
        "wsgi.run_once": False,
        "wsgi.file_wrapper": wsgi.FileWrapper,
        "wsgi.input_terminated": True,
        "SERVER_SOFTWARE": wsgi.SERVER_SOFTWARE,
        "wsgi.input": req.body,
        "gunicorn.socket": sock,
        "REQUEST_METHOD": req.method,
        "QUERY_STRING": req.query,
        "RAW_URI": req.uri,
        "SERVER_PROTOCOL": protocol,
    }

    host = None
    os_environ = os.environ
    if os_environ is _OS_ENVIRON:
        store = _OS_ENVIRON_STORE
        key = _SCRIPT_NAME_KEY
        script_name = ""
        if key in store:
            with contextlib.suppress(KeyError):  # unset meanwhile: as os.environ.get
                script_name = os_environ.decodevalue(store[key])
    else:
        script_name = os_environ.get("SCRIPT_NAME", "")

    if req._expected_100_continue:
        sock.send(b"HTTP/1.1 100 Continue\r\n\r\n")

    repeated: dict[str, list[Any]] = {}
    for hdr_name, hdr_value in req.headers:
        if hdr_name == "HOST":
            host = hdr_value
        elif hdr_name == "SCRIPT_NAME":
            script_name = hdr_value
        elif hdr_name == "CONTENT-TYPE":
            environ["CONTENT_TYPE"] = hdr_value
            continue
        elif hdr_name == "CONTENT-LENGTH":
            environ["CONTENT_LENGTH"] = hdr_value
            continue
        key = "HTTP_" + hdr_name.replace("-", "_")
        if key in environ:
            repeated.setdefault(key, [environ[key]]).append(hdr_value)
        else:
            environ[key] = hdr_value
    for key, values in repeated.items():
        environ[key] = ",".join(values)

    environ["wsgi.url_scheme"] = req.scheme

    if client.__class__ is tuple:  # a TCP peer: gunicorn's last branch
        environ["REMOTE_ADDR"] = client[0]
        environ["REMOTE_PORT"] = str(client[1])
    elif isinstance(client, str):
        environ["REMOTE_ADDR"] = client
    elif isinstance(client, bytes):
        environ["REMOTE_ADDR"] = client.decode()
    else:
        environ["REMOTE_ADDR"] = client[0]
        environ["REMOTE_PORT"] = str(client[1])

    if server.__class__ is not tuple and isinstance(server, str):
        server = server.split(":")
        if len(server) == 1:
            # unix socket
            if host:
                server = host.split(":")
                if len(server) == 1:
                    if req.scheme == "http":
                        server.append(80)
                    elif req.scheme == "https":
                        server.append(443)
                    else:
                        server.append("")
            else:
                server.append("")
    environ["SERVER_NAME"] = server[0]
    environ["SERVER_PORT"] = str(server[1])

    path_info = req.path
    if script_name:
        if not path_info.startswith(script_name):
            raise parse_errors.ConfigurationProblem(
                "Request path %r does not start with SCRIPT_NAME %r" % (path_info, script_name)  # noqa: UP031
            )
        path_info = path_info[len(script_name) :]
    # unquote_to_wsgi_str() of a path with nothing to unquote is the path itself (ASCII text
    # is the same in UTF-8 and latin-1).
    if path_info.__class__ is str and "%" not in path_info and path_info.isascii():
        environ["PATH_INFO"] = path_info
    else:
        environ["PATH_INFO"] = util.unquote_to_wsgi_str(path_info)
    environ["SCRIPT_NAME"] = script_name

    # proxy_environ(): the proxy protocol's addresses override the peer's.
    info = req.proxy_protocol_info
    if info:
        environ.update(
            {
                "PROXY_PROTOCOL": info["proxy_protocol"],
                "REMOTE_ADDR": info["client_addr"],
                "REMOTE_PORT": str(info["client_port"]),
                "PROXY_ADDR": info["proxy_addr"],
                "PROXY_PORT": str(info["proxy_port"]),
            }
        )

    environ["wsgi.early_hints"] = wsgi._make_early_hints_callback(req, sock, resp)

    if hasattr(req, "priority_weight"):
        environ["gunicorn.http2.priority_weight"] = req.priority_weight
        environ["gunicorn.http2.priority_depends_on"] = req.priority_depends_on

    return resp, environ


_gunicorn_pre_request = PreRequest.default
_GUNICORN_LOG_DEBUG = glogging.Logger.debug
_LOGGING_DEBUG = logging.Logger.debug


def pre_request_debug_line(worker: Any, req: Any) -> None:
    """gunicorn's default pre_request hook: the request's debug line, but decided in one call.

    gunicorn's hook calls worker.log.debug(), which calls the error log's debug(), which asks
    isEnabledFor(DEBUG) and, at the gateway's usual level (info), stops there: three calls
    to find nothing to do, on every request. This asks isEnabledFor itself (the same answer,
    per request: a level changed at run time still counts) and, when debug lines are logged,
    logs through worker.log.debug() exactly as gunicorn's hook does. A logger class other
    than gunicorn's, or an error log whose debug() is not logging's, gets gunicorn's call.
    """
    log = worker.log
    if log.__class__.debug is _GUNICORN_LOG_DEBUG:
        error_log = log.error_log
        if error_log.__class__.debug is _LOGGING_DEBUG and not error_log.isEnabledFor(
            logging.DEBUG
        ):
            return
    log.debug("%s %s", req.method, req.path)


def default_hooks_replaced(cfg: Any) -> None:
    """Where a worker's config holds gunicorn's default pre_request hook, put the equal
    pre_request_debug_line in its place (after settings_as_attributes; a hook the
    configuration sets itself is left alone)."""
    if vars(cfg).get("pre_request") is _gunicorn_pre_request:
        vars(cfg)["pre_request"] = pre_request_debug_line


def install_per_request_savings() -> None:
    """Put this module's versions of gunicorn's per-request helpers where gunicorn looks them
    up on each request or answer (in a worker process)."""
    util.http_date = http_date_per_second
    http_message._ip_in_allow_list = ip_in_allow_list_per_peer
    wsgi.WSGIErrorsWrapper = ErrorsStreamPerWrite
    one_write_response.install()
    # Only over gunicorn's own create(): one a hook or a library has wrapped since is kept.
    if wsgi.create is _gunicorn_wsgi_create and wsgi_create_copied_code_unchanged():
        wsgi.create = wsgi_create_inlined


def settings_as_attributes(cfg: Any) -> None:
    """Store every gunicorn setting's value as a plain attribute of this worker's config.

    gunicorn's Config answers each `cfg.name` through `__getattr__` and the setting's `get()`,
    and its parser and Response read settings many times per request (~2% of a proxied
    request's CPU). A worker's settings never change (a reload starts new workers), so each
    value is stored once. Settings read through a property that derives a value (`sendfile`,
    `env`, `worker_class`) are left to it.
    """
    for name, setting in cfg.settings.items():
        if not isinstance(getattr(type(cfg), name, None), property):
            vars(cfg)[name] = setting.get()  # Config.__setattr__ refuses setting names


class GatewayConnection(TConn):
    """A client connection: its unfinished head and deadline, and the read bound
    (GATEWAY_CLIENT_TIMEOUT) for blocking reads and writes while a thread serves it.
    """

    read_timeout: float | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.head = bytearray()
        self.head_counted = 0  # of `head`, what the worker's head budget holds for it
        self.head_scanned = 0  # `head` up to here holds no end (each byte is searched once)
        self.head_deadline: float | None = None  # the current head's, once it is awaited
        self.gather = True  # a thread first reads the head non-blocking, never waiting for it
        # What the loop waits for on this connection ("head" or "linger"); None while a
        # thread or the keep-alive list has it.
        self.waiting: str | None = None
        self.linger_deadline = 0.0
        self.lingered = 0

    def wait_for_data(self, timeout: float) -> bool:
        """Wait for a new connection's first bytes no longer than the read bound either."""
        if self.read_timeout is not None:
            timeout = min(timeout, self.read_timeout)
        return bool(super().wait_for_data(timeout))

    def init(self) -> None:
        """Set up the connection as gthread does, then bound its blocking reads."""
        super().init()
        # Re-applied on every request: gthread makes the socket blocking (no timeout) first
        # (a ClientSocket's "blocking" is this bound already: then nothing changes).
        self.sock.settimeout(self.read_timeout)


class DrainingThreadWorker(ThreadWorker):
    """gthread's thread pool behind an event loop that owns unfinished heads (module docstring).

    When it stops accepting for good it takes the connections queued in the listen backlog and
    closes its listeners, so a client is either served or refused (never reset unseen), which a
    load balancer retries safely on another node.
    """

    def init_process(self) -> None:
        """Read the head deadline and limits, then start as gthread does."""
        install_per_request_savings()
        settings_as_attributes(self.cfg)
        default_hooks_replaced(self.cfg)
        self.header_timeout = _seconds_from_env("GATEWAY_CLIENT_HEADER_TIMEOUT_SECONDS") or 10.0
        self.read_timeout = _seconds_from_env("GATEWAY_CLIENT_TIMEOUT_SECONDS")
        line = self.cfg.limit_request_line
        line = MAX_REQUEST_LINE if line <= 0 or line > MAX_REQUEST_LINE else line
        fields = self.cfg.limit_request_fields or 100
        field_size = self.cfg.limit_request_field_size or 8190
        # The longest head gunicorn's parser would accept; a longer one is refused at once.
        self.max_head = line + 2 + fields * (field_size + 2) + 4
        # TLS handshakes and HTTP/2 prefaces are gunicorn's own blocking business: with either
        # configured, connections go to threads as under stock gthread (the gateway uses neither;
        # TLS ends at the ingress).
        self.loop_reads_heads = not self.cfg.is_ssl and self.cfg.http2_cleartext in (None, "off")
        # (deadline, connection) in deadline order, one queue per kind of wait (each kind has a
        # fixed length, so appending keeps the order). An entry whose connection has moved on
        # since is skipped when it comes up: nothing is removed mid-queue.
        self.head_deadlines: deque[tuple[float, GatewayConnection]] = deque()
        self.linger_deadlines: deque[tuple[float, GatewayConnection]] = deque()
        self.fds_full_at = 0
        # Bytes of unfinished heads this worker holds: one head may be up to max_head (~800 KiB
        # with the default limits), so many large unfinished heads are refused (431) past this.
        self.head_bytes = 0
        self.head_budget = max(_HEAD_BUDGET, 4 * self.max_head)
        self.websocket_idle_timeout = (
            _seconds_from_env("GATEWAY_WEBSOCKET_IDLE_TIMEOUT_SECONDS") or 300.0
        )
        self.relays: ws_relay.Relays | None = None  # made in run(), once the selector exists
        # Accept balancing (accept_balance): this worker's slot, given by the master's pre_fork.
        self.balance_slot: int | None = getattr(self, "balance_slot", None)
        self.accept_paused_until = 0.0
        self.accept_pauses = 0  # pauses in a row without accepting
        handoff.enable()
        super().init_process()

    def load_wsgi(self) -> None:
        """Load the application, then exempt everything it built from garbage collection.

        Django, the URL table and every imported module are ~125,000 objects that live as long
        as the worker; left in the collector's oldest generation, each full collection walks
        all of them (67-80 ms of CPU measured, with the GIL held: every request of the worker
        waits). Frozen, a full collection walks only what was made since.
        """
        super().load_wsgi()
        gc.freeze()

    def run(self) -> None:
        """Relay WebSockets in the event loop, then run it as gthread does."""
        self.relays = ws_relay.Relays(
            self.poller, idle_timeout=self.websocket_idle_timeout, on_closed=self._relay_closed
        )
        super().run()

    # --- accepting --------------------------------------------------------------------------

    def notify(self) -> None:
        """Tell the master we are alive, and the other workers how many connections we hold."""
        super().notify()
        if self.balance_slot is not None:
            accept_balance.table().publish(self.balance_slot, self.nr_conns)

    def _leave_to_others(self) -> bool:
        """Whether this worker, ahead of a less busy one, should pause accepting (accept_balance)."""
        if self.balance_slot is None or not self.alive:
            return False
        if self.accept_pauses >= accept_balance.MAX_PAUSES:
            return False
        return accept_balance.table().ahead(self.balance_slot, self.nr_conns)

    def wait_for_and_dispatch_events(self, timeout: float) -> None:
        """gthread's wait, woken in time to end an accept pause."""
        if self.accept_paused_until:
            timeout = min(timeout, max(0.0, self.accept_paused_until - time.monotonic()))
        super().wait_for_and_dispatch_events(timeout)

    def accept(self, listener: Any) -> None:
        """Accept a connection; the loop waits for its first bytes."""
        if self._leave_to_others():
            self.accept_pauses += 1
            self.accept_paused_until = time.monotonic() + accept_balance.PAUSE_SECONDS
            self.set_accept_enabled(False)
            return
        self.accept_pauses = 0
        try:
            client_sock, client_addr = listener.accept()
        except OSError as error:
            if error.errno in (errno.EMFILE, errno.ENFILE):
                # Out of descriptors: stop accepting until a connection closes (run()'s check
                # re-enables it), instead of spinning on a listener that stays readable.
                self.log.warning("Out of file descriptors: not accepting for now")
                self.fds_full_at = self.worker_connections = max(self.nr_conns, 1)
                return
            if error.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        if self.balance_slot is not None:
            accept_balance.table().publish(self.balance_slot, self.nr_conns)
        if self.loop_reads_heads:
            client_sock = ClientSocket.adopt(client_sock, self.read_timeout)
        conn = GatewayConnection(self.cfg, client_sock, client_addr, listener.getsockname())
        conn.read_timeout = self.read_timeout
        if not self.loop_reads_heads:
            client_sock.setblocking(True)
            self.enqueue_req(conn)
            return
        self._start_head_deadline(conn)
        self._watch_head(conn)

    # --- heads: the loop waits, a thread reads what has arrived without waiting ---------------

    def _start_head_deadline(self, conn: GatewayConnection) -> None:
        seconds = self.header_timeout if self.alive else STOP_KEEPALIVE_LINGER
        conn.head_deadline = time.monotonic() + seconds
        self.head_deadlines.append((conn.head_deadline, conn))

    def _watch_head(self, conn: GatewayConnection) -> None:
        conn.waiting = "head"
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_head_readable, conn))

    def _unwatch(self, conn: GatewayConnection) -> None:
        if conn.waiting is None:
            return
        conn.waiting = None
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.poller.unregister(conn.sock)

    def _on_head_readable(self, conn: GatewayConnection, _sock: Any) -> None:
        """Bytes of an unfinished head arrived: a thread reads them (see _gather_head)."""
        self._unwatch(conn)
        conn.gather = True
        self.enqueue_req(conn)

    def on_client_socket_readable(self, conn: GatewayConnection, client: Any) -> None:
        """A kept-alive connection has bytes: a thread reads its next head, without waiting."""
        conn.gather = self.loop_reads_heads
        super().on_client_socket_readable(conn, client)

    def handle(self, conn: GatewayConnection) -> Any:
        """Serve a connection in a thread once its head is complete; else give it back.

        After a kept-alive answer, a client's next request that has already arrived is served
        by the same thread when no other connection waits for one (see _next_head_now).
        """
        if self.loop_reads_heads and conn.gather:
            try:
                outcome = self._gather_head(conn)
            except Exception:
                self.log.exception("Error reading a request head")
                return False
            if outcome is not _HEAD_COMPLETE:
                return outcome
        for _ in range(_SERVED_IN_A_ROW):
            try:
                outcome = super().handle(conn)
            except BaseException:
                upgrade = handoff.claim(conn.sock)  # no entry outlives its request
                if upgrade is not None:
                    upgrade.discard()
                raise
            upgrade = handoff.claim(conn.sock)
            if upgrade is not None:
                return _HandedOver(upgrade)
            if outcome is not True or not self.loop_reads_heads:
                return outcome
            outcome = self._next_head_now(conn)
            if outcome is not _HEAD_COMPLETE:
                return outcome
        return True  # served enough in a row: the loop hands the rest to whichever thread

    def _next_head_now(self, conn: GatewayConnection) -> object:
        """After a kept-alive answer: _HEAD_COMPLETE if the client's next head is here already
        and no other connection waits for a thread, else what finish_request expects: True
        (nothing yet: park it idle), _AWAIT_HEAD (part of a head) or False (close).

        Serving it here spares the loop's round trip (a wake-up through its pipe, two poller
        changes, a hand-over to a thread, the GIL passed back and forth). When connections wait
        in the queue the loop keeps their order: a thread does not stay with one client.
        """
        # gthread's pool is a ThreadPoolExecutor: its queue holds the connections waiting. A
        # pool of another kind (gunicorn lets get_thread_pool be overridden) gets the loop.
        waiting = getattr(self.tpool, "_work_queue", None)
        if not self.alive or waiting is None or not waiting.empty():
            return True
        try:
            unreader = conn.parser.unreader
            if unreader.buf.getbuffer().nbytes:  # a body drain read ahead into the next head
                conn.head = bytearray(unreader.take_buffered())
            outcome = self._gather_head(conn)
        except Exception:
            self.log.exception("Error reading a request head")
            return False
        if outcome is _AWAIT_HEAD and not conn.head:
            return True
        return outcome

    def _gather_head(self, conn: GatewayConnection) -> object:
        """Read what arrived, never waiting: _HEAD_COMPLETE, _AWAIT_HEAD or False (close).

        The read is done here, not by the loop: each read releases and retakes the GIL, and a
        loop thread retaking it behind busy request threads would delay every connection.
        """
        head = conn.head
        complete = len(head) > conn.head_scanned and _head_end(head, conn.head_scanned)
        while not complete:
            try:
                data = conn.sock.read_now(_HEAD_RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                return False
            if not data:  # the client went away before finishing its head
                return False
            searched = len(head)
            head += data
            complete = _head_end(head, searched)
            if not complete and len(head) > self.max_head:
                self.handle_error(None, conn.sock, conn.client, _head_too_large())
                return False
            if len(data) < _HEAD_RECV_SIZE:
                break
        if not complete:
            conn.head_scanned = len(head)
            return _AWAIT_HEAD
        conn.head_scanned = 0
        if conn.parser is None:
            conn.parser = http.get_parser(self.cfg, conn.sock, conn.client)
        conn.parser.unreader.unread(head)  # copied into the parser's buffer
        conn.head = bytearray()
        conn.head_deadline = None
        conn.gather = False
        conn.data_ready = True
        return _HEAD_COMPLETE

    def _release_head(self, conn: GatewayConnection) -> None:
        self.head_bytes -= conn.head_counted
        conn.head_counted = conn.head_scanned = 0
        conn.head = bytearray()

    def finish_request(self, conn: GatewayConnection, fs: Any) -> None:
        """After a thread: wait for the rest of a head, keep the connection alive, or close it."""
        handed = None if fs.cancelled() or fs.exception() is not None else fs.result()
        if isinstance(handed, _HandedOver):
            self._hand_over(conn, handed.upgrade)
            return
        if not self.loop_reads_heads:
            super().finish_request(conn, fs)
            return
        try:
            outcome = fs.result() if not fs.cancelled() else False
        except Exception:
            outcome = False
        if outcome is _AWAIT_HEAD:
            self._await_rest_of_head(conn)
            return
        self._release_head(conn)
        if not outcome:
            self._close_lingering(conn)
            return
        try:
            # No mode change for the poller: a ClientSocket is non-blocking at the OS level in
            # every timeout mode, and the loop only reads it with read_now (client_socket).
            unreader = conn.parser.unreader
            pipelined = unreader.take_buffered() if unreader.buf.getbuffer().nbytes else b""
        except OSError:
            self._close(conn)
            return
        if pipelined:
            # The client sent its next request already (pipelining, or a body drain read
            # ahead): those bytes no longer make the socket readable, so a thread looks now.
            conn.head = bytearray(pipelined)
            conn.gather = True
            self.enqueue_req(conn)
            return
        conn.set_timeout()
        if not self.alive:
            conn.timeout = min(conn.timeout, time.monotonic() + STOP_KEEPALIVE_LINGER)
        self.keepalived_conns.append(conn)
        self.poller.register(
            conn.sock, selectors.EVENT_READ, partial(self.on_client_socket_readable, conn)
        )

    def _hand_over(self, conn: GatewayConnection, upgrade: handoff.Upgrade) -> None:
        """The socket leaves this worker's HTTP handling; the loop relays it (ws_relay).

        It still counts against GATEWAY_WORKER_CONNECTIONS until the relay closes it.
        """
        self._release_head(conn)
        pending = b""
        with contextlib.suppress(Exception):
            if conn.parser is not None and conn.parser.unreader.buf.getbuffer().nbytes:
                pending = conn.parser.unreader.take_buffered()
        if self.relays is None:  # not running (cannot happen after run() began)
            upgrade.discard()
            self._close(conn)
            return
        self.relays.start(conn.sock, upgrade.upstream, pending, upgrade.from_upstream)

    def _relay_closed(self) -> None:
        self.nr_conns -= 1

    def _await_rest_of_head(self, conn: GatewayConnection) -> None:
        self.head_bytes += len(conn.head) - conn.head_counted
        conn.head_counted = len(conn.head)
        if conn.head_deadline is None:  # a kept-alive connection's next head has begun
            self._start_head_deadline(conn)
        if self.head_bytes > self.head_budget:
            self._refuse(conn, _head_too_large())
        elif time.monotonic() >= conn.head_deadline:  # type: ignore[operator]
            self._refuse(conn, server_errors.HeadTimeout("request head not complete in time"))
        else:
            self._watch_head(conn)

    # --- refusing and closing -----------------------------------------------------------------

    def _refuse(self, conn: GatewayConnection, error: BaseException) -> None:
        """Answer a head the loop refuses (problem+json, non-blocking) and close lingering."""
        self._log_refusal(conn.client, error)
        self._release_head(conn)
        conn.head_deadline = None
        # A full send buffer or a gone client leaves nothing but the close below. The loop never
        # waits on a client: a kept-alive socket is parked in its timeout mode (client_socket),
        # where send() would wait for room up to the whole read bound, every connection with it.
        with contextlib.suppress(OSError):
            conn.sock.setblocking(False)
            conn.sock.send(server_errors.problem_bytes(server_errors.problem_for(error)))
        self._close_lingering(conn)

    def _close_lingering(self, conn: GatewayConnection) -> None:
        """Half-close, then let the loop read what the client still sends, then close."""
        try:
            conn.sock.setblocking(False)
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._close(conn)
            return
        conn.lingered = 0
        conn.linger_deadline = time.monotonic() + _LINGER_SECONDS
        self.linger_deadlines.append((conn.linger_deadline, conn))
        conn.waiting = "linger"
        self.poller.register(
            conn.sock, selectors.EVENT_READ, partial(self._on_linger_readable, conn)
        )

    def _on_linger_readable(self, conn: GatewayConnection, _sock: Any) -> None:
        try:
            data = conn.sock.recv(_RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        conn.lingered += len(data)
        if not data or conn.lingered >= _LINGER_MAX_BYTES:
            self._unwatch(conn)
            self._close(conn)

    def _close(self, conn: GatewayConnection) -> None:
        self._release_head(conn)
        self.nr_conns -= 1
        conn.close()

    def murder_pending(self) -> None:
        """Expire what the loop waits for: heads past their deadline (408) and lingering closes.

        Called by gthread's loop once per turn (at least every second), as it expires
        kept-alive connections; WebSocket relays expire here too (idle, closing deadlines).
        """
        super().murder_pending()
        now = time.monotonic()
        heads = self.head_deadlines
        while heads and heads[0][0] <= now:
            deadline, conn = heads.popleft()
            # A connection a thread is reading is judged when the thread gives it back.
            if conn.head_deadline != deadline or conn.waiting != "head":
                continue
            self._unwatch(conn)
            if conn.head:
                self._refuse(conn, server_errors.HeadTimeout("request head not complete in time"))
            else:
                conn.head_deadline = None
                self._close(conn)  # never sent a byte: nothing to answer
        lingering = self.linger_deadlines
        while lingering and lingering[0][0] <= now:
            deadline, conn = lingering.popleft()
            if conn.waiting == "linger" and conn.linger_deadline == deadline:
                self._unwatch(conn)
                self._close(conn)
        if self.relays is not None:
            self.relays.expire(now)
        if self.fds_full_at and self.nr_conns < self.fds_full_at:
            self.fds_full_at = 0
            self.worker_connections = self.cfg.worker_connections

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        """Answer a request gunicorn refused with problem+json instead of its HTML page."""
        problem = server_errors.problem_for(exc)
        if server_errors.is_client_error(exc):
            self._log_refusal(addr, exc)
        else:
            self.log.exception("Error handling request")
        try:
            util.write_nonblock(client, server_errors.problem_bytes(problem))
        except Exception:
            self.log.debug("Failed to send error message.")

    def _log_refusal(self, addr: Any, exc: BaseException) -> None:
        # The class name, not str(exc): the message may quote the request's own bytes.
        self.log.warning("Invalid request from %s: %s", (addr or ("",))[0], type(exc).__name__)

    # --- a request in a thread ------------------------------------------------------------------

    def handle_request(self, req: Any, conn: Any) -> bool:
        """Apply the client framing rules, then serve the request as gthread does."""
        client_framing.apply_request_target(req)
        # Only a chunked body can fail to parse midway (a length-delimited one just ends short).
        if req.body is not None and isinstance(req.body.reader, ChunkedReader):
            req.body = client_framing.GuardedBody(req.body, req)
        return bool(super().handle_request(req, conn))

    def _keepalive_after(self, conn: Any, keepalive: bool) -> bool:
        """Drain an unread body before keep-alive; a malformed one closes the connection."""
        if keepalive and _body_read_to_end(conn.parser.mesg):
            # Nothing to drain: gunicorn's drain would still set and restore the socket's
            # timeout around an empty read (two system calls, see client_socket).
            return True
        try:
            return bool(super()._keepalive_after(conn, keepalive))
        except (parse_errors.ParseException, parse_errors.NoMoreData, client_framing.MalformedBody):
            # The answer is out already: nothing to add, and the framing is lost.
            return False

    # --- stopping -------------------------------------------------------------------------------

    def set_accept_enabled(self, enabled: bool) -> None:
        """Stop or start polling the listeners; when stopping for good, drain and close them.

        gthread's loop asks to enable accepting on every turn: during an accept pause this
        waits until the pause is over (accept_balance).
        """
        if enabled and self.accept_paused_until:
            if time.monotonic() < self.accept_paused_until:
                return
            self.accept_paused_until = 0.0
        super().set_accept_enabled(enabled)
        if not enabled and not self.alive:
            if self.balance_slot is not None:  # a stopping worker takes no new connections
                accept_balance.table().release(self.balance_slot)
                self.balance_slot = None
            for listener in self.sockets:
                self._take_queued(listener)
                listener.close()
            self._cap_heads(time.monotonic() + STOP_KEEPALIVE_LINGER)
            if self.relays is not None:
                self.relays.go_away_all()

    def _cap_heads(self, deadline: float) -> None:
        """A stopping worker waits for unfinished heads briefly, not their whole deadline."""
        capped = []
        for entry_deadline, conn in self.head_deadlines:
            if conn.head_deadline == entry_deadline:
                conn.head_deadline = min(entry_deadline, deadline)
                capped.append((conn.head_deadline, conn))
        self.head_deadlines = deque(sorted(capped, key=lambda entry: entry[0]))

    def _take_queued(self, listener: Any) -> None:
        for _ in range(_MAX_QUEUED_ACCEPTS):
            try:
                readable, _, _ = select.select([listener], [], [], 0)
            except (OSError, ValueError):
                return
            if not readable:
                return
            try:
                self.accept(listener)
            except OSError:  # e.g. out of file descriptors: leave the rest to the kernel
                return
