"""The request pipeline itself: step order, short circuits, errors, dry runs and spans."""

from __future__ import annotations

from typing import Any

import pytest
from django.http import HttpResponse
from django.http.response import HttpResponseBase
from django.test import RequestFactory

from gateway_project import tracing
from gateway_project.errors import GatewayError, RouteNotFound
from routing import pipeline
from routing.pipeline import RequestContext, Step, Steps
from routing.table import route_tables

pytestmark = pytest.mark.django_db


def _context(path: str = "/p/echo", method: str = "GET", **meta: str) -> RequestContext:
    return RequestContext(method=method, raw_path=path, meta={"REMOTE_ADDR": "127.0.0.1", **meta})


def _names(steps: tuple[Step, ...]) -> list[str]:
    return [step.name for step in steps]


def _problem(error: Exception) -> HttpResponseBase:
    status = error.status_code if isinstance(error, GatewayError) else 500
    return HttpResponse(type(error).__name__, status=status)


class Recorder(Step):
    """Records that it ran, and answers when told to."""

    def __init__(self, name: str, log: list[str], answer: HttpResponseBase | None = None):
        self.name = name  # type: ignore[misc] # a per-instance name, for the test only
        self.log = log
        self.answer = answer

    def run(self, ctx: RequestContext) -> HttpResponseBase | None:
        self.log.append(f"run {self.name}")
        return self.answer

    def respond(self, ctx: RequestContext, response: HttpResponseBase) -> HttpResponseBase:
        self.log.append(f"respond {self.name}")
        response[f"X-{self.name}"] = "seen"
        return response


@pytest.fixture
def route(make_route, upstream):
    return make_route("/p/**", upstream.url, rate_limit_requests=1)


def test_the_core_steps_follow_the_contracts_order(route):
    compiled = route_tables.get().match("GET", "/p/echo")
    steps = pipeline.build_steps(compiled)
    assert _names(pipeline.ENTRY_STEPS) == ["loop", "match"]
    assert _names(steps.request) == ["authenticate", "authorize", "limit", "forward"]
    assert _names(steps.response) == ["respond"]


def test_steps_are_compiled_once_per_route_and_afresh_for_a_recompiled_table(route, monkeypatch):
    built: list[Any] = []
    build = pipeline.build_steps

    def counting_build(compiled: Any) -> Steps:
        built.append(compiled)
        return build(compiled)

    monkeypatch.setattr(pipeline, "build_steps", counting_build)
    first = route_tables.get().match("GET", "/p/echo")
    assert pipeline.steps_for(first) is pipeline.steps_for(first)
    assert built == [first]

    route_tables.reset()
    again = route_tables.get().match("GET", "/p/echo")
    pipeline.steps_for(again)
    assert again is not first and built == [first, again]


def test_steps_run_in_order_then_the_response_side_on_the_answer(route, monkeypatch):
    log: list[str] = []
    answer = HttpResponse("from a step")
    steps = Steps(
        request=(Recorder("a", log), Recorder("b", log, answer)),
        response=(Recorder("c", log), Recorder("d", log)),
    )
    monkeypatch.setattr(pipeline, "build_steps", lambda route: steps)

    response = pipeline.handle(_context(), render_error=_problem)

    assert response is answer
    assert log == ["run a", "run b", "respond c", "respond d"]
    assert response["X-c"] == response["X-d"] == "seen"


def test_a_step_that_answers_skips_every_later_request_step(route, upstream, monkeypatch):
    log: list[str] = []
    steps = Steps(
        request=(Recorder("early", log, HttpResponse(status=204)), Recorder("late", log)),
        response=(),
    )
    monkeypatch.setattr(pipeline, "build_steps", lambda route: steps)

    response = pipeline.handle(_context(), render_error=_problem)

    assert response.status_code == 204
    assert log == ["run early"]
    assert upstream.received == []


def test_an_error_is_rendered_once_and_the_response_side_still_runs(route, monkeypatch):
    log: list[str] = []

    class Refuse(Step):
        name = "refuse"

        def run(self, ctx: RequestContext) -> None:
            raise RouteNotFound()

    steps = Steps(request=(Refuse(), Recorder("never", log)), response=(Recorder("after", log),))
    monkeypatch.setattr(pipeline, "build_steps", lambda route: steps)
    rendered: list[Exception] = []

    def render(error: Exception) -> HttpResponseBase:
        rendered.append(error)
        return _problem(error)

    context = _context()
    response = pipeline.handle(context, render_error=render)

    assert response.status_code == 404
    assert len(rendered) == 1 and isinstance(context.error, RouteNotFound)
    assert log == ["respond after"]


def test_rate_limit_headers_reach_an_answer_that_a_step_made(route, monkeypatch):
    steps = pipeline.build_steps(route_tables.get().match("GET", "/p/echo"))
    short = Steps(
        request=(*steps.request[:-1], Recorder("answer", [], HttpResponse())),
        response=steps.response,
    )
    monkeypatch.setattr(pipeline, "build_steps", lambda route: short)

    response = pipeline.handle(_context(), render_error=_problem)

    assert response["RateLimit-Limit"] == "1"


def test_a_dry_run_consumes_no_quota_and_calls_no_upstream(route, upstream):
    for _ in range(3):
        context = _context()
        assert pipeline.dry_run(context) is None
        assert any(note.startswith("limits: rate") for note in context.notes)
    assert upstream.received == []

    request = RequestFactory().get("/p/echo")
    real = pipeline.context_for(request)
    assert pipeline.handle(real, render_error=_problem).status_code == 200  # quota untouched
    assert len(upstream.received) == 1


def test_a_dry_run_reports_the_refusal_and_the_steps_verdicts(make_route, upstream):
    make_route("/locked/**", upstream.url, authentication="required")
    context = _context("/locked/x")

    refusal = pipeline.dry_run(context)

    assert refusal is not None and refusal.status_code == 401
    assert context.notes == ["auth: no credentials -> 401"]


def test_outside_a_dry_run_no_verdict_is_recorded(route):
    context = _context()
    context.note("anything")
    assert context.notes == []


def test_a_method_the_gateway_does_not_forward_is_405_before_any_check(route):
    context = _context(method="TRACE")
    refusal = pipeline.dry_run(context)
    assert refusal is not None and refusal.status_code == 405
    assert context.route is None


def test_a_request_carrying_our_own_via_entry_is_508_before_matching(route):
    from routing.loops import via_name

    context = _context(HTTP_VIA=f"1.1 {via_name()}")
    refusal = pipeline.dry_run(context)
    assert refusal is not None and refusal.status_code == 508
    assert context.path is None


class _FakeSpan:
    def __init__(self, name: str, client: bool):
        self.name, self.client = name, client


def test_each_step_gets_a_span_named_after_it_and_forward_a_client_span(
    route, monkeypatch, upstream
):
    started: list[_FakeSpan] = []
    ended: list[tuple[str, bool]] = []

    def start_step(trace: Any, name: str, *, client: bool = False) -> _FakeSpan:
        started.append(_FakeSpan(name, client))
        return started[-1]

    def end_span(span: Any, attributes: Any = None, error: bool = False) -> None:
        ended.append((span.name, error))

    monkeypatch.setattr(tracing, "start_step", start_step)
    monkeypatch.setattr(tracing, "end_span", end_span)
    request = RequestFactory().get("/p/echo")
    context = pipeline.context_for(request)
    context.trace = tracing.TraceContext("a" * 32, None, "01")
    context.trace.server_span = object()  # exporting

    assert pipeline.handle(context, render_error=_problem).status_code == 200

    assert [(span.name, span.client) for span in started] == [
        ("gateway.loop", False),
        ("gateway.match", False),
        ("gateway.authenticate", False),
        ("gateway.authorize", False),
        ("gateway.limit", False),
        ("gateway.forward", True),
    ]
    # The forward span stays open: the observability middleware ends it after the body.
    assert context.trace.forward_span is started[-1]
    assert ended == [(span.name, False) for span in started[:-1]]


def test_a_failing_step_ends_its_span_as_an_error(route, monkeypatch):
    ended: list[tuple[str, bool]] = []
    monkeypatch.setattr(tracing, "start_step", lambda trace, name, client=False: name)
    monkeypatch.setattr(
        tracing, "end_span", lambda span, attributes=None, error=False: ended.append((span, error))
    )
    context = _context("/nowhere")
    context.trace = tracing.TraceContext("a" * 32, None, "01")
    context.trace.server_span = object()

    assert pipeline.handle(context, render_error=_problem).status_code == 404
    assert ended == [("gateway.loop", False), ("gateway.match", True)]


def test_context_of_finds_the_context_of_a_proxied_request_only():
    factory = RequestFactory()
    proxied = factory.get("/p/echo")
    context = pipeline.context_for(proxied)
    assert pipeline.context_of(proxied) is context
    assert pipeline.context_of(factory.get("/admin/")) is None


def test_rate_limit_headers_never_replace_an_answers_own_whatever_its_case():
    context = _context()
    context.response_headers = {"Retry-After": "7", "RateLimit-Limit": "10", "X-New": "1"}
    answer = HttpResponse()
    answer["retry-after"] = "30"  # the error's own, set in another case
    answer["RATELIMIT-LIMIT"] = "5"

    response = pipeline.RateLimitHeaders().respond(context, answer)

    assert response["Retry-After"] == "30"
    assert response["RateLimit-Limit"] == "5"
    assert response["X-New"] == "1"
    assert sorted(response.items()) == sorted(
        [
            ("Content-Type", "text/html; charset=utf-8"),
            ("retry-after", "30"),
            ("RATELIMIT-LIMIT", "5"),
            ("X-New", "1"),
        ]
    )
