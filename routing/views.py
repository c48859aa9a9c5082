"""The proxy view: DRF's pipeline (authenticate, authorize, throttle) around forwarding."""

from __future__ import annotations

from typing import Any

from django.http.response import HttpResponseBase
from rest_framework.request import Request
from rest_framework.views import APIView

from gateway_project.errors import LoopDetected
from gateway_project.tracing import TracedStepsMixin
from routing.authorization import RouteAuthentication, RoutePermission
from routing.limits import GatewayThrottle
from routing.loops import came_back
from routing.proxy import ProxyContext, forward, normalized_path
from routing.table import route_tables


class ProxyView(TracedStepsMixin, APIView):
    """Matches the route, runs DRF's auth/permission/throttle steps, then forwards."""

    authentication_classes: list[Any] = [RouteAuthentication]
    permission_classes: list[Any] = [RoutePermission]
    throttle_classes: list[Any] = [GatewayThrottle]

    @property
    def default_response_headers(self) -> dict[str, str]:
        """No `Allow`/`Vary` of DRF's own on proxied answers: the upstream's headers rule."""
        return {}

    def finalize_response(  # type: ignore[override] # proxied answers are plain Django ones
        self, request: Request, response: HttpResponseBase, *args: Any, **kwargs: Any
    ) -> HttpResponseBase:
        """Add the pipeline's headers (rate limits) to every answer, errors included."""
        response = super().finalize_response(request, response, *args, **kwargs)  # type: ignore[arg-type]
        context: ProxyContext | None = getattr(request, "gateway", None)
        if context is not None:
            for name, value in context.response_headers.items():
                if name not in response:
                    response[name] = value
        return response

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        """Match the route first: authentication and limits depend on it."""
        if came_back(request.META.get("HTTP_VIA")):
            raise LoopDetected()  # before any check: a loop must cost as little as possible
        path = normalized_path(request._request)
        route = route_tables.get().match(str(request.method), path)
        context = ProxyContext(path=path, route=route, dry_run=kwargs.pop("dry_run", False))
        request.gateway = context  # type: ignore[attr-defined]
        request._request.gateway = context  # type: ignore[attr-defined] # for middleware
        super().initial(request, *args, **kwargs)

    def proxy(self, request: Request, *args: Any, **kwargs: Any) -> HttpResponseBase:
        """Forward the request upstream and return its answer."""
        return forward(request._request, request.gateway)  # type: ignore[attr-defined]

    get = post = put = patch = delete = head = proxy
    options = proxy  # type: ignore[assignment] # DRF's own OPTIONS answers metadata; we forward
