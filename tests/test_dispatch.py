"""The WSGI callable: proxied requests take the lean handler, the gateway's pages the full one."""

from __future__ import annotations

import gc
import io
import json
import logging
import types

import pytest
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.urls import get_urlconf, re_path
from django.views.decorators.cache import never_cache

from gateway_project.dispatch import GatewayApplication, ProxyWSGIHandler
from gateway_project.net import is_reserved_path
from routing.views import ProxyView

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def application():
    """The WSGI callable wsgi.py serves (built here: importing wsgi.py starts its threads)."""
    from django.core.wsgi import get_wsgi_application

    return GatewayApplication(get_wsgi_application())


@pytest.fixture(autouse=True)
def keep_test_connection():
    """Like Django's test client: the handler must not close the test's database connection."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def _call(application, path: str, host: str = "127.0.0.1") -> tuple[str, dict[str, str], bytes]:
    captured: dict[str, object] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info=None):
        captured["status"], captured["headers"] = status, dict(headers)

    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "RAW_URI": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "HTTP_HOST": host,
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.url_scheme": "http",
        "SERVER_PROTOCOL": "HTTP/1.1",
    }
    result = application(environ, start_response)
    body = b"".join(result)
    result.close()
    return str(captured["status"]), captured["headers"], body  # type: ignore[return-value]


@pytest.mark.parametrize(
    "path, own",
    [
        ("/admin/", True),
        ("/admin", True),
        ("/health", True),
        ("/health/ready", True),
        ("/api/gateway/routes/", True),
        ("/api/docs", True),
        ("/o/token/", True),
        ("/static/admin/css/base.css", True),
        ("/api/v1/rd/tasks", False),
        ("/administrator", False),
        ("/healthz", False),
        ("/oauth/x", False),
    ],
)
def test_gateway_paths_are_told_from_routes_segment_wise(path, own):
    assert is_reserved_path(path) is own


def test_proxied_request_is_served_by_the_lean_handler(application, make_route, upstream):
    make_route("/svc/**", upstream.url)
    status, headers, body = _call(application, "/svc/echo")
    assert status.startswith("200")
    assert json.loads(body)["path"] == "/svc/echo"
    assert headers["X-Request-ID"]
    assert "X-Frame-Options" not in headers


def test_gateway_pages_keep_the_full_stack(application):
    status, headers, _ = _call(application, "/admin/login/")
    assert status.startswith("200")
    assert headers["X-Frame-Options"] == "DENY"


def test_lean_handler_still_refuses_a_host_outside_allowed_hosts(application, make_route, upstream):
    make_route("/svc/**", upstream.url)
    status, headers, _ = _call(application, "/svc/echo", host="evil.example")
    assert status.startswith("400")
    assert headers["Content-Type"] == "application/problem+json"
    assert upstream.count() == 0


def test_unknown_path_is_a_problem_404_from_the_lean_handler(application):
    status, _, body = _call(application, "/nowhere")
    assert status.startswith("404")
    assert json.loads(body)["code"] == "route_not_found"


def test_lean_handler_sends_request_finished_once_and_request_started_never(
    application, make_route, upstream
):
    # request_finished's receivers close stale database connections and caches: the lean
    # handler relies on them running at the end of every proxied request.
    make_route("/svc/**", upstream.url)
    sent: list[str] = []

    def started(**kwargs):
        sent.append("started")

    def finished(**kwargs):
        sent.append("finished")

    request_started.connect(started)
    request_finished.connect(finished)
    try:
        status, _, _ = _call(application, "/svc/echo")
        _call(application, "/nowhere")
    finally:
        request_started.disconnect(started)
        request_finished.disconnect(finished)
    assert status.startswith("200")
    assert sent == ["finished", "finished"]


def test_a_proxied_request_sets_no_urlconf_so_its_end_need_not_reset_one(
    application, make_route, upstream, monkeypatch
):
    # gateway_project/request_end.py skips reset_urlconf for the lean handler on this ground.
    make_route("/svc/**", upstream.url)
    set_to: list[object] = []
    monkeypatch.setattr("django.core.handlers.base.set_urlconf", set_to.append)
    status, _, _ = _call(application, "/svc/echo")
    assert status.startswith("200") and set_to == []
    assert get_urlconf() is None  # nor was one set any other way
    _call(application, "/health/live")  # the full handler does set one
    assert set_to and set_to[0] is not None


def test_lean_handler_names_the_proxy_view_without_resolving(application, monkeypatch):
    # The unmatched-route metric label reads request.resolver_match; the per-request resolver
    # is gone, so the match resolved at start-up must still be there.
    from gateway_project import outcome

    seen = []
    real = outcome.outcome_of

    def spy(request, response, **kwargs):
        seen.append(request.resolver_match.url_name)
        return real(request, response, **kwargs)

    monkeypatch.setattr("gateway_project.observability.outcome_of", spy)
    status, _, _ = _call(application, "/nowhere")
    assert status.startswith("404")
    assert seen == ["proxy"]


@pytest.mark.parametrize(
    "path, status",
    [
        ("/svc/echo", "200"),
        ("/nowhere", "404"),
        ("/private/x", "401"),
        ("/limited/x", "429"),  # the warm-up request takes the one allowed
        ("/down/x", "502"),
        ("/svc/a%00b", "400"),  # a bad path, refused from inside an except block
        ("/sluggish/slow/2000", "504"),
    ],
)
def test_a_served_request_leaves_no_reference_cycles(
    application, make_route, upstream, path, status
):
    # Objects in a cycle outlive their request until the cyclic collector runs; with every
    # request leaving some, it ran every few requests and its full passes stalled the worker.
    from routing.models import Route

    make_route("/svc/**", upstream.url)
    make_route("/private/**", upstream.url, authentication=Route.Authentication.REQUIRED)
    make_route("/limited/**", upstream.url, rate_limit_requests=1, rate_limit_period="hour")
    make_route("/down/**", "http://127.0.0.1:9", service="down")  # discard port: refused
    make_route("/sluggish/**", upstream.url, strip_prefix=True, timeout_ms=50)
    _call(application, path)  # warm: pools, the compiled route table
    gc.collect()
    gc.disable()
    logging.disable(logging.CRITICAL)  # pytest's log capture would keep logged requests alive
    try:
        for _ in range(5):
            answered, _, _ = _call(application, path)
        unreachable = gc.collect()
    finally:
        logging.disable(logging.NOTSET)
        gc.enable()
    assert answered.startswith(status)
    assert unreachable == 0


def _environ(**overrides: object) -> dict[str, object]:
    environ: dict[str, object] = {
        "REQUEST_METHOD": "get",
        "PATH_INFO": "/svc/echo",
        "SCRIPT_NAME": "",
        "QUERY_STRING": "a=1",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "wsgi.input": io.BytesIO(b"body"),
        "wsgi.url_scheme": "http",
    }
    environ.update(overrides)
    return {key: value for key, value in environ.items() if value is not None}


ENVIRONS = [
    {},
    {"PATH_INFO": ""},
    {"PATH_INFO": None},
    {"PATH_INFO": "//double//slash"},
    {"PATH_INFO": "/caf\xc3\xa9"},  # UTF-8 bytes as WSGI's latin-1 text
    {"PATH_INFO": "/broken\xe9utf8"},  # not UTF-8: Django re-percent-encodes it
    {"SCRIPT_NAME": "/prefix/", "PATH_INFO": "/x"},
    {"SCRIPT_URL": "/mounted/x", "PATH_INFO": "/x"},
    {"CONTENT_TYPE": "application/json; charset=latin-1", "CONTENT_LENGTH": "4"},
    {"CONTENT_TYPE": "text/plain; charset=no-such-codec"},
    {"CONTENT_TYPE": ""},
    {"CONTENT_LENGTH": ""},
    {"CONTENT_LENGTH": "abc"},
    {"CONTENT_LENGTH": " 3 "},
    {"CONTENT_LENGTH": "-1"},
    {"REQUEST_METHOD": "PoSt"},
]


@pytest.mark.parametrize("force_script_name", [None, "/forced"])
@pytest.mark.parametrize("overrides", ENVIRONS)
def test_proxy_request_equals_djangos_wsgi_request(settings, overrides, force_script_name):
    from django.core.handlers.wsgi import WSGIRequest, get_script_name

    from gateway_project.dispatch import ProxyRequest

    settings.FORCE_SCRIPT_NAME = force_script_name
    theirs = WSGIRequest(_environ(**overrides))
    environ = _environ(**overrides)
    ours = ProxyRequest(environ, get_script_name(environ))
    mine, django = vars(ours), vars(theirs)
    mine_stream, django_stream = mine.pop("_stream"), django.pop("_stream")
    mine.pop("environ"), django.pop("environ")  # the same dict as META
    assert {**mine, "META": {**mine["META"], "wsgi.input": None}} == {
        **django,
        "META": {**django["META"], "wsgi.input": None},
    }
    assert type(mine_stream) is type(django_stream)
    assert mine_stream.limit == django_stream.limit
    assert (ours.path, ours.path_info, ours.encoding) == (
        theirs.path,
        theirs.path_info,
        theirs.encoding,
    )


def test_a_decorator_on_the_proxy_urlconfs_view_is_not_skipped(settings, make_route, upstream):
    # A decorator someone adds in the proxy URLconf (here never_cache) runs on proxied answers.
    urlconf = types.ModuleType("decorated_proxy_urls")
    urlconf.urlpatterns = [re_path(r"", never_cache(ProxyView.as_view()), name="proxy")]  # type: ignore[attr-defined]
    settings.GATEWAY_PROXY_URLCONF = urlconf
    handler = ProxyWSGIHandler()
    make_route("/svc/**", upstream.url)
    status, headers, _ = _call(handler, "/svc/echo")
    assert status.startswith("200")
    assert "no-store" in headers.get("Cache-Control", ""), headers


def _on_a_new_thread(function, context=None):
    """Run `function` on a thread of its own (in `context`, a copied context, if given)."""
    import threading

    outcome: dict[str, object] = {}

    def run():
        from django.db import connections

        try:
            outcome["value"] = context.run(function) if context is not None else function()
        except BaseException as error:  # re-raised on the test's thread
            outcome["error"] = error
        finally:
            connections.close_all()  # the test database is dropped at the end

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(10)
    if thread.is_alive():
        raise TimeoutError("the thread did not finish in 10 s")
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]


@pytest.fixture
def prefix_sets(monkeypatch):
    """Every call of Django's set_script_prefix made through the lean handler's check."""
    from gateway_project import dispatch

    calls: list[str] = []

    def counted(prefix):
        calls.append(prefix)
        dispatch_set(prefix)

    dispatch_set = dispatch.set_script_prefix
    monkeypatch.setattr(dispatch, "set_script_prefix", counted)
    return calls


def test_the_script_prefix_check_reads_the_installed_asgiref():
    """Without its context variable every request would pay for Django's set again."""
    from gateway_project import dispatch

    assert dispatch._SCRIPT_PREFIX is not None


@pytest.mark.parametrize(
    ("script_names", "sets", "prefixes"),
    [
        (["", ""], [""], ["/", "/"]),
        (["/gw", "/gw", "/gw/", "/gw"], ["/gw"], ["/gw/"] * 4),
        (["/a", "", "/a"], ["/a", "", "/a"], ["/a/", "/", "/a/"]),
    ],
)
def test_the_script_prefix_is_djangos_and_set_only_when_it_changes(
    prefix_sets, script_names, sets, prefixes
):
    from django.urls import get_script_prefix

    from gateway_project.dispatch import set_script_prefix_unless_set

    def serve():
        seen = []
        for name in script_names:
            set_script_prefix_unless_set(name)
            seen.append(get_script_prefix())
        return seen

    assert _on_a_new_thread(serve) == prefixes
    assert prefix_sets == sets


def test_a_prefix_seen_through_another_threads_context_is_set_again(prefix_sets):
    """A context copied from another thread carries that thread's values; asgiref does not
    show them on this one, so the check must not take them for this thread's."""
    import contextvars
    import threading

    from django.urls import get_script_prefix

    from gateway_project.dispatch import set_script_prefix_unless_set

    copied: list[contextvars.Context] = []
    served = threading.Event()

    def set_copy_and_wait():
        set_script_prefix_unless_set("/elsewhere")
        copied.append(contextvars.copy_context())
        # Alive until the other thread is done: a thread ended may hand its id on to the next.
        served.wait(10)

    other = threading.Thread(target=set_copy_and_wait)
    other.start()
    try:
        while not copied and other.is_alive():
            other.join(0.01)

        def serve():
            set_script_prefix_unless_set("/elsewhere")
            return get_script_prefix()

        assert _on_a_new_thread(serve, context=copied[0]) == "/elsewhere/"
    finally:
        served.set()
        other.join(10)
    assert prefix_sets == ["/elsewhere", "/elsewhere"]


def test_without_asgiref_s_variable_the_prefix_is_always_set(prefix_sets, monkeypatch):
    from django.urls import get_script_prefix

    from gateway_project import dispatch

    monkeypatch.setattr(dispatch, "_SCRIPT_PREFIX", None)

    def serve():
        for _ in range(3):
            dispatch.set_script_prefix_unless_set("/gw")
        return get_script_prefix()

    assert _on_a_new_thread(serve) == "/gw/"
    assert prefix_sets == ["/gw"] * 3


def test_a_proxied_request_leaves_the_prefix_djangos_handler_would(application, settings):
    from django.urls import get_script_prefix

    settings.FORCE_SCRIPT_NAME = "/mounted"

    def serve():
        _call(application, "/no/such/route")
        return get_script_prefix()

    assert _on_a_new_thread(serve) == "/mounted/"


def test_a_prefix_set_by_django_or_cleared_is_seen_by_the_check(prefix_sets):
    """The full handler sets the prefix with Django's own call on the same threads, and
    clear_script_prefix() removes it: the check must see both."""
    from django.urls import clear_script_prefix, get_script_prefix, set_script_prefix

    from gateway_project.dispatch import set_script_prefix_unless_set

    def serve():
        seen = []
        set_script_prefix("/full")  # as Django's full handler does
        set_script_prefix_unless_set("/full")
        seen.append(get_script_prefix())
        set_script_prefix_unless_set("")
        seen.append(get_script_prefix())
        clear_script_prefix()
        set_script_prefix_unless_set("")
        seen.append(get_script_prefix())
        return seen

    assert _on_a_new_thread(serve) == ["/full/", "/", "/"]
    assert prefix_sets == ["", ""]


def test_a_replaced_prefix_local_is_always_set(prefix_sets, monkeypatch):
    """Were Django's Local of script prefixes replaced, the variable found at import would be
    another's: the check must not read it."""
    from asgiref.local import Local
    from django.urls import base as urls_base
    from django.urls import get_script_prefix

    from gateway_project.dispatch import set_script_prefix_unless_set

    def serve():
        set_script_prefix_unless_set("/gw")
        monkeypatch.setattr(urls_base, "_prefixes", Local())
        set_script_prefix_unless_set("/gw")
        return get_script_prefix()

    assert _on_a_new_thread(serve) == "/gw/"
    assert prefix_sets == ["/gw", "/gw"]
