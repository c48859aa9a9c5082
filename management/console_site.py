"""The console's admin site: the gateway's own pages first, grouped by task; the rest under Advanced.

Django's admin lists apps alphabetically (Accounts, Axes, Django OAuth Toolkit, Groups...
above Routing). `GatewayAdminSite.get_app_list` regroups the same entries, so the sidebar,
the home page and every permission check stay Django's: a model the user may not see is
absent from both.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.http import HttpRequest
from django.template.response import TemplateResponse

# The Gateway sections, in sidebar order: (slug, heading, [(model label, name shown)]).
GATEWAY_SECTIONS: tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...] = (
    (
        "gateway-traffic",
        "Services and routes",
        (("routing.service", "Services"), ("routing.route", "Routes")),
    ),
    (
        "gateway-consumers",
        "Consumers",
        (
            ("accounts.user", "Users"),
            ("accounts.apiclient", "API clients"),
            ("accounts.apikey", "API keys"),
            ("oauth2_provider.application", "OAuth applications"),
        ),
    ),
    (
        "gateway-access",
        "Roles and permissions",
        (("accounts.role", "Roles"), ("accounts.permission", "Permissions")),
    ),
    (
        "gateway-quotas",
        "Quotas and usage",
        (
            ("quotas.quota", "Quotas"),
            ("quotas.userquotastatus", "User quotas"),
            ("quotas.clientquotastatus", "Client quotas"),
            ("quotas.usage", "Usage"),
            ("quotas.quotaadjustment", "Quota adjustments"),
        ),
    ),
)
ADVANCED = ("advanced", "Advanced")
# Where the header's "View site" link leads: the developer portal (`/` is the proxy's).
DOCS_PORTAL_URL = "/api/docs"


def _label(app: dict[str, Any], model: dict[str, Any]) -> str:
    return f"{app['app_label']}.{model['object_name'].lower()}"


def console_sections(app_list: list[dict[str, Any]], *, index_url: str) -> list[dict[str, Any]]:
    """Django's app list regrouped: the Gateway sections in order, then one Advanced section.

    Each model entry is Django's own (URLs and add/view rights decided by the admin); only
    its name changes, and in Advanced it is prefixed with the app it comes from.
    """
    by_label: dict[str, dict[str, Any]] = {}
    app_names: dict[str, str] = {}
    for app in app_list:
        for model in app["models"]:
            by_label[_label(app, model)] = model
            app_names[_label(app, model)] = str(app["name"])
    sections = []
    for slug, heading, entries in GATEWAY_SECTIONS:
        models = [
            {**by_label.pop(label), "name": name} for label, name in entries if label in by_label
        ]
        if models:
            sections.append(_section(slug, heading, models, index_url=index_url))
    rest = sorted(by_label.items(), key=lambda item: (app_names[item[0]], str(item[1]["name"])))
    advanced = [{**model, "name": f"{model['name']} ({app_names[label]})"} for label, model in rest]
    if advanced:
        sections.append(_section(*ADVANCED, advanced, index_url=index_url))
    return sections


def _section(slug: str, heading: str, models: list[dict[str, Any]], *, index_url: str) -> Any:
    # app_url is the section heading's link (and marks the current section): the home page's
    # anchor of that section, which no model page's path contains.
    return {
        "name": heading,
        "app_label": slug,
        "app_url": f"{index_url}#{slug}",
        "has_module_perms": True,
        "models": models,
    }


class GatewayAdminSite(admin.AdminSite):
    """Django's admin with the gateway's sidebar, header and first-run home page."""

    site_header = "Gateway console"
    site_title = "Gateway console"
    index_title = "Gateway"
    site_url = DOCS_PORTAL_URL

    def get_app_list(
        self, request: HttpRequest, app_label: str | None = None
    ) -> list[dict[str, Any]]:
        """The sidebar's and home page's sections; an app's own page keeps Django's list."""
        app_list = super().get_app_list(request, app_label)
        if app_label is not None:
            return app_list
        return console_sections(app_list, index_url=self._index_url())

    def _index_url(self) -> str:
        from django.urls import reverse

        return reverse("admin:index", current_app=self.name)

    def index(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        """The home page: the first-run form while there is no service, else the dashboard."""
        from management.console_firstrun import first_run_context

        context = {**(extra_context or {}), **first_run_context(request)}
        response: TemplateResponse = super().index(request, extra_context=context)
        return response


class GatewayAdminConfig(AdminConfig):
    """django.contrib.admin with the gateway's site as `admin.site`."""

    default_site = "management.console_site.GatewayAdminSite"
