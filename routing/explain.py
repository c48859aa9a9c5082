"""Explain: run a request through the proxy's checks without forwarding it or using quota."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

from django.test import RequestFactory
from rest_framework.exceptions import APIException

from routing.proxy import ProxyContext, normalized_path
from routing.table import CompiledRoute
from routing.views import ProxyView


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


def explain_request(*, method: str, path: str, headers: dict[str, str]) -> ExplainReport:
    """Run `method path` with `headers` through match, auth, permissions and limits (dry)."""
    report = ExplainReport(method=method, path=path)
    meta = {f"HTTP_{name.upper().replace('-', '_')}": value for name, value in headers.items()}
    raw_path, _, query = path.partition("?")
    environ: dict[str, Any] = {"QUERY_STRING": query, "RAW_URI": path, **meta}
    django_request = RequestFactory().generic(method, raw_path, **environ)
    django_request.request_id = "explain"  # type: ignore[attr-defined]
    with contextlib.suppress(APIException):  # the view's own check below reports it
        report.normalized_path = normalized_path(django_request)
    view = ProxyView()
    view.args, view.kwargs = (), {}
    request = view.initialize_request(django_request)
    view.request = request
    view.headers = {}
    view.format_kwarg = None
    try:
        view.initial(request, dry_run=True)
    except APIException as error:
        report.status = error.status_code
        report.verdict = f"{error.status_code} {error.detail}"
    else:
        report.verdict = "200 forwarded to the upstream"
    context: ProxyContext | None = getattr(request, "gateway", None)
    if context is not None:
        report.route = context.route
        targets = context.route.service.targets
        if targets:
            upstream_path = context.route.pattern.upstream_path(
                context.path, strip_prefix=context.route.strip_prefix
            )
            report.upstream = targets[0].url.rstrip("/") + upstream_path
        if context.consumer is not None:
            report.consumer = f"{context.consumer.kind} {context.consumer.username}"
        report.steps.extend(context.explain_steps)
    return report
