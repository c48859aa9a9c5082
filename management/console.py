"""Console pages beyond the model admin: explain, config import/export, cluster status."""

from __future__ import annotations

import time

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path
from django.utils.datastructures import MultiValueDict
from django.views.decorators.csrf import csrf_exempt, csrf_protect

from audit.authority import ChangeRefused, console_actor
from management.console_access import console_page
from management.console_cors import cors_preview_view
from management.console_firstrun import first_run_view
from management.console_upload import (
    LimitedUploadHandler,
    declared_too_large,
    limit_uploads,
    too_large_message,
)
from routing.config_version import current_version
from routing.configfile.service import config_export, config_import
from routing.configfile.validate import ConfigInvalid
from routing.explain import explain_request
from routing.nodes import CHECK_IN_TTL_SECONDS, list_nodes

METHOD_CHOICES = [(m, m) for m in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")]


class ExplainForm(forms.Form):
    """A request to explain."""

    method = forms.ChoiceField(choices=METHOD_CHOICES, initial="GET")
    path = forms.CharField(
        max_length=2000,
        help_text="The path as a client would send it, with the query if any: /api/v1/rd/tasks?x=1",
    )
    headers = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 80}),
        help_text="Optional, one per line, e.g. 'Authorization: Bearer eyJ…' or 'X-API-Key: …'.",
    )

    def clean_path(self) -> str:
        """A path starts with '/'."""
        value: str = self.cleaned_data["path"].strip()
        if not value.startswith("/"):
            raise forms.ValidationError("Start the path with '/', e.g. /api/v1/rd/tasks.")
        return value

    def clean_headers(self) -> dict[str, str]:
        """Parse 'Name: value' lines."""
        headers: dict[str, str] = {}
        for number, line in enumerate(self.cleaned_data["headers"].splitlines(), start=1):
            if not line.strip():
                continue
            name, sep, value = line.partition(":")
            if not sep or not name.strip():
                raise forms.ValidationError(f"Line {number} must look like 'Name: value'.")
            headers[name.strip()] = value.strip()
        return headers


class ImportForm(forms.Form):
    """A config file to preview and apply."""

    file = forms.FileField(
        required=False, help_text="A YAML config file (the `gateway export` format)."
    )
    text = forms.CharField(required=False, widget=forms.HiddenInput)
    prune = forms.BooleanField(
        required=False, help_text="Also delete services and routes the file does not name."
    )

    def config_text(self) -> str:
        """The uploaded file's text, or the text carried over from the preview."""
        upload = self.cleaned_data.get("file")
        if upload:
            try:
                return str(upload.read().decode("utf-8"))
            except UnicodeDecodeError:
                raise forms.ValidationError("The file is not UTF-8 text.") from None
        return str(self.cleaned_data.get("text") or "")


@console_page
def explain_view(request: HttpRequest) -> HttpResponse:
    """Explain a request: route, rules and verdict, without calling the upstream.

    A POST form: the credential typed in must not land in URLs, access logs or history.
    """
    form = ExplainForm(request.POST or None)
    report = None
    if form.is_bound and form.is_valid():
        report = explain_request(
            method=form.cleaned_data["method"],
            path=form.cleaned_data["path"],
            headers=form.cleaned_data["headers"],
        )
    context = {**admin.site.each_context(request), "title": "Explain a request", "form": form}
    context["report"] = report
    return render(request, "routing/explain.html", context)


@csrf_exempt  # checked by _config_page, once the upload's size limit is in place
@console_page
def config_view(request: HttpRequest) -> HttpResponse:
    """Download the live config, or upload one: preview its diff, then apply it."""
    upload = None
    if request.method == "POST":
        # Before anything reads the body (the CSRF check would): bound what it may hold.
        if declared_too_large(request):
            return _config_refused(request)
        upload = limit_uploads(request)
    return _config_page(request, upload)


def _config_refused(request: HttpRequest) -> HttpResponse:
    """The import page with the too-large error, answered without reading the upload."""
    form = ImportForm(data={}, files=MultiValueDict())
    form.is_valid()
    form.add_error("file", too_large_message())
    context = {**admin.site.each_context(request), "title": "Config import and export"}
    context["form"] = form
    return render(request, "routing/config.html", context, status=413)


@csrf_protect
def _config_page(request: HttpRequest, upload: LimitedUploadHandler | None) -> HttpResponse:
    if request.GET.get("download"):
        response = HttpResponse(config_export(), content_type="application/yaml")
        response["Content-Disposition"] = 'attachment; filename="gateway-config.yaml"'
        return response
    form = ImportForm(request.POST or None, request.FILES or None)
    if upload is not None and upload.refused:
        return _config_refused(request)
    context = {**admin.site.each_context(request), "title": "Config import and export"}
    if request.method == "POST" and form.is_valid():
        apply = "apply" in request.POST
        try:
            text = form.config_text()
            result = config_import(
                text=text,
                dry_run=not apply,
                prune=form.cleaned_data["prune"],
                by=request.user,
                via="the console",
                actor=console_actor(request),
            )
        except ChangeRefused as refused:
            messages.error(request, f"Nothing was imported: {refused.detail}")
            return redirect("console-config")
        except forms.ValidationError as error:
            form.add_error("file", error)
        except ConfigInvalid as invalid:
            context["errors"] = invalid.errors
        else:
            if apply:
                count = len(result.changes)
                messages.success(request, f"Applied {count} change(s)." if count else "No changes.")
                return redirect("console-config")
            context["changes"] = result.changes
            form = ImportForm(initial={"text": text, "prune": form.cleaned_data["prune"]})
            context["preview"] = True
    context["form"] = form
    return render(request, "routing/config.html", context)


@console_page
def cluster_view(request: HttpRequest) -> HttpResponse:
    """Each gateway process, the config version it serves and when it last checked in."""
    latest = current_version()
    rows = []
    for node in list_nodes():
        age = node.seconds_since_check_in
        rows.append(
            {
                "node": node.node,
                "role": node.role,
                "version": node.version,
                "current": node.version == latest,
                "age": f"{age:.0f}s ago",
                "healthy": age < CHECK_IN_TTL_SECONDS / 2,
                "uptime": f"{(time.time() - node.started_at) / 60:.0f} min",
            }
        )
    context = {**admin.site.each_context(request), "title": "Cluster status"}
    context.update(latest=latest, rows=rows)
    return render(request, "routing/cluster.html", context)


def logout_view(request: HttpRequest) -> HttpResponse:
    """GET: a page with a log-out button (Django answers an empty 405); POST: log out."""
    if request.method == "POST":
        return admin.site.logout(request)
    context = {**admin.site.each_context(request), "title": "Log out"}
    return render(request, "admin/gateway_logout.html", context)


urlpatterns = [
    path("explain/", explain_view, name="console-explain"),
    path("config/", config_view, name="console-config"),
    path("cluster/", cluster_view, name="console-cluster"),
    path("first-run/", first_run_view, name="console-first-run"),
    path("cors-preview/", cors_preview_view, name="console-cors-preview"),
]
