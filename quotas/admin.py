"""The console's quota pages: quotas, per-consumer status with reset/top-up, usage history."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse_lazy
from django.utils import timezone

from accounts.models import ApiClient, User
from audit.views import HistoryAdminMixin
from quotas.models import (
    ClientQuotaStatus,
    Quota,
    QuotaAdjustment,
    Usage,
    UserQuotaStatus,
)
from quotas.selectors import PeriodStatus, QuotaStatus, quota_status, usage_totals
from quotas.services import quota_adjust
from quotas.store import StoreUnavailable


class QuotaForm(forms.ModelForm):
    """A quota form whose errors say what to fix (the database constraints' names do not)."""

    class Meta:
        model = Quota
        fields = ("role", "user", "client", "requests_per_day", "requests_per_month")
        help_texts = {
            "role": "Everyone holding this role gets this allowance (each on their own).",
            "user": "Or: one person.",
            "client": "Or: one API client.",
        }

    def clean(self) -> dict[str, Any]:
        """Exactly one of role, user and client; at least one limit."""
        data = super().clean() or {}
        chosen = [name for name in ("role", "user", "client") if data.get(name)]
        if len(chosen) != 1:
            raise forms.ValidationError(
                "Choose exactly one of role, user or API client: a quota applies to one of them."
            )
        if data.get("requests_per_day") is None and data.get("requests_per_month") is None:
            raise forms.ValidationError("Set a daily limit, a monthly limit, or both.")
        return data


@admin.register(Quota)
class QuotaAdmin(HistoryAdminMixin, admin.ModelAdmin):
    """Quotas of roles, users and API clients; a change reaches every node within the poll."""

    form = QuotaForm
    empty_state_hint = (
        "A quota caps the requests a role, a user or an API client may make per day or month."
    )

    list_display = ("__str__", "requests_per_day", "requests_per_month")
    list_select_related = ("role", "user", "client")
    search_fields = ("role__name", "user__username", "client__name")
    list_filter = (
        ("role", admin.EmptyFieldListFilter),
        ("user", admin.EmptyFieldListFilter),
        ("client", admin.EmptyFieldListFilter),
    )
    fields = ("role", "user", "client", "requests_per_day", "requests_per_month")


class _ReadOnlyAdmin(admin.ModelAdmin):
    """A history page: nothing is added, changed or deleted by hand."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        """History is written by the gateway only."""
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """History is written by the gateway only."""
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """History is kept."""
        return False


@admin.register(Usage)
class UsageAdmin(_ReadOnlyAdmin):
    """Requests per consumer, route and UTC day (flushed every GATEWAY_USAGE_FLUSH_INTERVAL)."""

    empty_state_hint = (
        "Rows appear once proxied requests are counted and flushed "
        "(every GATEWAY_USAGE_FLUSH_INTERVAL); the home page shows live traffic."
    )
    empty_state_link = (reverse_lazy("admin:routing_route_changelist"), "See the routes")

    list_display = ("day", "consumer_kind", "consumer_name", "route_name", "requests", "rejected")
    list_filter = ("consumer_kind", "day")
    search_fields = ("consumer_name", "route_name")
    date_hierarchy = "day"


@admin.register(QuotaAdjustment)
class QuotaAdjustmentAdmin(_ReadOnlyAdmin):
    """Every quota reset and top-up: who, when, why."""

    empty_state_hint = (
        "Resets and top-ups made on the User quotas and Client quotas pages appear here."
    )
    empty_state_link = (reverse_lazy("admin:quotas_userquotastatus_changelist"), "User quotas")

    list_display = (
        "created_at",
        "consumer_kind",
        "consumer_name",
        "action",
        "period",
        "amount",
        "created_by",
        "reason",
    )
    list_filter = ("action", "period", "consumer_kind")
    search_fields = ("consumer_name", "reason")


class AdjustQuotaForm(forms.Form):
    """What to do to the selected consumers' quotas, and why."""

    operation = forms.ChoiceField(choices=QuotaAdjustment.Action.choices)
    period = forms.ChoiceField(choices=QuotaAdjustment.Period.choices)
    amount = forms.IntegerField(
        min_value=1, required=False, help_text="Top-ups: how many more requests to allow."
    )
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), max_length=2000)

    def clean(self) -> dict[str, Any]:
        """A top-up needs an amount."""
        data = super().clean() or {}
        if data.get("operation") == QuotaAdjustment.Action.TOP_UP and not data.get("amount"):
            self.add_error("amount", "Say how many requests to add.")
        return data


def _duration(seconds: float) -> str:
    total = int(seconds + 0.999)
    days, rest = divmod(total, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {secs}s" if minutes else f"{secs}s"


def _period_text(period: PeriodStatus | None) -> str:
    if period is None:
        return "-"
    return f"{period.used} used, {period.remaining} left of {period.limit}"


class _QuotaStatusAdmin(admin.ModelAdmin):
    """Consumers with today's and this month's usage, what remains and when it resets."""

    list_display_links = None
    actions = ["adjust_quota"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        """Consumers are added on their own pages."""
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Consumers are deleted on their own pages."""
        return False

    def _status(self, obj: User | ApiClient) -> QuotaStatus:
        cached: QuotaStatus | None = getattr(obj, "_quota_status", None)
        if cached is None:
            cached = quota_status(consumer=obj)
            obj._quota_status = cached  # type: ignore[union-attr]
        return cached

    @admin.display(description="quota")
    def quota(self, obj: User | ApiClient) -> str:
        """The consumer's daily/monthly allowance."""
        status = self._status(obj)
        if status.store_error:
            return "store unavailable"
        parts = []
        if status.day:
            parts.append(f"{status.day.limit}/day")
        if status.month:
            parts.append(f"{status.month.limit}/month")
        return ", ".join(parts) or "no quota"

    @admin.display(description="today (UTC)")
    def today(self, obj: User | ApiClient) -> str:
        """Requests today and what is left."""
        status = self._status(obj)
        if status.day:
            return _period_text(status.day)
        day, _ = usage_totals(
            kind=status.kind, identifier=status.identifier, today=timezone.now().date()
        )
        return f"{day} requests (history)"

    @admin.display(description="day resets in")
    def day_resets(self, obj: User | ApiClient) -> str:
        """Time until the daily quota resets."""
        day = self._status(obj).day
        return _duration(day.resets_in_seconds) if day else "-"

    @admin.display(description="this month (UTC)")
    def this_month(self, obj: User | ApiClient) -> str:
        """Requests this month and what is left."""
        status = self._status(obj)
        if status.month:
            return _period_text(status.month)
        _, month = usage_totals(
            kind=status.kind, identifier=status.identifier, today=timezone.now().date()
        )
        return f"{month} requests (history)"

    @admin.display(description="month resets in")
    def month_resets(self, obj: User | ApiClient) -> str:
        """Time until the monthly quota resets."""
        month = self._status(obj).month
        return _duration(month.resets_in_seconds) if month else "-"

    @admin.action(description="Reset or top up the quota of the selected consumers…")
    def adjust_quota(
        self, request: HttpRequest, queryset: QuerySet[Any]
    ) -> TemplateResponse | None:
        """Ask what and why, then reset or top up each selected consumer's quota."""
        form = AdjustQuotaForm(request.POST if "apply" in request.POST else None)
        if "apply" in request.POST and form.is_valid():
            data = form.cleaned_data
            top_up = data["amount"] if data["operation"] == QuotaAdjustment.Action.TOP_UP else None
            done = 0
            for consumer in queryset:
                status = self._status(consumer)
                try:
                    quota_adjust(
                        consumer_kind=status.kind,
                        consumer_id=status.identifier,
                        consumer_name=status.name,
                        period=data["period"],
                        top_up=top_up,
                        reason=data["reason"],
                        by=request.user,
                    )
                except StoreUnavailable:
                    self.message_user(
                        request, "The limit store is unavailable; nothing changed.", messages.ERROR
                    )
                    return None
                done += 1
            self.message_user(request, f"Quota adjusted for {done} consumer(s) and recorded.")
            return None
        return TemplateResponse(
            request,
            "admin/quotas/adjust_quota.html",
            {
                **self.admin_site.each_context(request),
                "title": "Reset or top up quotas",
                "form": form,
                "consumers": queryset,
                "opts": self.model._meta,
                "action_name": "adjust_quota",
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            },
        )


@admin.register(UserQuotaStatus)
class UserQuotaStatusAdmin(_QuotaStatusAdmin):
    """Users' quotas."""

    empty_state_hint = "Each user appears here with their quota and usage."
    empty_state_link = (reverse_lazy("admin:accounts_user_add"), "Add a user")

    list_display = ("username", "quota", "today", "day_resets", "this_month", "month_resets")
    search_fields = ("username",)


@admin.register(ClientQuotaStatus)
class ClientQuotaStatusAdmin(_QuotaStatusAdmin):
    """API clients' quotas."""

    empty_state_hint = "Each API client appears here with its quota and usage."
    empty_state_link = (reverse_lazy("admin:accounts_apiclient_add"), "Add an API client")

    list_display = ("name", "quota", "today", "day_resets", "this_month", "month_resets")
    search_fields = ("name",)
