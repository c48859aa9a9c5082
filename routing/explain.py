"""Explain: run a request through the proxy's checks without forwarding it or using quota."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

from gateway_project.errors import GatewayError
from routing.pipeline import RequestContext, dry_run
from routing.proxy import normalized_path, upstream_path
from routing.table import CompiledRoute, route_tables


@dataclass
class ExplainReport:
    """What the gateway would do with a request, step by step."""

    method: str
    path: str
    normalized_path: str | None = None
    route: CompiledRoute | None = None
    upstream: str | None = None
    consumer: str | None = None
    status: int = 200
    verdict: str = ""
    steps: list[str] = field(default_factory=list)

    @property
    def allowed(self) -> bool:
        """Whether the request would be forwarded."""
        return self.status < 400

    def lines(self) -> list[str]:
        """The report as lines of text."""
        out = [f"request:    {self.method} {self.path}"]
        if self.normalized_path is not None:
            out.append(f"normalized: {self.normalized_path}")
        route = self.route
        if route is not None:
            methods = ", ".join(sorted(route.methods)) if route.methods else "any"
            out.append(f"route:      {route.pattern.pattern} (methods: {methods})")
            out.append(f"service:    {route.service.name}")
            if self.upstream:
                out.append(f"upstream:   {self.upstream}")
            out.append(f"auth:       {route.authentication}")
            out.append(f"roles:      {', '.join(sorted(route.roles)) or '-'} (any one needed)")
            out.append(f"permissions: {', '.join(sorted(route.permissions)) or '-'} (all needed)")
            limit = route.rate_limit
            out.append(
                f"rate limit: {limit.requests} per {limit.period_seconds}s, burst {limit.burst}"
                if limit
                else "rate limit: none"
            )
            out.append(f"timeout:    {route.timeout_seconds:g}s, retries: {route.retries}")
        if self.consumer:
            out.append(f"consumer:   {self.consumer}")
        out.extend(f"  {step}" for step in self.steps)
        out.append(f"verdict:    {self.verdict}")
        return out


def _meta(headers: dict[str, str], query: str) -> dict[str, Any]:
    """The headers as a WSGI environ holds them (HTTP_*, CGI names for the two special ones)."""
    # Explain speaks as a caller on this machine: anonymous limits are those of 127.0.0.1.
    meta: dict[str, Any] = {"QUERY_STRING": query, "REMOTE_ADDR": "127.0.0.1"}
    for name, value in headers.items():
        key = name.upper().replace("-", "_")
        meta[key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{key}"] = value
    return meta


def explain_request(*, method: str, path: str, headers: dict[str, str]) -> ExplainReport:
    """Run `method path` with `headers` through the proxy's steps as a dry run."""
    report = ExplainReport(method=method, path=path)
    route_tables.invalidate()  # explain right after a change must see it: check the version now
    raw, _, query = path.partition("?")
    context = RequestContext(
        method=method, raw_path=raw, meta=_meta(headers, query), query=query, request_id="explain"
    )
    with contextlib.suppress(GatewayError):  # the match step reports it below
        report.normalized_path = normalized_path(raw)
    refusal = dry_run(context)
    if refusal is not None:
        report.status = refusal.status_code
        report.verdict = f"{refusal.status_code} {refusal.detail}"
    elif context.preflight:
        report.status = 204
        report.verdict = "204 CORS preflight answered by the gateway, not forwarded"
    else:
        report.verdict = "200 forwarded to the upstream"
    route = context.route
    if route is not None and context.path is not None:
        report.route = route
        targets = route.service.targets
        if targets:
            report.upstream = targets[0].url.rstrip("/") + upstream_path(route, context.path)
        if context.principal is not None:
            report.consumer = f"{context.principal.kind} {context.principal.username}"
        report.steps.extend(context.notes)
    return report
