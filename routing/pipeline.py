"""The request's way through the gateway: an ordered list of steps over one request context.

Every proxied request (and every explain dry run) takes the same way::

    loop -> match                                     (ENTRY_STEPS: before a route is known)
    -> [ip rules, CORS preflight]                     (route policies, CONTRACT section 5)
    -> authenticate -> authorize -> limit
    -> [validate, cache lookup, request headers, websocket]   (route policies)
    -> forward
    response side: [response headers, CORS headers, cache store] -> rate-limit headers

The steps after `match` are compiled once per route by `build_steps(route)`: a route without
policies gets the core steps only and pays nothing for the policies it does not have.

The step interface
------------------
A step subclasses `Step`, names itself (`name`; its trace span is `gateway.<name>`) and
overrides one or both hooks:

- `run(ctx) -> HttpResponseBase | None`, the request side. Return None to go on; return a
  response to answer here (the request steps after it are skipped, the response side still
  runs); or raise an error with a status and a code (a `gateway_project.errors.GatewayError`
  subclass), which the view renders once, as problem+json.
- `respond(ctx, response) -> HttpResponseBase`, the response side. It runs on every answer: the
  upstream's, a step's own, and the gateway's errors (then `ctx.error` holds the exception).
  Return the response (changed in place) or a replacement.

A step lists itself in `Steps.request` when it has a `run` and in `Steps.response` when it has a
`respond`; one step object may sit in both (CORS: preflight early, headers late). Both tuples are
in the order the contract gives. Steps hold no per-request state: what a request learns goes on
the `RequestContext`. Each step honours `ctx.dry_run` (explain): it consumes nothing, calls no
upstream, and records its verdict with `ctx.note(...)` (explain prints those lines in order).
The rules themselves live in their own modules as functions of the context (authorization.py,
limits.py, proxy.py; they import `RequestContext` under TYPE_CHECKING only, so this module may
import them); the step classes here are the few lines that call them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from django.http import HttpRequest
from django.http.response import HttpResponseBase

from accounts.identity import Principal
from gateway_project import tracing
from gateway_project.errors import GatewayError, LoopDetected, MethodNotAllowed
from gateway_project.response_headers import set_headers_if_absent
from routing import authorization, limits
from routing.compiled_policies import HeaderRules
from routing.loops import came_back
from routing.policies import apply as policies
from routing.proxy import forward, normalized_path, raw_path
from routing.table import CompiledRoute, route_tables

# The methods the gateway forwards; any other is 405 before any check (TRACE invites XST).
FORWARDED_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


@dataclass(slots=True)
class RequestContext:
    """Everything one request's steps read and learn, from the client's head to the access log."""

    method: str
    raw_path: str  # as the client sent it (percent-escapes intact), without the query
    meta: Mapping[str, Any]  # the WSGI environ (headers as HTTP_*), or explain's stand-in
    query: str = ""
    http_request: HttpRequest | None = None  # None in a dry run: there is no body to forward
    request_id: str = ""
    trace: tracing.TraceContext | None = None
    dry_run: bool = False  # explain: run every check, consume no quota, call no upstream
    # Learned by the steps.
    path: str | None = None  # normalized (match)
    route: CompiledRoute | None = None  # match
    principal: Principal | None = None  # authenticate; None when anonymous
    limit_verdict: str | None = None  # limit: for the access log and rejection metrics
    limit_check: limits.LimitCheck | None = None  # limit: a check forward is to settle
    # Route policies (routing/policies/apply.py).
    preflight: bool = False  # cors: the gateway answered a preflight itself
    cache_key: str | None = None  # cache: a miss's key, for the store on the way back
    cache_hit: bool = False  # cache: the answer is a stored one
    request_header_rules: HeaderRules | None = None  # request_headers: applied by forward
    response_headers: dict[str, str] = field(default_factory=dict)  # added to every answer
    error: Exception | None = None  # the error the gateway answers with, if any
    notes: list[str] = field(default_factory=list)  # each step's verdict (dry run only)
    # Filled in by forward, for the access log, metrics and spans.
    upstream_target: str | None = None
    upstream_seconds: float | None = None
    attempts: int = 0
    request_bytes: int = 0

    def note(self, verdict: str) -> None:
        """Record a step's verdict for explain (a no-op outside a dry run)."""
        if self.dry_run:
            self.notes.append(verdict)


class Step:
    """One stage of a request's way; override `run` (request side) and/or `respond`."""

    name: ClassVar[str] = "step"
    # A client span is the upstream's parent; the observability middleware ends it once the
    # answer is complete, with the upstream's address and attempts.
    client_span: ClassVar[bool] = False

    def run(self, ctx: RequestContext) -> HttpResponseBase | None:
        """Request side: None to go on, a response to answer here, or raise to refuse."""
        return None

    def respond(self, ctx: RequestContext, response: HttpResponseBase) -> HttpResponseBase:
        """Response side: the answer on its way back (errors included)."""
        return response


@dataclass(frozen=True, slots=True)
class Steps:
    """A route's compiled way: its request-side and response-side steps, each in order."""

    request: tuple[Step, ...]
    response: tuple[Step, ...]


class CheckLoop(Step):
    """508 when this gateway's own Via entry came back: first, so a loop costs the least."""

    name = "loop"

    def run(self, ctx: RequestContext) -> None:
        """Refuse a request that already passed through this gateway."""
        if came_back(ctx.meta.get("HTTP_VIA")):
            raise LoopDetected()


class Match(Step):
    """Normalize the path and find the route in the in-memory table (400, 404, 405)."""

    name = "match"

    def run(self, ctx: RequestContext) -> None:
        """Set `ctx.path` and `ctx.route`."""
        ctx.path = normalized_path(ctx.raw_path)
        if ctx.method not in FORWARDED_METHODS:
            raise MethodNotAllowed(f"The gateway does not forward {ctx.method[:16]!r} requests.")
        ctx.route = route_tables.get().match(ctx.method, ctx.path)


class Authenticate(Step):
    """Read the route's credential (JWT, OAuth2 token, API key) into `ctx.principal`; 401."""

    name = "authenticate"

    def run(self, ctx: RequestContext) -> None:
        """Who is calling, unless the route ignores credentials."""
        authorization.authenticate(ctx)


class Authorize(Step):
    """The route's authentication mode, any one of its roles, all of its permissions; 401/403."""

    name = "authorize"

    def run(self, ctx: RequestContext) -> None:
        """Let the caller pass, or refuse."""
        authorization.authorize(ctx)


class Limit(Step):
    """Every rate limit and quota in one store call (429; 503 when the store fails closed).

    `settled_by_forward` (when forward comes next): the check is sent here and its verdict
    taken by forward once the upstream request's headers are built, so that work overlaps
    the store's round trip. Its refusal still comes before any of forward's errors, and before
    anything goes upstream or the client's body is read.
    """

    name = "limit"

    def __init__(self, *, settled_by_forward: bool = False) -> None:
        self.settled_by_forward = settled_by_forward

    def run(self, ctx: RequestContext) -> None:
        """Check (and, unless dry, consume) the limits; their headers go on every answer."""
        if (
            self.settled_by_forward
            and ctx.http_request is not None
            and not ctx.dry_run
            and not _exports_spans(ctx.trace)  # the limit span times the whole check
        ):
            ctx.limit_check = limits.begin_limits(ctx)
        else:
            limits.check_limits(ctx)


class Forward(Step):
    """Send the request upstream and turn its answer into the client's (dry run: neither)."""

    name = "forward"
    client_span = True

    def run(self, ctx: RequestContext) -> HttpResponseBase | None:
        """The upstream's answer."""
        if ctx.dry_run or ctx.http_request is None:
            return None
        check = ctx.limit_check
        if check is None:
            return forward(ctx.http_request, ctx)
        ctx.limit_check = None
        return forward(ctx.http_request, ctx, before_body=lambda: limits.settle_limits(ctx, check))


class RateLimitHeaders(Step):
    """Add what the steps learned (RateLimit-*) to every answer, errors included."""

    name = "respond"

    def respond(self, ctx: RequestContext, response: HttpResponseBase) -> HttpResponseBase:
        """Headers the answer does not carry yet (an error's own Retry-After wins)."""
        set_headers_if_absent(response, ctx.response_headers)
        return response


class IpRulesStep(Step):
    """`ip_allow` / `ip_deny`: 403 ip_forbidden, before authentication."""

    name = "ip_rules"

    def run(self, ctx: RequestContext) -> None:
        """Refuse a client address outside the route's rules."""
        policies.check_ip(ctx)


class Cors(Step):
    """`cors`: preflights answered here (204, no credentials); CORS headers on every answer."""

    name = "cors"

    def run(self, ctx: RequestContext) -> HttpResponseBase | None:
        """The gateway's own answer to a preflight, or None."""
        return policies.answer_preflight(ctx)

    def respond(self, ctx: RequestContext, response: HttpResponseBase) -> HttpResponseBase:
        """Access-Control-Allow-Origin and friends for an allowed origin."""
        return policies.add_cors_headers(ctx, response)


class Validate(Step):
    """`validate`: the request against its OpenAPI operation (400 errors[], 404)."""

    name = "validate"

    def run(self, ctx: RequestContext) -> None:
        """Refuse a request its operation does not allow."""
        policies.validate_request(ctx)


class Cache(Step):
    """`cache`: a stored answer served here (HIT); a fresh one kept on the way back (MISS)."""

    name = "cache"

    def run(self, ctx: RequestContext) -> HttpResponseBase | None:
        """The stored answer, or None."""
        return policies.cache_lookup(ctx)

    def respond(self, ctx: RequestContext, response: HttpResponseBase) -> HttpResponseBase:
        """X-Cache: MISS, and the answer kept when it may be."""
        return policies.cache_store(ctx, response)


class RequestHeaders(Step):
    """`request_headers`: set / remove on the way to the upstream (applied by forward)."""

    name = "request_headers"

    def run(self, ctx: RequestContext) -> None:
        """Hand the rules to forward."""
        policies.take_request_header_rules(ctx)


class ResponseHeaders(Step):
    """`response_headers`: set / remove on the upstream's answers (not the gateway's errors)."""

    name = "response_headers"

    def respond(self, ctx: RequestContext, response: HttpResponseBase) -> HttpResponseBase:
        """Apply the rules."""
        return policies.apply_response_header_rules(ctx, response)


class WebSocket(Step):
    """`websocket`: an upgrade's handshake forwarded; after the 101, bytes relayed both ways."""

    name = "websocket"

    def run(self, ctx: RequestContext) -> HttpResponseBase | None:
        """The upstream's 101 (the relay starts once it is out), or None for plain HTTP."""
        return policies.open_websocket(ctx)


ENTRY_STEPS: tuple[Step, ...] = (CheckLoop(), Match())
_AUTHENTICATE, _AUTHORIZE, _LIMIT, _FORWARD = Authenticate(), Authorize(), Limit(), Forward()
_LIMIT_SETTLED_BY_FORWARD = Limit(settled_by_forward=True)
_RATE_LIMIT_HEADERS = RateLimitHeaders()
_IP_RULES, _CORS, _VALIDATE, _CACHE = IpRulesStep(), Cors(), Validate(), Cache()
_REQUEST_HEADERS, _RESPONSE_HEADERS, _WEBSOCKET = RequestHeaders(), ResponseHeaders(), WebSocket()


def build_steps(route: CompiledRoute) -> Steps:
    """The steps after `match` for one route, in the contract's order (section 5).

    A policy's step is there only when the route has the policy: a route without pays nothing.
    """
    request: list[Step] = []
    if route.ip_rules is not None:
        request.append(_IP_RULES)  # 403 ip_forbidden, before authentication
    if route.cors is not None:
        request.append(_CORS)  # a preflight is answered here: 204, no credentials, not forwarded
    request += [_AUTHENTICATE, _AUTHORIZE]
    limit_at = len(request)
    request.append(_LIMIT)
    if route.validate:
        request.append(_VALIDATE)  # 400 errors[] / 404 operation_not_found, no upstream call
    if route.cache is not None:
        request.append(_CACHE)  # a hit answers here (X-Cache: HIT, Age)
    if route.request_headers is not None:
        request.append(_REQUEST_HEADERS)  # set / remove on the way upstream (by forward)
    if route.websocket:
        request.append(_WEBSOCKET)  # an upgrade's handshake, in forward's place
    request.append(_FORWARD)
    if len(request) == limit_at + 2:  # forward right after limit: it takes the verdict
        request[limit_at] = _LIMIT_SETTLED_BY_FORWARD
    response: list[Step] = []
    if route.response_headers is not None:
        response.append(_RESPONSE_HEADERS)  # the upstream's answers only
    if route.cors is not None:
        response.append(_CORS)  # Access-Control-Allow-Origin and friends, Vary: Origin
    if route.cache is not None:
        response.append(_CACHE)  # X-Cache: MISS; 200 answers to GET/HEAD kept
    response.append(_RATE_LIMIT_HEADERS)
    return Steps(request=tuple(request), response=tuple(response))


# Compiled steps by route identity; the route is kept with them so a recycled id never matches.
_compiled: dict[int, tuple[CompiledRoute, Steps]] = {}
_COMPILED_LIMIT = 4096
_NO_STEPS = Steps(request=(), response=())


def steps_for(route: CompiledRoute) -> Steps:
    """The route's compiled steps (built on first use; a recompiled table gets fresh ones)."""
    entry = _compiled.get(id(route))
    if entry is not None and entry[0] is route:
        return entry[1]
    steps = build_steps(route)
    if len(_compiled) >= _COMPILED_LIMIT:
        _compiled.clear()  # old tables' routes: dropping them all is cheaper than tracking age
    _compiled[id(route)] = (route, steps)
    return steps


def _run_traced(
    step: Step, ctx: RequestContext, trace: tracing.TraceContext
) -> HttpResponseBase | None:
    span = tracing.start_step(trace, f"gateway.{step.name}", client=step.client_span)
    if step.client_span:
        trace.forward_span = span
        return step.run(ctx)
    failed = True
    try:
        answer = step.run(ctx)
        failed = False
        return answer
    finally:
        tracing.end_span(span, error=failed)


def _exports_spans(trace: tracing.TraceContext | None) -> bool:
    """Whether this request's steps each get a span (else no span bookkeeping at all)."""
    return trace is not None and trace.server_span is not None


def _request_side(ctx: RequestContext, steps: tuple[Step, ...]) -> HttpResponseBase | None:
    trace = ctx.trace if _exports_spans(ctx.trace) else None
    for step in steps:
        answer = step.run(ctx) if trace is None else _run_traced(step, ctx, trace)
        if answer is not None:
            return answer
    return None


def handle(
    ctx: RequestContext, *, render_error: Callable[[Exception], HttpResponseBase]
) -> HttpResponseBase:
    """Serve one request: the request side, then the response side on whatever answered."""
    steps = _NO_STEPS
    try:
        answer = _request_side(ctx, ENTRY_STEPS)
        if answer is None and ctx.route is not None:
            steps = steps_for(ctx.route)
            answer = _request_side(ctx, steps.request)
        if answer is None:
            raise RuntimeError("no step answered the request")  # forward always answers
    except Exception as error:
        ctx.error = error
        answer = render_error(error)
        # Answered and logged: the tracebacks' frames hold ctx, which holds the error, so
        # keeping them would leave the request's objects to the cyclic garbage collector.
        _drop_tracebacks(error)
    for step in steps.response:
        answer = step.respond(ctx, answer)
    return answer


def _drop_tracebacks(error: BaseException) -> None:
    """Clear the traceback of `error` and of every exception it was raised from or during."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        each = pending.pop()
        if each is None or id(each) in seen:
            continue
        seen.add(id(each))
        each.__traceback__ = None
        pending += (each.__cause__, each.__context__)


def dry_run(ctx: RequestContext) -> GatewayError | None:
    """Explain: the same steps with nothing consumed; the refusal, or None if it would pass."""
    ctx.dry_run = True
    try:
        _request_side(ctx, ENTRY_STEPS)
        if ctx.route is not None:
            _request_side(ctx, steps_for(ctx.route).request)
    except GatewayError as error:
        ctx.error = error
        return error
    return None


_CONTEXT_KEY = "gateway_context"


def context_for(request: HttpRequest) -> RequestContext:
    """A new context for a proxied Django request, reachable from middleware via context_of."""
    meta = request.META
    raw_uri = meta.get("RAW_URI") or meta.get("REQUEST_URI")
    ctx = RequestContext(
        method=str(request.method),
        raw_path=raw_path(raw_uri, request.path_info),
        meta=meta,
        query=str(meta.get("QUERY_STRING", "")),
        http_request=request,
        # Set by RequestIdMiddleware and ObservabilityMiddleware, when they ran.
        request_id=str(request.__dict__.get("request_id", "")),
        trace=request.__dict__.get("trace"),
    )
    request.__dict__[_CONTEXT_KEY] = ctx
    return ctx


def context_of(request: HttpRequest) -> RequestContext | None:
    """The context of a proxied request (None for the gateway's own pages): for middleware."""
    ctx = request.__dict__.get(_CONTEXT_KEY)
    return ctx if isinstance(ctx, RequestContext) else None
