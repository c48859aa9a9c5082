"""The console's first run: with no service yet, add a service and a route in one form, then try it."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse

from audit.authority import Actor, ChangeRefused, authorize_change, console_actor, may
from management.console_access import console_page
from routing.admin import row_id, try_path
from routing.models import Route, Service

# Form field -> (model, model field) whose validation it reuses.
_FIELDS = {
    "name": (Service, "name"),
    "url": (Service, "url"),
    "path": (Route, "path"),
    "authentication": (Route, "authentication"),
}


class FirstRunForm(forms.Form):
    """A service (name and URL) and the route that leads to it."""

    name = forms.CharField(
        max_length=100,
        label="Service name",
        help_text="A short name routes refer to: lower-case letters, digits and '-', e.g. shop.",
    )
    url = forms.CharField(
        max_length=500,
        label="Service URL",
        help_text="Where the service listens, e.g. http://10.0.0.5:9001.",
    )
    path = forms.CharField(
        max_length=500,
        label="Route path",
        help_text="What clients call on the gateway; a final '**' is any rest of the path, "
        "e.g. /api/v1/shop/**.",
    )
    authentication = forms.ChoiceField(
        choices=Route.Authentication.choices,
        initial=Route.Authentication.NONE,
        label="Authentication",
        help_text="'none' lets you try it with curl now; require credentials before going live.",
    )

    def clean(self) -> dict[str, Any]:
        """The service and the route pass the models' own checks (name, URL, pattern, unique)."""
        data = super().clean() or {}
        if self.errors:
            return data
        service = Service(name=data["name"], url=data["url"])
        route = Route(path=data["path"], authentication=data["authentication"])
        for instance, exclude in ((service, None), (route, ["service"])):
            try:
                instance.full_clean(exclude=exclude)
            except ValidationError as error:
                self._add_model_errors(instance, error)
        return data

    def _add_model_errors(self, instance: Service | Route, error: ValidationError) -> None:
        for field, messages in error.message_dict.items():
            target = next(
                (
                    name
                    for name, (model, model_field) in _FIELDS.items()
                    if model is type(instance) and model_field == field
                ),
                None,
            )
            self.add_error(target, messages)


def first_run_create(*, actor: Actor, name: str, url: str, path: str, authentication: str) -> Route:
    """Create a service and its route in one change; refused (403) unless the actor may add both."""
    authorize_change(actor, "add", "services")
    authorize_change(actor, "add", "routes")
    with transaction.atomic():
        service = Service(name=name, url=url)
        service.full_clean()
        service.save()
        route = Route(path=path, service=service, authentication=authentication)
        route.full_clean()
        route.save()
    return route


def first_run_context(request: HttpRequest) -> dict[str, Any]:
    """The home page's first-run form while there is no service (empty otherwise)."""
    if Service.objects.exists():
        return {}
    return {"first_run": True, "first_run_form": FirstRunForm() if _may_add(request) else None}


def _may_add(request: HttpRequest) -> bool:
    actor = console_actor(request)
    return may(actor, "add", "services") and may(actor, "add", "routes")


@console_page
def first_run_view(request: HttpRequest) -> HttpResponse:
    """GET: the form (or, after adding, the curl line to try the route); POST: add both."""
    context: dict[str, Any] = {**admin.site.each_context(request), "title": "Add your first API"}
    route_id = row_id(request.GET.get("route", ""))
    if request.method == "GET" and route_id is not None:
        route = Route.objects.select_related("service").filter(pk=route_id).first()
        if route is not None:
            context.update(route=route, curl=_curl_line(request, route))
            return render(request, "routing/first_run.html", context)
    context["first_run"] = not Service.objects.exists()
    if not _may_add(request):
        status = 403 if request.method == "POST" else 200
        return render(request, "routing/first_run.html", context, status=status)  # who may
    form = FirstRunForm(request.POST or None)
    status = 200
    if form.is_bound and form.is_valid():
        try:
            route = first_run_create(actor=console_actor(request), **form.cleaned_data)
        except ChangeRefused as refused:
            form.add_error(None, str(refused.detail))
            status = 403
        else:
            return redirect(f"{reverse('console-first-run')}?route={route.pk}")
    context["first_run_form"] = form
    return render(request, "routing/first_run.html", context, status=status)


def _curl_line(request: HttpRequest, route: Route) -> str:
    return f"curl -i {request.scheme}://{request.get_host()}{try_path(route.path)}"
