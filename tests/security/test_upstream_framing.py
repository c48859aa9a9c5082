"""Hostile upstream answers on the wire: strict head parsing, resets, never a 500 or a desync.

A scripted raw upstream (tests/support/raw_upstream.py) sends exact bytes to a real gunicorn
gateway; a strict client (tests/security/http1.py) reads the gateway's answers on keep-alive
connections, so header injection, a short body taken as complete, or a desynchronised
connection all fail the tests.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from routing.models import Route, Service
from tests.security.http1 import Answer, Http1Reader
from tests.support.gateway_server import GatewayServer
from tests.support.raw_upstream import RawUpstream

# django_db makes pytest-django create the test database the gateway subprocess shares.
pytestmark = [pytest.mark.e2e, pytest.mark.django_db]

TIMEOUT = 15.0


@pytest.fixture(scope="module")
def raw() -> Iterator[RawUpstream]:
    """The scripted upstream for this module."""
    with RawUpstream() as server:
        yield server


@pytest.fixture(scope="module")
def gateway(django_db_setup, django_db_blocker, raw) -> Iterator[GatewayServer]:
    """A gateway with an open route to the raw upstream (no retries, no ejection)."""
    with django_db_blocker.unblock():
        service = Service.objects.create(name="raw-upstream", url=raw.url)
        Route.objects.create(
            path="/raw/**", service=service, authentication="none", timeout_ms=5000
        )
        try:
            with GatewayServer(GATEWAY_OUTLIER_CONSECUTIVE_FAILURES="0") as server:
                yield server
        finally:
            Route.objects.filter(service=service).delete()
            service.delete()


def request_bytes(path: str, *, close: bool = False) -> bytes:
    """A GET request's bytes, keep-alive unless `close`."""
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1"]
    if close:
        lines.append("Connection: close")
    return ("\r\n".join([*lines, "", ""])).encode()


def exchange(gateway: GatewayServer, path: str) -> tuple[Answer | None, Http1Reader]:
    """Send one keep-alive GET and read one answer strictly; the reader stays usable."""
    sock = socket.create_connection(("127.0.0.1", gateway.port), timeout=TIMEOUT)
    sock.sendall(request_bytes(path))
    reader = Http1Reader(sock)
    return reader.read(), reader


def assert_connection_still_in_sync(reader: Http1Reader) -> None:
    """The next request on the connection gets its own, correct answer (or the socket closed)."""
    try:
        reader.sock.sendall(request_bytes("/health", close=True))
    except OSError:
        return  # the gateway closed the connection: no desync possible
    answer = reader.read()
    if answer is None:
        return
    assert answer.status == 200, answer
    assert answer.body == b'{"status": "ok"}' or b'"ok"' in answer.body, answer


@pytest.fixture
def new_log(gateway) -> Callable[[], str]:
    """What the gateway logs from now on (this test's lines only)."""
    start = gateway.log_path.stat().st_size

    def read() -> str:
        with gateway.log_path.open("rb") as log:
            log.seek(start)
            return log.read().decode(errors="replace")

    return read


def assert_no_traceback(log: str) -> None:
    """The gateway logged no traceback and no 500."""
    assert "Traceback" not in log, log
    assert "internal_error" not in log, log


MALFORMED_HEADS = {
    "bare-cr-injects-header": b"HTTP/1.1 302 Found\r\nLocation: /x\rSet-Cookie: a=b\r\n"
    b"Content-Length: 0\r\n\r\n",
    "bare-lf-in-header": b"HTTP/1.1 200 OK\r\nX-A: 1\nSet-Cookie: a=b\r\nContent-Length: 0\r\n\r\n",
    "bare-lf-line-endings": b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
    "nul-in-value": b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 0\r\n\r\n",
    "control-byte-in-value": b"HTTP/1.1 200 OK\r\nX-A: a\x01b\r\nContent-Length: 0\r\n\r\n",
    "invalid-name": b"HTTP/1.1 200 OK\r\nX(A): 1\r\nContent-Length: 0\r\n\r\n",
    "space-before-colon": b"HTTP/1.1 200 OK\r\nX-A : 1\r\nContent-Length: 0\r\n\r\n",
    "obs-fold": b"HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\nContent-Length: 0\r\n\r\n",
    "no-colon": b"HTTP/1.1 200 OK\r\nX-A\r\nContent-Length: 0\r\n\r\n",
    "te-and-cl": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 300\r\n\r\n"
    b"a\r\n0123456789\r\n0\r\n\r\n",
    "two-content-lengths": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
    "signed-content-length": b"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok",
    "te-not-chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nok",
    "te-chunked-twice": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "interim-103-as-final": b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    "status-over-599": b"HTTP/1.1 600 Odd\r\nContent-Length: 0\r\n\r\n",
    "http-2-version": b"HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n",
}


@pytest.mark.parametrize("key", list(MALFORMED_HEADS))
def test_malformed_upstream_head_is_502_upstream_invalid_response(gateway, raw, key, new_log):
    path = raw.script(f"/raw/malformed/{key}", MALFORMED_HEADS[key])
    answer, reader = exchange(gateway, path)
    assert answer is not None and answer.status == 502, answer
    assert answer.header("Content-Type") == "application/problem+json"
    assert b'"upstream_invalid_response"' in answer.body, answer.body
    assert answer.header("Set-Cookie") is None  # nothing of the upstream's head went through
    assert_connection_still_in_sync(reader)
    assert_no_traceback(new_log())


def test_well_formed_upstream_answer_passes_with_via(gateway, raw):
    path = raw.script(
        "/raw/fine",
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Tab: a\tb\r\n"
        b"Via: 1.0 origin-cache\r\nContent-Length: 5\r\n\r\nhello",
    )
    answer, reader = exchange(gateway, path)
    assert answer is not None and answer.status == 200, answer
    assert answer.body == b"hello" and answer.complete
    assert answer.header("X-Tab") == "a\tb"
    via = answer.header("Via") or ""
    assert via.startswith("1.0 origin-cache, 1.1 gw-"), via
    assert b"via: 1.1 gw-" in raw.heads[-1].lower()  # the upstream saw the gateway's Via too
    assert_connection_still_in_sync(reader)


@pytest.mark.parametrize(
    ("answer_bytes", "code"),
    [
        pytest.param(b"", "upstream_unavailable", id="reset-before-any-byte"),
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-", None, id="reset-inside-the-head"),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789",
            "upstream_unavailable",
            id="reset-inside-a-small-body",  # read whole before the client's head goes out
        ),
    ],
)
def test_reset_before_the_answer_head_went_out_is_502(gateway, raw, answer_bytes, code, new_log):
    path = raw.script(f"/raw/reset/{len(answer_bytes)}", answer_bytes, then="reset")
    answer, reader = exchange(gateway, path)
    assert answer is not None and answer.status == 502, answer
    assert answer.header("Content-Type") == "application/problem+json"
    if code:
        assert f'"{code}"'.encode() in answer.body, answer.body
    assert_connection_still_in_sync(reader)
    assert_no_traceback(new_log())


BIG = 1024 * 1024  # over the gateway's 256 KiB buffering limit: the answer is streamed


@pytest.mark.parametrize(
    ("answer_bytes", "framing"),
    [
        pytest.param(
            b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % BIG + b"x" * 100_000,
            "content-length",
            id="content-length",
        ),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"%x\r\n" % 100_000
            + b"x" * 100_000
            + b"\r\n"
            + b"%x\r\n" % 100_000
            + b"x" * 500,
            "chunked",
            id="chunked",
        ),
    ],
)
def test_reset_mid_body_closes_the_client_connection(gateway, raw, answer_bytes, framing, new_log):
    path = raw.script(f"/raw/midbody/{framing}", answer_bytes, then="reset")
    answer, reader = exchange(gateway, path)
    assert answer is not None and answer.status == 200, answer
    assert not answer.complete, "a short body must not look complete"
    assert len(answer.body) < BIG
    # The connection is closed: the next request gets nothing (never another answer's bytes).
    try:
        reader.sock.sendall(request_bytes("/health"))
    except OSError:
        pass
    else:
        assert reader.read() is None
    log = new_log()
    assert "upstream body broke off" in log
    assert_no_traceback(log)


# --- the fuzzer: hostile heads the upstream might send -------------------------------------

_NAMES = st.sampled_from(
    [b"Content-Type", b"X-A", b"Set-Cookie", b"Location", b"Content-Length",
     b"Transfer-Encoding", b"Connection", b"Via", b"X(A)", b"X A", b"", b"X-\xff"]
)  # fmt: skip
_VALUE_BYTES = st.sampled_from(
    [b"a", b"1", b" ", b"\t", b"\r", b"\n", b"\x00", b"\x01", b"\x7f", b"\xe9", b",", b"chunked",
     b"close", b"-1", b"+5", b"0x10", b"99999999999999999999"]
)  # fmt: skip
_HEADER = st.tuples(
    _NAMES, st.sampled_from([b":", b": ", b" :", b""]), st.lists(_VALUE_BYTES, max_size=6)
).map(lambda t: t[0] + t[1] + b"".join(t[2]))
_STATUS = st.sampled_from(
    [b"HTTP/1.1 200 OK", b"HTTP/1.1 204 No Content", b"HTTP/1.1 304 Not Modified",
     b"HTTP/1.1 404 Nope", b"HTTP/1.0 200 OK", b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK",
     b"HTTP/1.1 101 Switching", b"HTTP/1.1 999 X", b"HTTP/1.1 20 X", b"HTTP/1.1 200 \x00",
     b"HTTP/2 200", b"garbage"]
)  # fmt: skip
_EOL = st.sampled_from([b"\r\n", b"\r\n", b"\r\n", b"\n", b"\r"])
_BODY = st.sampled_from(
    [b"", b"hello", b"5\r\nhello\r\n0\r\n\r\n", b"zz\r\n", b"5\r\nhel",
     b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"]
)  # fmt: skip


@st.composite
def upstream_answers(draw: st.DrawFn) -> tuple[bytes, str]:
    """A head (often almost valid), a body, and how the upstream ends the connection."""
    eol = draw(_EOL)
    lines = [draw(_STATUS)]
    for header in draw(st.lists(_HEADER, max_size=5)):
        lines.append(header)
        if draw(st.booleans()):  # keep some heads well-formed enough to reach the body
            lines.append(b"Content-Length: %d" % draw(st.integers(0, 12)))
    head = eol.join(lines) + eol + eol
    return head + draw(_BODY), draw(st.sampled_from(["close", "reset"]))


_fuzz_counter = iter(range(10**9))


@settings(
    max_examples=150,  # bounded: about 5 s; a local run with 700 random examples passed too
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(scripted=upstream_answers())
def test_fuzzed_upstream_heads_never_give_500_or_desync(gateway, raw, scripted):
    answer_bytes, then = scripted
    path = raw.script(f"/raw/fuzz/{next(_fuzz_counter)}", answer_bytes, then=then)
    answer, reader = exchange(gateway, path)  # Malformed if the gateway's answer is not HTTP
    try:
        assert answer is not None, ("the gateway must answer before closing", answer_bytes, then)
        assert answer.status != 500, (answer_bytes, answer)
        assert answer.status < 600
        if answer.status == 502:
            assert answer.header("Content-Type") == "application/problem+json"
        if answer.complete:
            assert_connection_still_in_sync(reader)
        else:  # a short body: the connection must be closed, never reused
            assert reader.read() is None
    finally:
        reader.sock.close()


def test_the_fuzzer_left_no_traceback(gateway):
    assert "Traceback" not in gateway.log_path.read_text(errors="replace")
