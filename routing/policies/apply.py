"""Route policies as functions of the request context: what the pipeline's policy steps call.

Each function reads the route's compiled policy (routing.compiled_policies, on CompiledRoute)
and the context, honours `ctx.dry_run` (explain: nothing consumed, no upstream called) and
records its verdict with `ctx.note(...)`.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from django.http import HttpResponse
from django.http.response import HttpResponseBase

from gateway_project import metrics
from gateway_project.errors import IpForbidden, OperationNotFound, RequestInvalid
from gateway_project.metrics import route_labels
from gateway_project.net import request_client_address
from routing.policies import cache, cors, headers, ip, websocket
from routing.proxy import BufferedProxiedResponse, request_body, upstream_request
from routing.table import CompiledRoute, route_tables

if TYPE_CHECKING:
    from routing.pipeline import RequestContext


class MetaHeaders(Mapping[str, str]):
    """A WSGI environ's request headers by lower-case name (read lazily, nothing copied)."""

    def __init__(self, meta: Mapping[str, Any]) -> None:
        self._meta = meta

    @staticmethod
    def _key(name: str) -> str:
        if name == "content-type":
            return "CONTENT_TYPE"
        return "HTTP_" + name.upper().replace("-", "_")

    def __getitem__(self, name: str) -> str:
        value = self._meta.get(self._key(name.lower()))
        if value is None:
            raise KeyError(name)
        return str(value)

    def __iter__(self) -> Iterator[str]:
        for key in self._meta:
            if key.startswith("HTTP_"):
                yield key[5:].replace("_", "-").lower()
            elif key == "CONTENT_TYPE":
                yield "content-type"

    def __len__(self) -> int:
        return sum(1 for _ in self)


def _route(ctx: RequestContext) -> CompiledRoute:
    route = ctx.route
    assert route is not None  # policy steps run after match
    return route


# --- ip_allow / ip_deny ----------------------------------------------------------------------


def check_ip(ctx: RequestContext) -> None:
    """403 ip_forbidden unless the client address passes the route's IP rules."""
    route = _route(ctx)
    rules = route.ip_rules
    assert rules is not None
    address = request_client_address(ctx.meta)
    if ip.permits(rules, address):
        ctx.note(f"ip rules:   {address} passes ({ip.describe(rules)})")
        return
    ctx.note(f"ip rules:   {address[:64]} refused ({ip.describe(rules)})")
    if not ctx.dry_run:
        metrics.count_ip_rejection(route_labels(route)[0])
    raise IpForbidden()


# --- CORS --------------------------------------------------------------------------------------


def answer_preflight(ctx: RequestContext) -> HttpResponseBase | None:
    """A CORS preflight answered here (204, never forwarded, no credentials needed)."""
    policy = _route(ctx).cors
    assert policy is not None
    meta = ctx.meta
    origin = meta.get("HTTP_ORIGIN")
    if not cors.is_preflight(ctx.method, origin, meta.get("HTTP_ACCESS_CONTROL_REQUEST_METHOD")):
        return None
    answer = cors.preflight_headers(policy, origin, meta.get("HTTP_ACCESS_CONTROL_REQUEST_HEADERS"))
    ctx.preflight = True
    ctx.note(
        "cors:       preflight answered 204 by the gateway, origin "
        + ("allowed" if answer else "not allowed (no CORS headers)")
    )
    response = HttpResponse(status=cors.PREFLIGHT_STATUS)
    del response["Content-Type"]
    for name, value in answer.items():
        response[name] = value
    return response


def add_cors_headers(ctx: RequestContext, response: HttpResponseBase) -> HttpResponseBase:
    """Access-Control-Allow-Origin and friends on every answer to an allowed origin."""
    if ctx.preflight:
        return response  # a preflight has its own
    # A stored answer too: it was kept without them, and this request's Origin decides.
    policy = _route(ctx).cors
    assert policy is not None
    cors.add_to_response(response, cors.response_headers(policy, ctx.meta.get("HTTP_ORIGIN")))
    return response


# --- validate ----------------------------------------------------------------------------------


def _buffer_body(ctx: RequestContext) -> bytes | None:
    """The request body, read whole (bounded by GATEWAY_MAX_BODY_SIZE) and put back for forward."""
    request = ctx.http_request
    if request is None:
        return None
    body, _, _ = request_body(request)
    if body is None:
        return None
    data = body if isinstance(body, bytes) else body.read()
    meta = request.META
    meta["wsgi.input"] = io.BytesIO(data)
    meta["CONTENT_LENGTH"] = str(len(data))
    meta.pop("HTTP_TRANSFER_ENCODING", None)
    return data


def validate_request(ctx: RequestContext) -> None:
    """400 with errors[] / 404 operation_not_found unless the request fits its operation."""
    # Imported here, not at the top: openapi-core (with jsonschema and werkzeug) then loads only
    # in a worker that validates. Loaded at start, it cost every request of a route WITHOUT
    # policies about 180,000 more instructions (+10%, callgrind), most likely the garbage
    # collector walking the larger heap.
    from routing.policies.validate import validators

    route = _route(ctx)
    validator = validators.validator(route.service.name, route_tables.get().version)
    body = None if ctx.dry_run else _buffer_body(ctx)
    try:
        validator.check(
            method=ctx.method,
            path=str(ctx.path),
            query=ctx.query,
            headers=MetaHeaders(ctx.meta),
            content_type=str(ctx.meta.get("CONTENT_TYPE", "")),
            body=body,
            check_body=not ctx.dry_run,
        )
    except (RequestInvalid, OperationNotFound) as refusal:
        ctx.note(f"validate:   refused ({refusal.default_code})")
        if not ctx.dry_run:
            metrics.count_validation_rejection(route_labels(route)[0])
        raise
    ctx.note(
        "validate:   parameters match the operation (the body is checked when sent)"
        if ctx.dry_run
        else "validate:   the request matches its operation"
    )


# --- cache -------------------------------------------------------------------------------------


def _consumer_key(ctx: RequestContext) -> str | None:
    """The consumer as the upstream learns it (X-Consumer-*): who, and with which rights.

    Two tokens of one user with other roles or permissions are two consumers: the upstream may
    answer by them, so the one with fewer rights must not get the other's stored answer.
    """
    principal = ctx.principal
    if principal is None:
        return None
    return "\x00".join(
        (
            principal.kind,
            principal.id,
            principal.username,
            ",".join(sorted(principal.roles)),
            ",".join(sorted(principal.permissions)),
        )
    )


def _has_body(meta: Mapping[str, Any]) -> bool:
    return bool(meta.get("HTTP_TRANSFER_ENCODING")) or str(
        meta.get("CONTENT_LENGTH") or "0"
    ) not in ("", "0")


def _unread_credentials(ctx: RequestContext) -> bool:
    """Whether the request carries credentials the gateway did not turn into its consumer.

    On `authentication: none` (or a Basic header on an optional route) they reach the
    upstream unread, which may answer for that caller: such an answer is never shared
    (RFC 9111 section 3.5), since the key cannot tell that caller from anyone else.
    """
    meta = ctx.meta
    return ctx.principal is None and bool(
        meta.get("HTTP_AUTHORIZATION") or meta.get("HTTP_X_API_KEY")
    )


def cache_lookup(ctx: RequestContext) -> HttpResponseBase | None:
    """A stored answer (X-Cache: HIT, Age) or None; on a miss the key is kept for the store."""
    route = _route(ctx)
    if ctx.method not in cache.CACHEABLE_METHODS or _has_body(ctx.meta):
        ctx.note("cache:      not used for this request (only GET/HEAD without a body)")
        return None
    if _unread_credentials(ctx):
        ctx.note("cache:      not used (the request carries credentials the gateway did not read)")
        return None
    key = cache.base_key(
        version=route_tables.get().version,
        route_id=route.id,
        method=ctx.method,
        path=str(ctx.path),
        query=ctx.query,
        host=str(ctx.meta.get("HTTP_HOST", "")),
        consumer=_consumer_key(ctx),
    )
    found = cache.lookup(cache.cache_store(), key, MetaHeaders(ctx.meta))
    ctx.note(f"cache:      {'HIT' if found else 'MISS'}")
    if ctx.dry_run:
        return None
    metrics.count_cache_lookup(route_labels(route)[0], hit=found is not None)
    if found is None:
        ctx.cache_key = key
        return None
    ctx.cache_hit = True
    response = BufferedProxiedResponse(found.body, status=found.status)
    del response["Content-Type"]
    for name, value in found.headers:
        response[name] = value
    response["X-Cache"] = "HIT"
    response["Age"] = str(found.age())
    return response


def cache_store(ctx: RequestContext, response: HttpResponseBase) -> HttpResponseBase:
    """Mark the answer MISS and keep it when the contract allows (200, no cookie, no no-store)."""
    if ctx.cache_hit or ctx.preflight:
        return response
    response["X-Cache"] = "MISS"
    key = ctx.cache_key
    policy = _route(ctx).cache
    if key is None or policy is None or ctx.error is not None:
        return response
    if not getattr(response, "gateway_proxied", False):
        return response  # only upstream answers are kept
    items = list(response.items())
    lowered = {name.lower(): value for name, value in items}
    ttl = cache.storable_ttl(
        policy,
        status=response.status_code,
        headers=lowered,
        has_set_cookie="set-cookie" in lowered,
    )
    vary = cache.vary_names(lowered.get("vary"))
    if ttl is None or vary is None:
        return response
    request_headers = MetaHeaders(ctx.meta)
    store = cache.cache_store()
    # With a cors policy the CORS headers are the gateway's, for the Origin of the request that
    # filled the entry: they are added afresh to each HIT, never replayed from it.
    kept_headers = cache.stored_headers(items, without_cors=_route(ctx).cors is not None)
    status, age = response.status_code, cache.age_seconds(lowered.get("age"))

    progress = getattr(response, "body_progress", None)

    def keep(body: bytes) -> None:
        if progress is not None and not progress.complete:
            return  # the upstream broke off: a short body is no answer to keep
        answer = cache.CachedAnswer(
            status, kept_headers, body, stored_at=time.time(), age_at_store=age
        )
        cache.store_answer(
            store, key, answer=answer, vary=vary, request_headers=request_headers, ttl_seconds=ttl
        )

    if getattr(response, "streaming", False):
        response.streaming_content = cache.collect_body(response.streaming_content, keep)  # type: ignore[attr-defined]
    else:
        keep(response.content)  # type: ignore[attr-defined]
    return response


# --- header rules ------------------------------------------------------------------------------


def take_request_header_rules(ctx: RequestContext) -> None:
    """Hand the route's request_headers to forward, which applies them to what it sends."""
    rules = _route(ctx).request_headers
    ctx.request_header_rules = rules
    if rules is not None:
        ctx.note(f"request headers: {headers.describe(rules)}")


def apply_response_header_rules(
    ctx: RequestContext, response: HttpResponseBase
) -> HttpResponseBase:
    """response_headers on the upstream's answers only (not the gateway's own, not a HIT)."""
    rules = _route(ctx).response_headers
    if rules is None or ctx.error is not None or ctx.cache_hit:
        return response
    if getattr(response, "gateway_proxied", False):
        headers.apply_to_response(rules, response)
    return response


# --- websocket ---------------------------------------------------------------------------------


def open_websocket(ctx: RequestContext) -> HttpResponseBase | None:
    """An upgrade request's handshake forwarded and relayed (None: forward it as plain HTTP)."""
    if not websocket.is_upgrade_request(ctx.meta):
        return None
    route = _route(ctx)
    request = ctx.http_request
    websocket.check_handshake(ctx.method, ctx.meta)
    ctx.note("websocket:  the upgrade goes to the upstream; after its 101 bytes are relayed")
    if ctx.dry_run or request is None:
        return None
    outgoing = upstream_request(request, ctx, route)
    return websocket.open_websocket(request, route, outgoing)
