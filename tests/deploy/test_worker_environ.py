"""The worker's WSGI environ (wsgi_create_inlined) is gunicorn's wsgi.create(), key for key.

Both build an environ for the same parsed request, peer and listener address; the items are
compared in order (the environ's own order included), per-request objects by what they are
and do (the errors stream, the early hints callback, the response), and the bytes each wrote
to the client (100 Continue, early hints). A few thousand random heads cover header names
and values, repeats, SCRIPT_NAME from the header and the environment, Expect, forwarded
schemes, every header_map, both parsers, IPv4, IPv6 and unix peers and listeners.
"""

from __future__ import annotations

import inspect
import os
import random
import socket
import types
from typing import Any

import pytest
from gunicorn.config import Config
from gunicorn.http import wsgi
from gunicorn.http.errors import ConfigurationProblem, ParseException
from gunicorn.http.parser import RequestParser

from gateway_project import gunicorn_worker
from gateway_project.gunicorn_worker import wsgi_create_inlined

STOCK = gunicorn_worker._gunicorn_wsgi_create


class _Client:
    """A client socket that records what is written to it."""

    def __init__(self) -> None:
        self.sent = b""

    def send(self, data: bytes) -> int:
        self.sent += bytes(data)
        return len(data)

    def sendall(self, data: bytes) -> None:
        self.sent += bytes(data)


def _config(**settings: Any) -> Config:
    cfg = Config()
    for name, value in settings.items():
        cfg.set(name, value)
    return cfg


def _parse(raw: bytes, cfg: Config, peer: Any) -> Any:
    ours, other = socket.socketpair()
    other.sendall(raw)
    other.close()
    try:
        return next(RequestParser(cfg, ours, peer))
    finally:
        ours.close()


def _what_it_is(value: Any, client: _Client, resp: Any) -> Any:
    """An environ value, or a response attribute, as something comparable across two calls."""
    if value is client:
        return "<the client socket>"
    if value is resp:
        return "<the response>"
    if isinstance(value, wsgi.WSGIErrorsWrapper):
        return ("errors stream", type(value), value.streams)
    return value


def _outcome(create: Any, req: Any, client_addr: Any, server: Any, cfg: Config) -> Any:
    """What create() gives for a request: its environ, response and writes, or its error."""
    client = _Client()
    try:
        resp, environ = create(req, client, client_addr, server, cfg)
    except Exception as error:  # the type and message are compared
        return ("raised", type(error), str(error), client.sent)
    hints = environ.pop("wsgi.early_hints")
    items = [(key, _what_it_is(value, client, resp)) for key, value in environ.items()]
    response = {key: _what_it_is(value, client, resp) for key, value in vars(resp).items()}
    before_hints = client.sent
    try:
        hints([("Link", "</style.css>; rel=preload; as=style"), (b"X-Bytes", b"v")])
        hinted: Any = client.sent
    except Exception as error:
        hinted = ("hints raised", type(error), str(error))
    return ("built", type(resp), response, items, before_hints, hinted)


def _assert_same(req: Any, client_addr: Any, server: Any, cfg: Config) -> Any:
    stock = _outcome(STOCK, req, client_addr, server, cfg)
    assert _outcome(wsgi_create_inlined, req, client_addr, server, cfg) == stock
    return stock


_METHODS = ["GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH"]
_SEGMENTS = [
    "app", "apple", "x", "a%20b", "%2F", "caf%C3%A9", "%E9", "%", "100%25", "+", ";p=1",
    "~user", "", "a.b", "..", "%41",
]  # fmt: skip
_QUERIES = ["", "?a=1", "?a=1&b=%20x", "?", "?q=caf%C3%A9#frag", "#only"]
_PEERS: list[Any] = [
    ("127.0.0.1", 40000),
    ("10.1.2.3", 5),
    ("::1", 40000, 0, 0),
    ("2001:db8::1", 1, 0, 0),
    "",
    b"",
    "unix-peer",
]
_SERVERS: list[Any] = [
    ("127.0.0.1", 8000),
    ("::", 8443, 0, 0),
    "/run/gateway.sock",  # a unix listener: SERVER_* from Host
    "unix:/run/gateway.sock",
    "localhost:8000",
]
_VALUES = ["v", "", "a, b", " padded \t", "caf\xe9", "x" * 300, "1", "https", "on", "\t"]
_HEADERS = [
    "Host", "User-Agent", "Accept", "Accept", "Cookie", "Authorization", "X-Request-Id",
    "Content-Type", "Content-Length", "SCRIPT_NAME", "Script-Name", "X_Forwarded_For",
    "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Ssl", "Expect", "x-lower", "Via",
    "Forwarded", "HTTP_X", "Remote-Addr", "Path-Info", "Wsgi-Input",
]  # fmt: skip


def _random_head(rng: random.Random) -> bytes:
    path = "/" + "/".join(rng.choice(_SEGMENTS) for _ in range(rng.randint(0, 4)))
    if rng.random() < 0.1:
        path = "http://example.test" + path  # absolute form
    target = path + rng.choice(_QUERIES)
    lines = [f"{rng.choice(_METHODS)} {target} HTTP/1.{rng.choice('011')}"]
    for _ in range(rng.randint(0, 8)):
        name = rng.choice(_HEADERS)
        if name == "Content-Length":
            value = str(rng.choice([0, 0, 5, 12]))
        elif name == "Expect":
            value = rng.choice(["100-continue", "100-Continue"])
        elif name in ("SCRIPT_NAME", "Script-Name"):
            value = rng.choice(["/app", "/app/x", "/apple", "", "/caf%C3%A9"])
        elif name == "Host":
            value = rng.choice(["example.test", "example.test:8080", "[::1]:81", "h:"])
        else:
            value = rng.choice(_VALUES)
        lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


@pytest.mark.parametrize("seed", range(4))
def test_random_requests_get_gunicorns_environ(seed, monkeypatch):
    rng = random.Random(seed)
    compared = errors = 0
    for _ in range(1000):
        raw = _random_head(rng)
        cfg = _config(
            header_map=rng.choice(["drop", "refuse", "dangerous"]),
            http_parser=rng.choice(["python", "fast"]),
            workers=rng.choice([1, 4]),
            forwarded_allow_ips=rng.choice(["127.0.0.1,::1", "*", "10.0.0.0/8"]),
            secure_scheme_headers=rng.choice(
                [{"X-FORWARDED-PROTO": "https"}, {"X-FORWARDED-SSL": "on"}, {}]
            ),
        )
        if rng.random() < 0.5:
            gunicorn_worker.settings_as_attributes(cfg)  # as in the worker
        script_name = rng.choice([None, None, "", "/app", "/apple"])
        if script_name is None:
            monkeypatch.delenv("SCRIPT_NAME", raising=False)
        else:
            monkeypatch.setenv("SCRIPT_NAME", script_name)
        peer = rng.choice(_PEERS)
        try:
            req = _parse(raw, cfg, peer)
        except (ParseException, StopIteration):
            continue  # the parser's refusal: not create()'s business
        outcome = _assert_same(req, peer, rng.choice(_SERVERS), cfg)
        compared += 1
        errors += outcome[0] == "raised"
    # Enough of both: built environs, and ConfigurationProblem for paths outside SCRIPT_NAME.
    assert compared > 500
    assert 20 < errors < compared / 2


@pytest.mark.parametrize(
    ("head", "server", "env_script_name"),
    [
        (b"GET /app/x HTTP/1.1\r\nHost: h\r\nSCRIPT_NAME: /app\r\n\r\n", ("h", 80), None),
        (b"GET /app/x HTTP/1.1\r\nHost: h\r\nSCRIPT_NAME: /other\r\n\r\n", ("h", 80), "/app"),
        (b"GET /app/x HTTP/1.1\r\nHost: h\r\n\r\n", ("h", 80), "/app"),
        (b"GET /apple HTTP/1.1\r\nHost: h\r\n\r\n", ("h", 80), "/app"),  # a prefix, not a segment
        (b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n", ("h", 80), "/app"),  # ConfigurationProblem
        (b"GET /caf%C3%A9/%2F%zz HTTP/1.1\r\nHost: h\r\n\r\n", ("h", 80), None),
        (b"GET / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n\r\n", ("h", 80), None),
        (b"GET / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n", ("h", 80), None),  # ignored in 1.0
        (b"GET / HTTP/1.1\r\nHost: h:81\r\n\r\n", "/run/gateway.sock", None),
        (b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", "/run/gateway.sock", None),
        (b"GET / HTTP/1.0\r\n\r\n", "/run/gateway.sock", None),
        (b"GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-Proto: https\r\n\r\n", "/run/g.sock", None),
        (
            b"GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nA: 2\r\nB: x\r\nA: 3\r\nB: \r\n\r\n",
            ("h", 1),
            None,
        ),
        (
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Type: a/b\r\nContent-Length: 0\r\n\r\n",
            ("h", 1),
            None,
        ),
    ],
)
def test_each_case_of_gunicorns_create(head, server, env_script_name, monkeypatch):
    if env_script_name is None:
        monkeypatch.delenv("SCRIPT_NAME", raising=False)
    else:
        monkeypatch.setenv("SCRIPT_NAME", env_script_name)
    cfg = _config(header_map="dangerous")
    for peer in _PEERS:
        _assert_same(_parse(head, cfg, peer), peer, server, cfg)


def test_the_environment_variable_is_read_per_request_as_gunicorn_does(monkeypatch):
    cfg = _config()
    req = _parse(b"GET /app/x HTTP/1.1\r\nHost: h\r\n\r\n", cfg, ("127.0.0.1", 1))
    seen = []
    for value in (None, "/app", "", "/app/x", None):
        if value is None:
            monkeypatch.delenv("SCRIPT_NAME", raising=False)
        else:
            monkeypatch.setenv("SCRIPT_NAME", value)
        _assert_same(req, ("127.0.0.1", 1), ("h", 80), cfg)
        _, environ = wsgi_create_inlined(req, _Client(), ("127.0.0.1", 1), ("h", 80), cfg)
        seen.append((environ["SCRIPT_NAME"], environ["PATH_INFO"]))
    assert seen == [
        ("", "/app/x"),
        ("/app", "/x"),
        ("", "/app/x"),
        ("/app/x", ""),
        ("", "/app/x"),
    ]


def test_a_request_over_the_proxy_protocol_gets_its_addresses(monkeypatch):
    monkeypatch.delenv("SCRIPT_NAME", raising=False)
    cfg = _config(proxy_protocol="v1", proxy_allow_ips="*")
    head = b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n"
    req = _parse(head, cfg, ("127.0.0.1", 1))
    assert req.proxy_protocol_info
    _assert_same(req, ("127.0.0.1", 1), ("h", 80), cfg)


def _fake_request(**changes: Any) -> Any:
    """A request as gunicorn's parser leaves it, with `changes` (shapes no parser produces)."""
    fields = {
        "version": (1, 1),
        "body": None,
        "method": "GET",
        "query": "",
        "uri": "/p",
        "path": "/p",
        "headers": [("HOST", "h")],
        "scheme": "http",
        "proxy_protocol_info": None,
        "_expected_100_continue": False,
        "should_close": lambda: False,
    }
    fields.update(changes)
    return types.SimpleNamespace(**fields)


@pytest.mark.parametrize(
    "changes",
    [
        {"version": [1, 1]},  # not a tuple
        {"version": (1, 1, 0)},  # not a pair
        {"version": (2,)},
        {"version": None},  # TypeError in both
        {"version": (True, 1)},  # str() of each element
        {"path": None},  # AttributeError in both
        {"path": ""},
        {"path": "/caf\xe9"},  # not ASCII: unquoted as gunicorn does
        {"scheme": "ws", "headers": [("HOST", "h")]},  # neither http nor https: no port
        {"priority_weight": 16, "priority_depends_on": 3},  # an HTTP/2 request
        {"proxy_protocol_info": {}},
    ],
)
@pytest.mark.parametrize("server", [("h", 80), "/run/g.sock", ["h", 80]])
@pytest.mark.parametrize("client_addr", [("127.0.0.1", 1), ["127.0.0.1", 1], None, 5, b"\xff"])
def test_unusual_shapes_take_gunicorns_own_path(changes, server, client_addr, monkeypatch):
    monkeypatch.delenv("SCRIPT_NAME", raising=False)
    req = _fake_request(**changes)
    _assert_same(req, client_addr, server, _config())


class _OtherResponse(wsgi.Response):
    def __init__(self, req: Any, sock: Any, cfg: Any, extra: Any) -> None:
        super().__init__(req, sock, cfg)
        self.extra = extra


def test_a_response_class_and_its_arguments_are_used_as_gunicorn_uses_them(monkeypatch):
    monkeypatch.delenv("SCRIPT_NAME", raising=False)
    cfg = _config()
    req = _parse(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", cfg, ("127.0.0.1", 1))
    for create in (STOCK, wsgi_create_inlined):
        resp, _ = create(req, _Client(), ("127.0.0.1", 1), ("h", 80), cfg, _OtherResponse, (7,))
        assert type(resp) is _OtherResponse and resp.extra == 7


def test_a_replaced_os_environ_is_read_as_gunicorn_reads_it(monkeypatch):
    cfg = _config()
    req = _parse(b"GET /app/x HTTP/1.1\r\nHost: h\r\n\r\n", cfg, ("127.0.0.1", 1))
    monkeypatch.setattr(os, "environ", {"SCRIPT_NAME": "/app"})
    stock = _assert_same(req, ("127.0.0.1", 1), ("h", 80), cfg)
    assert ("SCRIPT_NAME", "/app") in stock[3]


def test_the_copied_code_is_the_installed_gunicorns():
    # Fails after a gunicorn upgrade: compare wsgi_create_inlined with the new create() (and
    # the functions it inlines), then update the digests in WSGI_CREATE_COPIED_FROM.
    assert gunicorn_worker.wsgi_create_copied_code_unchanged()


def test_the_worker_installs_it_and_keeps_gunicorns_when_gunicorn_changed(
    gunicorn_restored, monkeypatch
):
    gunicorn_worker.install_per_request_savings()
    assert wsgi.create is wsgi_create_inlined
    monkeypatch.setattr(wsgi, "create", STOCK)
    changed = ((STOCK, "0" * 16), *gunicorn_worker.WSGI_CREATE_COPIED_FROM[1:])
    monkeypatch.setattr(gunicorn_worker, "WSGI_CREATE_COPIED_FROM", changed)
    gunicorn_worker.install_per_request_savings()
    assert wsgi.create is STOCK


def test_a_path_outside_script_name_is_gunicorns_configuration_problem(monkeypatch):
    monkeypatch.setenv("SCRIPT_NAME", "/app")
    cfg = _config()
    req = _parse(b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n", cfg, ("127.0.0.1", 1))
    for create in (STOCK, wsgi_create_inlined):
        with pytest.raises(ConfigurationProblem):
            create(req, _Client(), ("127.0.0.1", 1), ("h", 80), cfg)


STOCK = gunicorn_worker._gunicorn_wsgi_create


def test_gunicorn_without_its_source_files_keeps_its_create_and_the_worker_starts(
    gunicorn_restored, monkeypatch
):
    # An image that ships gunicorn as .pyc only: inspect.getsource raises OSError.
    monkeypatch.setattr(wsgi, "create", STOCK)

    def no_source(_function):
        raise OSError("could not get source code")

    monkeypatch.setattr(inspect, "getsource", no_source)
    gunicorn_worker.install_per_request_savings()  # must not raise: the worker would not boot
    assert wsgi.create is STOCK


def test_a_create_someone_else_wrapped_is_left_in_place(gunicorn_restored, monkeypatch):
    # A post_fork hook or an instrumentation library wrapping gunicorn's create() before the
    # worker's init_process: the copy must not silently replace (and drop) the wrapper.

    def instrumented_create(*args, **kwargs):
        return STOCK(*args, **kwargs)

    monkeypatch.setattr(wsgi, "create", instrumented_create)
    gunicorn_worker.install_per_request_savings()
    assert wsgi.create is instrumented_create
