"""What a worker no longer repeats per request, with answers and bytes unchanged: header names
checked once per name, the forwarding-trust check once per peer address, the `wsgi.errors`
streams looked up only when written to."""

from __future__ import annotations

import io
import ipaddress
import logging
import socket
import sys
from typing import Any

import pytest
from gunicorn import util
from gunicorn.config import Config
from gunicorn.http import wsgi
from gunicorn.http.errors import InvalidHeader, InvalidHeaderName
from gunicorn.http.parser import RequestParser

from gateway_project import gunicorn_worker, one_write_response
from gateway_project.gunicorn_worker import ErrorsStreamPerWrite, ip_in_allow_list_per_peer
from gateway_project.one_write_response import HeadWithBodyResponse


def _request(raw: bytes = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"):
    ours, peer = socket.socketpair()
    peer.sendall(raw)
    peer.close()
    try:
        return next(RequestParser(Config(), ours, ("127.0.0.1", 1)))
    finally:
        ours.close()


class _Recorder:
    def __init__(self) -> None:
        self.data = b""

    def sendall(self, data: bytes) -> None:
        self.data += bytes(data)


def _wire(response_class, headers, body=b"hello") -> tuple[bytes, Any]:
    recorder = _Recorder()
    response = response_class(_request(), recorder, Config())
    response.start_response("200 OK", headers)
    response.write(body)
    response.close()
    return recorder.data, response


_HEADER_SETS = [
    [("Content-Type", "text/plain"), ("Content-Length", "5"), ("X-A", " padded \t")],
    [("Content-Length", "5"), ("Connection", "close"), ("Keep-Alive", "timeout=5")],
    [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Content-Length", "5")],
    [("Server", "upstream"), ("Date", "yesterday"), ("Transfer-Encoding", "chunked")],
    [("content-length", "5"), ("X-Empty", ""), ("X-Latin", "caf\xe9")],
    [("X-Tab", "a\tb"), ("X-Space", " padded "), ("X-Symbols", '!~"*'), ("X-High", "\xa0\xff")],
    [("X-Repeat", "1"), ("X-Repeat", "2"), ("Content-Length", "5")],
]


@pytest.fixture(autouse=True)
def _fixed_date(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(util, "http_date", lambda timestamp=None: "Thu, 01 Jan 2026 00:00:00 GMT")


@pytest.mark.parametrize("headers", _HEADER_SETS)
def test_an_answers_head_is_what_gunicorn_writes_the_first_time_and_every_time(headers):
    one_write_response._known_names.clear()
    stock, stock_response = _wire(wsgi.Response, headers)
    for _ in range(3):  # the first time checks the names in full, later times remember them
        ours, our_response = _wire(HeadWithBodyResponse, headers)
        assert ours == stock
        assert our_response.response_length == stock_response.response_length
        assert our_response.upgrade == stock_response.upgrade
        assert our_response.headers == stock_response.headers


@pytest.mark.parametrize(
    ("name", "value", "error"),
    [
        ("X-A", "bad\r\nvalue", InvalidHeader),
        ("X-A", "nul\x00", InvalidHeader),
        ("X-A", "del\x7f", InvalidHeader),
        ("X-A", "bell\x07", InvalidHeader),
        ("X-A", "beyond latin-1 \u0100", InvalidHeader),
        ("X A", "v", InvalidHeaderName),
        ("X-A", 5, TypeError),
        (b"X-A", "v", TypeError),
    ],
)
def test_a_bad_header_is_refused_as_gunicorn_refuses_it_even_under_a_known_name(name, value, error):
    _wire(HeadWithBodyResponse, [("X-A", "good"), ("Content-Length", "5")])  # X-A now known
    assert "X-A" in one_write_response._known_names
    for response_class in (wsgi.Response, HeadWithBodyResponse):
        response = response_class(_request(), _Recorder(), Config())
        with pytest.raises(error):
            response.start_response("200 OK", [(name, value)])


def test_a_bad_content_length_under_a_known_name_fails_as_in_gunicorn():
    _wire(HeadWithBodyResponse, [("Content-Length", "5")])
    for response_class in (wsgi.Response, HeadWithBodyResponse):
        response = response_class(_request(), _Recorder(), Config())
        with pytest.raises(ValueError):
            response.start_response("200 OK", [("Content-Length", "five")])


def test_names_an_upstream_invents_do_not_grow_the_memory_past_its_bound(monkeypatch):
    monkeypatch.setattr(one_write_response, "_KNOWN_NAMES_LIMIT", 8)
    one_write_response._known_names.clear()
    invented = [(f"X-Invented-{n}", "v") for n in range(50)]
    stock, _ = _wire(wsgi.Response, [*invented, ("Content-Length", "5")])
    ours, _ = _wire(HeadWithBodyResponse, [*invented, ("Content-Length", "5")])
    assert ours == stock
    assert len(one_write_response._known_names) == 8


def test_a_long_invented_name_is_written_as_gunicorn_writes_it_but_not_remembered():
    one_write_response._known_names.clear()
    long_name = "X-" + "Long-" * 40
    headers = [(long_name, "v"), ("Content-Length", "5")]
    for _ in range(2):
        assert _wire(HeadWithBodyResponse, headers)[0] == _wire(wsgi.Response, headers)[0]
    assert long_name not in one_write_response._known_names
    assert "Content-Length" in one_write_response._known_names


def test_connection_and_upgrade_are_never_remembered_and_other_hop_by_hop_names_as_dropped():
    one_write_response._known_names.clear()
    headers = [("Connection", "close"), ("Upgrade", "h2c"), ("Server", "x"), ("Date", "y")]
    _wire(HeadWithBodyResponse, headers)
    assert one_write_response._known_names == {
        "Server": one_write_response._DROPPED,
        "Date": one_write_response._DROPPED,
    }


@pytest.mark.parametrize("name", ["Server", "Date", "Keep-Alive"])
def test_a_dropped_names_value_is_still_checked_as_gunicorn_checks_it(name):
    _wire(HeadWithBodyResponse, [(name, "good"), ("Content-Length", "5")])  # now known
    assert one_write_response._known_names[name] == one_write_response._DROPPED
    for response_class in (wsgi.Response, HeadWithBodyResponse):
        response = response_class(_request(), _Recorder(), Config())
        with pytest.raises(InvalidHeader):
            response.start_response("200 OK", [(name, "bad\r\nvalue")])


_ALLOWED = ["127.0.0.1", "10.0.0.0/8", "::1"]
_NETWORKS = [ipaddress.ip_network(each) for each in _ALLOWED]


@pytest.mark.parametrize(
    "address", ["127.0.0.1", "10.2.3.4", "::1", "192.168.1.1", "2001:db8::1", "garbage", ""]
)
def test_the_forwarding_trust_answer_per_peer_is_gunicorns(address):
    gunicorn_worker._allow_list_answers.clear()
    expected = gunicorn_worker._gunicorn_ip_in_allow_list(address, _ALLOWED, _NETWORKS)
    assert ip_in_allow_list_per_peer(address, _ALLOWED, _NETWORKS) is expected
    assert ip_in_allow_list_per_peer(address, _ALLOWED, _NETWORKS) is expected  # remembered


def test_an_answer_for_one_allow_list_is_not_taken_for_another():
    gunicorn_worker._allow_list_answers.clear()
    assert ip_in_allow_list_per_peer("10.2.3.4", _ALLOWED, _NETWORKS) is True
    other = ["127.0.0.1"]
    assert ip_in_allow_list_per_peer("10.2.3.4", other, [ipaddress.ip_network(other[0])]) is False
    assert ip_in_allow_list_per_peer("10.2.3.4", ["*"], []) is True


def test_remembered_answers_stay_bounded(monkeypatch):
    monkeypatch.setattr(gunicorn_worker, "_ALLOW_LIST_ANSWERS_LIMIT", 16)
    gunicorn_worker._allow_list_answers.clear()
    for n in range(100):
        ip_in_allow_list_per_peer(f"10.0.{n}.1", _ALLOWED, _NETWORKS)
    assert 1 <= len(gunicorn_worker._allow_list_answers) <= 16  # remembered, within the bound


def test_once_installed_gunicorns_request_handling_uses_the_per_request_savings(
    gunicorn_restored, monkeypatch
):
    gunicorn_worker.install_per_request_savings()
    gunicorn_worker._allow_list_answers.clear()
    request = _request(b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-Proto: https\r\n\r\n")
    assert (
        next(iter(gunicorn_worker._allow_list_answers))[0],  # the parser asked, per peer
        request.scheme,  # and believed the trusted peer's header, as gunicorn does
    ) == ("127.0.0.1", "https")
    response, environ = wsgi.create(request, _Recorder(), ("127.0.0.1", 1), ("a", 80), Config())
    assert isinstance(response, HeadWithBodyResponse)
    assert isinstance(environ["wsgi.errors"], ErrorsStreamPerWrite)


def test_wsgi_errors_writes_reach_the_streams_gunicorn_finds(monkeypatch):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    error_log = logging.getLogger("gunicorn.error")
    monkeypatch.setattr(error_log, "handlers", [handler])
    cfg = Config()
    cfg.set("errorlog", "/some/file")
    ours = ErrorsStreamPerWrite(cfg)
    assert ours.streams == gunicorn_worker._GunicornErrorsWrapper(cfg).streams == [stream]
    ours.write("from the application\n")
    assert stream.getvalue() == "from the application\n"
    replaced = io.StringIO()  # a log reopened after the request began is written as it is now
    handler.setStream(replaced)
    ours.write("later\n")
    assert replaced.getvalue() == "later\n"


def test_wsgi_errors_with_errorlog_to_stderr(monkeypatch):
    monkeypatch.setattr(logging.getLogger("gunicorn.error"), "handlers", [])
    cfg = Config()
    cfg.set("errorlog", "-")
    assert ErrorsStreamPerWrite(cfg).streams == [sys.stderr]
