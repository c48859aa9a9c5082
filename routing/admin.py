"""The console's pages for services, targets and routes."""

from __future__ import annotations

import time
from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils.html import format_html_join

from audit.views import HistoryAdminMixin
from routing.models import HTTP_METHODS, Route, Service, Target
from routing.table import service_url_override, service_url_variable
from routing.target_state import resilience_state, target_key


def _in_seconds(moment: float | None) -> str:
    if moment is None:
        return ""
    left = moment - time.time()
    return f"in {left:.0f}s" if left >= 0 else f"{-left:.0f}s ago"


class TargetInline(admin.TabularInline):
    """A service's weighted targets, edited on the service page, with their live state."""

    model = Target
    extra = 0
    fields = ("url", "weight", "live_health", "lease", "last_error")
    readonly_fields = ("live_health", "lease", "last_error")

    @admin.display(description="Live health")
    def live_health(self, target: Target) -> str:
        """Active check verdict, and a passive ejection if one is running."""
        if not target.pk:
            return ""
        view = resilience_state.describe(target_key(target.service.name, target.url))
        if view.ejected_until:
            return f"{view.health}, ejected (back {_in_seconds(view.ejected_until)})"
        return view.health

    @admin.display(description="Registration lease")
    def lease(self, target: Target) -> str:
        """For a registered target: when its lease ends (or ended)."""
        if not target.pk or not target.registered:
            return "static"
        view = resilience_state.describe(target_key(target.service.name, target.url))
        stored = target.lease_expires_at.timestamp() if target.lease_expires_at else None
        until = max(filter(None, (view.lease_until, stored)), default=None)
        state = "expired" if until is None or until < time.time() else "active"
        return f"{state}, ends {_in_seconds(until)}"

    @admin.display(description="Last error")
    def last_error(self, target: Target) -> str:
        """The latest failure this gateway saw for the target."""
        if not target.pk:
            return ""
        return resilience_state.describe(target_key(target.service.name, target.url)).last_error


@admin.register(Service)
class ServiceAdmin(HistoryAdminMixin, admin.ModelAdmin):
    """Services with their targets inline."""

    inlines = [TargetInline]
    empty_state_hint = "A service is an upstream the gateway forwards to; routes lead to it."
    list_display = ("name", "address", "target_count", "route_count", "updated_at")
    search_fields = ("name", "url", "description", "targets__url")
    list_filter = ("load_balancing", "updated_at")
    fieldsets = (
        (None, {"fields": ("name", "url", "description")}),
        ("Timeouts", {"fields": ("connect_timeout_ms",)}),
        ("Load balancing", {"fields": ("load_balancing",)}),
        ("Health check", {"fields": ("health_check_path", "health_check_interval_ms")}),
        ("Circuit breakers", {"fields": ("breaker_states",)}),
        ("Docs", {"fields": ("openapi", "docs_status")}),
    )

    readonly_fields = ("breaker_states", "docs_status")

    @admin.display(description="Breaker state per route")
    def breaker_states(self, service: Service) -> str:
        """Each route's circuit to this service: closed, open or half-open, live."""
        from routing.upstream import upstream_client

        if not service.pk:
            return ""
        breakers = upstream_client().breakers
        rows = [
            (route, breakers.state(f"{route.pk} {service.name}"))
            for route in service.routes.all()
            if route.circuit_breaker_threshold
        ]
        if not rows:
            return "No route to this service has a circuit breaker."
        return format_html_join("", "<div>{}: {}</div>", rows)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Service]:
        """Count targets and routes in the list query."""
        return super().get_queryset(request).prefetch_related("targets", "routes")

    @admin.display(description="Address")
    def address(self, service: Service) -> str:
        """Where traffic goes, noting an environment override."""
        override = service_url_override(service.name)
        if override:
            return f"{override} (from {service_url_variable(service.name)})"
        return service.url or "targets below"

    def get_form(
        self, request: HttpRequest, obj: Service | None = None, change: bool = False, **kwargs: Any
    ) -> Any:
        """On a service's page, the URL's help names that service's override variable."""
        form = super().get_form(request, obj, change=change, **kwargs)
        if obj is not None and "url" in form.base_fields:
            form.base_fields["url"].help_text = (
                "Where the service listens, e.g. http://10.0.0.5:9001. Leave empty and add "
                "targets below to balance over several instances. The environment variable "
                f"{service_url_variable(obj.name)} overrides it."
            )
        return form

    @admin.display(description="Docs status")
    def docs_status(self, service: Service) -> str:
        """Whether the developer portal could fetch the service's OpenAPI document."""
        from routing.portal.fetch import spec_url
        from routing.portal.selectors import upstream_spec

        if not service.pk or not service.openapi:
            return "No OpenAPI document declared."
        fetched = upstream_spec(service)
        if fetched.error:
            return f"Unavailable: GET {spec_url(service)}: {fetched.error}."
        return f"Available at /api/docs/services/{service.name}/openapi.json"

    @admin.display(description="Targets")
    def target_count(self, service: Service) -> int:
        """How many targets the service balances over."""
        return len(service.targets.all())

    @admin.display(description="Routes")
    def route_count(self, service: Service) -> int:
        """How many routes lead to the service."""
        return len(service.routes.all())

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        """Warn when a service has neither a URL nor targets (it would answer 503)."""
        super().save_related(request, form, formsets, change)
        service = form.instance
        if not service.url and not service.targets.exists():
            self.message_user(
                request,
                f"Service {service.name} has no URL and no targets: its routes answer 503 "
                "until you add one.",
                level="warning",
            )


class RouteForm(forms.ModelForm):
    """Route form with the methods as checkboxes."""

    method_choices = forms.MultipleChoiceField(
        label="Methods",
        choices=[(m, m) for m in HTTP_METHODS],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Leave all unticked to accept every method. GET also answers HEAD.",
    )

    class Meta:
        model = Route
        fields = [
            "path",
            "service",
            "enabled",
            "description",
            "strip_prefix",
            "timeout_ms",
            "retry",
            "priority",
            "authentication",
            "permissions",
            "roles",
            "rate_limit_requests",
            "rate_limit_period",
            "rate_limit_burst",
            "rate_limit_algorithm",
            "rate_limit_headers",
            "circuit_breaker_threshold",
            "circuit_breaker_timeout_ms",
        ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["method_choices"] = self.instance.method_list

    def clean(self) -> dict[str, Any]:
        """Store the ticked methods canonically before the model's own checks run."""
        cleaned = super().clean() or {}
        methods = ",".join(sorted(cleaned.get("method_choices") or []))
        self.instance.methods = methods
        # `methods` is not a form field, so Django skips the (path, methods) constraint: check it.
        duplicate = Route.objects.filter(path=cleaned.get("path"), methods=methods)
        if duplicate.exclude(pk=self.instance.pk).exists():
            raise forms.ValidationError(
                f"A route for {methods or 'every method'} on {cleaned.get('path')} exists "
                "already; edit that one, or choose other methods."
            )
        return cleaned


@admin.register(Route)
class RouteAdmin(HistoryAdminMixin, admin.ModelAdmin):
    """Routes with their policies grouped by concern."""

    form = RouteForm
    change_form_template = "routing/route_change_form.html"
    empty_state_hint = "A route maps a path clients call to a service, with its access rules."
    list_display = (
        "path",
        "methods_display",
        "service",
        "authentication",
        "rate_limit_display",
        "priority",
        "enabled",
    )
    list_filter = ("enabled", "authentication", "service", "strip_prefix")
    list_editable = ("enabled",)
    search_fields = ("path", "description", "service__name")
    autocomplete_fields = ("service",)
    filter_horizontal = ("permissions", "roles")
    fieldsets = (
        (None, {"fields": ("path", "method_choices", "service", "enabled", "description")}),
        ("Forwarding", {"fields": ("strip_prefix", "timeout_ms", "retry", "priority")}),
        ("Access", {"fields": ("authentication", "permissions", "roles")}),
        (
            "Rate limit",
            {
                "fields": (
                    "rate_limit_requests",
                    "rate_limit_period",
                    "rate_limit_burst",
                    "rate_limit_algorithm",
                    "rate_limit_headers",
                )
            },
        ),
        (
            "Circuit breaker",
            {"fields": ("circuit_breaker_threshold", "circuit_breaker_timeout_ms")},
        ),
    )

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        """The route's form, with its live traffic and a box to explain a request to it."""
        from routing.console_firstrun import row_id
        from routing.console_route import route_page_context

        pk = row_id(object_id)
        route = Route.objects.filter(pk=pk).first() if pk is not None else None
        context = {**(extra_context or {}), **(route_page_context(route) if route else {})}
        return super().change_view(request, object_id, form_url, extra_context=context)

    @admin.display(description="Methods", ordering="methods")
    def methods_display(self, route: Route) -> str:
        """The methods, or 'any'."""
        return route.methods.replace(",", ", ") or "any"

    @admin.display(description="Rate limit")
    def rate_limit_display(self, route: Route) -> str:
        """The limit in words."""
        if not route.rate_limit_requests:
            return "-"
        return f"{route.rate_limit_requests}/{route.rate_limit_period}"
