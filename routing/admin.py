"""The console's pages for services, targets and routes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils.html import format_html_join

from audit.views import HistoryAdminMixin
from routing.clock import epoch_seconds
from routing.configfile.export import policy_entries
from routing.configfile.live import route_spec
from routing.configfile.policies import check_cache, check_header_rules, check_networks
from routing.configfile.spec import MAX_ROUTE_NAMES, CacheSpec, HeaderRulesSpec, RouteSpec
from routing.configfile.validate import Checker
from routing.cors_form import CorsFields, check_cors_fields, cors_error_field
from routing.models import HTTP_METHODS, Route, Service, Target
from routing.policies.cache import purge_route
from routing.table import service_url_override, service_url_variable
from routing.target_state import resilience_state, target_key


def _in_seconds(moment: float | None) -> str:
    if moment is None:
        return ""
    left = moment - epoch_seconds()
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
        state = "expired" if until is None or until < epoch_seconds() else "active"
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
        from routing.upstream_docs import spec_url, upstream_spec

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


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _key_help(name: str) -> str:
    return RouteSpec.key(name).help


# The policy keys the form edits in their config-file shape -> the form field that holds each.
_POLICY_FORM_FIELDS = {
    "ip_allow": "ip_allow_list",
    "ip_deny": "ip_deny_list",
    "request_headers": "request_headers_config",
    "response_headers": "response_headers_config",
    "cache": "cache_ttl",
}
_JSON_EXAMPLE = "As JSON in the config file's shape, e.g. {}. Empty: none."


def _optional_json(value: Any) -> Any:
    """A JSON form value, None when empty (the field was left blank or holds null/{})."""
    return None if value in (None, "", {}, []) else value


class OptionalJSONField(forms.JSONField):
    """A JSON form field that shows a missing value as an empty box, not as `null`."""

    def prepare_value(self, value: Any) -> Any:
        return "" if value is None else super().prepare_value(value)

    def to_python(self, value: Any) -> Any:
        # A box left blank may come back as whitespace (a newline after <textarea>): no value.
        if isinstance(value, str) and not value.strip():
            return None
        return super().to_python(value)


class RouteForm(CorsFields, forms.ModelForm):
    """Route form with the methods as checkboxes and the policies in the config file's shape.

    The policies are checked by the config file's own checks (routing.configfile.policies),
    so the console refuses exactly what an import or the API refuses.
    """

    method_choices = forms.MultipleChoiceField(
        label="Methods",
        choices=[(m, m) for m in HTTP_METHODS],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Leave all unticked to accept every method. GET also answers HEAD.",
    )
    ip_allow_list = forms.CharField(
        label="IP allow-list",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=f"{_key_help('ip_allow')} One per line, e.g. 10.0.0.0/8.",
    )
    ip_deny_list = forms.CharField(
        label="IP deny-list",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=f"{_key_help('ip_deny')} One per line.",
    )
    request_headers_config = OptionalJSONField(
        label="Request headers",
        required=False,
        help_text=_key_help("request_headers")
        + " "
        + _JSON_EXAMPLE.format('{"set": {"X-Api-Version": "1"}, "remove": ["X-Debug"]}')
        + " "
        + HeaderRulesSpec.key("set").help,
    )
    response_headers_config = OptionalJSONField(
        label="Response headers",
        required=False,
        help_text=_key_help("response_headers")
        + " "
        + _JSON_EXAMPLE.format('{"set": {"Cache-Control": "no-store"}, "remove": ["Server"]}'),
    )
    cache_ttl = forms.CharField(
        label="Cache TTL",
        required=False,
        help_text=f"{_key_help('cache')} {CacheSpec.key('ttl').help} Empty: no cache.",
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
            "hide_credentials",
            "validate_requests",
            "websocket",
        ]
        labels = {"validate_requests": "Validate requests"}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["method_choices"] = self.instance.method_list
            policies = policy_entries(route_spec(self.instance))
            self.initial["ip_allow_list"] = "\n".join(policies.get("ip_allow", []))
            self.initial["ip_deny_list"] = "\n".join(policies.get("ip_deny", []))
            self.initial.update(CorsFields.initial_from(policies.get("cors")))
            self.initial["request_headers_config"] = policies.get("request_headers")
            self.initial["response_headers_config"] = policies.get("response_headers")
            self.initial["cache_ttl"] = policies.get("cache", {}).get("ttl", "")

    def _clean_policies(self, cleaned: dict[str, Any]) -> None:
        """Check the policy fields as the config file does and store them on the route."""
        checker = Checker({})
        ip_allow = _lines(cleaned.get("ip_allow_list") or "") or None
        ip_deny = _lines(cleaned.get("ip_deny_list") or "") or None
        if ip_allow and ip_deny:
            checker.error("ip_deny", "give an allow-list or a deny-list, not both.")
        request_headers = _optional_json(cleaned.get("request_headers_config"))
        response_headers = _optional_json(cleaned.get("response_headers_config"))
        ttl = (cleaned.get("cache_ttl") or "").strip()
        networks_allow = check_networks(checker, ip_allow, "ip_allow")
        networks_deny = check_networks(checker, ip_deny, "ip_deny")
        cors_spec = check_cors_fields(cleaned, checker)
        request_spec = (
            None
            if request_headers is None
            else check_header_rules(checker, request_headers, "request_headers")
        )
        response_spec = (
            None
            if response_headers is None
            else check_header_rules(checker, response_headers, "response_headers")
        )
        cache_spec = None if not ttl else check_cache(checker, {"ttl": ttl}, "cache")
        service = cleaned.get("service")
        if cleaned.get("validate_requests") and service is not None and not service.openapi:
            self.add_error(
                "validate_requests",
                f"Service {service.name} has no OpenAPI document: give it one (Docs section "
                "of the service) or untick this.",
            )
        for error in checker.errors:
            key = error.location.split(".", 1)[0].split("[", 1)[0]
            where = cors_error_field(error.location) if key == "cors" else _POLICY_FORM_FIELDS[key]
            self.add_error(where, f"{error.location}: {error.message}")
        if checker.errors:
            return
        self.instance.ip_allow = list(networks_allow)
        self.instance.ip_deny = list(networks_deny)
        self.instance.cors = cors_spec.to_json() if cors_spec else None
        self.instance.request_headers = request_spec.to_json() if request_spec else None
        self.instance.response_headers = response_spec.to_json() if response_spec else None
        self.instance.cache_ttl_ms = cache_spec.ttl_ms if cache_spec else None

    def clean(self) -> dict[str, Any]:
        """Store the ticked methods canonically before the model's own checks run."""
        cleaned = super().clean() or {}
        self._clean_policies(cleaned)
        for field in ("permissions", "roles"):  # the config file's bound, here too
            chosen = cleaned.get(field)
            if chosen is not None and len(chosen) > MAX_ROUTE_NAMES:
                self.add_error(
                    field, f"{len(chosen)} chosen; a route may name at most {MAX_ROUTE_NAMES}."
                )
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


def row_id(text: str) -> int | None:
    """A primary key from a URL part; None for anything else ('²', '-1', 40 digits)."""
    if not (text.isascii() and text.isdigit() and len(text) <= 18):
        return None
    return int(text)


def try_path(pattern: str) -> str:
    """A concrete path a pattern matches, for the curl line: wildcards become `example`."""
    parts = pattern.split("/")
    return "/".join("example" if part in ("*", "**") else part for part in parts) or "/"


@admin.register(Route)
class RouteAdmin(HistoryAdminMixin, admin.ModelAdmin):
    """Routes with their policies grouped by concern."""

    form = RouteForm
    # The console app (management) registers the panels beside the form: traffic, explain,
    # the CORS preview (None: a new route, only the preview).
    page_panels: Callable[[Route | None], dict[str, Any]] | None = None
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
    actions = ("purge_cached_answers",)
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
        (
            "Client addresses (IP rules)",
            {
                "fields": ("ip_allow_list", "ip_deny_list"),
                "description": "Checked first, before authentication: other addresses get "
                "403 ip_forbidden. The API docs say the route is restricted, never the networks.",
            },
        ),
        (
            "CORS (browsers on other origins)",
            {
                "fields": (
                    "cors_origins",
                    "cors_methods",
                    "cors_headers",
                    "cors_expose_headers",
                    "cors_credentials",
                    "cors_max_age",
                ),
                "description": "Preflights are answered by the gateway (204, no credentials, "
                "never forwarded); answers to allowed origins get Access-Control-Allow-Origin. "
                "The preview below shows the answer as you type; IP rules still apply first.",
                "classes": ("gw-cors",),
            },
        ),
        (
            "Headers",
            {
                "fields": (
                    "request_headers_config",
                    "response_headers_config",
                    "hide_credentials",
                ),
                "description": "Changes on the way to the upstream and back; never shown in "
                "the API docs.",
            },
        ),
        (
            "Validation and cache",
            {
                "fields": ("validate_requests", "cache_ttl"),
                "description": "Both are announced to callers in the service's API docs.",
            },
        ),
        ("WebSocket", {"fields": ("websocket",)}),
    )

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        """The route's form, with the panels the console app registered (traffic, explain)."""
        pk = row_id(object_id)
        route = Route.objects.filter(pk=pk).first() if pk is not None else None
        panels = RouteAdmin.page_panels
        context = {**(extra_context or {}), **(panels(route) if route and panels else {})}
        return super().change_view(request, object_id, form_url, extra_context=context)

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """A new route's form, with the panels that need no saved route (the CORS preview)."""
        panels = RouteAdmin.page_panels
        context = {**(extra_context or {}), **(panels(None) if panels else {})}
        return super().add_view(request, form_url, extra_context=context)

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

    @admin.action(description="Purge cached answers of the selected routes", permissions=["change"])
    def purge_cached_answers(self, request: HttpRequest, queryset: QuerySet[Route]) -> None:
        """Drop every answer the response cache holds for the selected routes."""
        removed = sum(purge_route(route.pk) for route in queryset)
        self.message_user(
            request, f"Purged {removed} cached entries of {queryset.count()} route(s)."
        )
