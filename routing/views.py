"""The proxy view: a DRF view that runs the request pipeline (routing/pipeline.py)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView

from gateway_project.errors import PROBLEM_CONTENT_TYPE
from routing import pipeline

_RENDERER = JSONRenderer()


class ProxyView(APIView):
    """Runs the pipeline's steps; errors go through DRF's exception handler as problem+json.

    A proxied answer needs none of DRF's per-request machinery (a Request wrapper, content
    negotiation, renderer selection, header copies): the view skips `initial()` and
    `finalize_response()`, and renders only its own errors, with the one JSON renderer.
    """

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        """Serve one proxied request."""
        self.args, self.kwargs = args, kwargs
        context = pipeline.context_for(request)

        def render_error(error: Exception) -> HttpResponseBase:
            return self.problem(error, request)

        try:
            return pipeline.handle(context, render_error=render_error)
        finally:
            # The request keeps its context for the middleware; the context lets go of the
            # request once it is served, so the two form no reference cycle (each request's
            # objects are freed at its end, not by the cyclic garbage collector).
            context.http_request = None

    def problem(self, error: Exception, request: HttpRequest) -> HttpResponseBase:
        """The error as problem+json, by DRF's configured exception handler (the project's one)."""
        handler_context = {"view": self, "args": self.args, "kwargs": self.kwargs}
        problem = self.get_exception_handler()(error, {**handler_context, "request": request})
        if problem is None:
            raise error  # DRF's contract: a handler that declines leaves it to Django's handler500
        # Rendered here, with the one renderer an error ever needs: no negotiation.
        answer = HttpResponse(
            _RENDERER.render(problem.data),
            status=problem.status_code,
            content_type=PROBLEM_CONTENT_TYPE,
        )
        for name, value in problem.headers.items():  # the error's own: WWW-Authenticate...
            if name.lower() != "content-type":
                answer[name] = value
        return answer
