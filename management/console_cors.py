"""The route form's live CORS preview: what a preflight from an origin would get, as JSON.

The route page's script (management/static/management/cors_preview.js) posts the form's CORS
fields here as the admin types; the answer is computed by routing.cors_form.preview, i.e. the
config file's checks and the proxy's own CORS code. Whoever may open a route's page may preview
(a viewer too); nothing is saved.
"""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_POST

from management.console_access import console_page
from routing.configfile.export import policy_entries
from routing.configfile.live import route_spec
from routing.cors_form import CorsFields, preview, route_methods_of
from routing.models import HTTP_METHODS, Route
from routing.policies.cors import normalized_origin

_HEADER_LIST = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+( *, *[A-Za-z0-9!#$%&'*+.^_`|~-]+)*")


class CorsPreviewForm(CorsFields):
    """The route form's CORS fields and methods, plus the preflight to try."""

    method_choices = forms.MultipleChoiceField(
        choices=[(m, m) for m in HTTP_METHODS], required=False
    )
    preview_origin = forms.CharField(
        max_length=300,
        error_messages={
            "required": "Type the origin of the calling page, e.g. https://app.example.com."
        },
    )
    preview_method = forms.ChoiceField(
        choices=[(m, m) for m in HTTP_METHODS], required=False, initial="GET"
    )
    preview_headers = forms.CharField(max_length=1024, required=False)

    def clean_preview_origin(self) -> str:
        """An origin exactly as a browser sends it."""
        value = str(self.cleaned_data["preview_origin"]).strip()
        if normalized_origin(value) is None:
            raise forms.ValidationError(
                "Not an origin a browser sends: scheme://host[:port] without a path or a "
                "trailing /, e.g. https://app.example.com."
            )
        return value

    def clean_preview_method(self) -> str:
        """The method the page wants to call; GET when not given."""
        return str(self.cleaned_data.get("preview_method") or "GET")

    def clean_preview_headers(self) -> str:
        """Header names separated by commas, as in Access-Control-Request-Headers."""
        value = str(self.cleaned_data.get("preview_headers") or "").strip()
        if value and not _HEADER_LIST.fullmatch(value):
            raise forms.ValidationError(
                "Header names separated by commas, e.g. Authorization, Content-Type."
            )
        return value


def _route_admin_may_view(request: HttpRequest) -> bool:
    """The route page's own permission question (audit.authority's table answers it)."""
    model_admin = admin.site.get_model_admin(Route)
    return bool(model_admin.has_view_permission(request))


@console_page
@require_POST
@csrf_protect
def cors_preview_view(request: HttpRequest) -> HttpResponse:
    """The preflight answer for the posted CORS fields; `ok: false` with `errors[]` for bad input."""
    if not _route_admin_may_view(request):
        raise PermissionDenied
    form = CorsPreviewForm(request.POST)
    if not form.is_valid():
        errors = [
            {"field": name, "message": str(message)}
            for name, messages in form.errors.items()
            for message in messages
        ]
        # 200, like the admin's own form pages with errors: the preview of bad input is an
        # answer the page shows (and a 4xx would be a console error in the browser).
        return JsonResponse({"ok": False, "errors": errors})
    data = form.cleaned_data
    result = preview(
        data,
        route_methods=route_methods_of(data.get("method_choices")),
        origin=data["preview_origin"],
        method=data["preview_method"],
        requested_headers=data.get("preview_headers"),
    )
    return JsonResponse(result.as_json())


def cors_preview_context(route: Route | None) -> dict[str, Any]:
    """The preview panel's context: its URL and the saved CORS fields (for read-only pages)."""
    saved: dict[str, Any] = {"method_choices": []}
    if route is not None:
        saved.update(CorsFields.initial_from(policy_entries(route_spec(route)).get("cors")))
        saved["method_choices"] = route.method_list
    return {
        "cors_preview_url": reverse("console-cors-preview"),
        "cors_saved": saved,
        "cors_preview_methods": HTTP_METHODS,
    }
