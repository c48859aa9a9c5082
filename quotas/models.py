"""Quotas: how many requests a role, user or API client may make per UTC day or month."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from accounts.models import ApiClient, Role, User
from audit.models import tracked


class Quota(models.Model):
    """A per-day and/or per-month request allowance for exactly one role, user or client."""

    role = models.ForeignKey(Role, null=True, blank=True, on_delete=models.CASCADE)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE
    )
    client = models.ForeignKey(ApiClient, null=True, blank=True, on_delete=models.CASCADE)
    requests_per_day = models.PositiveIntegerField(
        null=True, blank=True, help_text="Requests allowed per calendar day (UTC)."
    )
    requests_per_month = models.PositiveIntegerField(
        null=True, blank=True, help_text="Requests allowed per calendar month (UTC)."
    )

    history = tracked()

    class Meta:
        constraints = [
            models.CheckConstraint(
                name="quota_has_exactly_one_subject",
                condition=(
                    Q(role__isnull=False, user__isnull=True, client__isnull=True)
                    | Q(role__isnull=True, user__isnull=False, client__isnull=True)
                    | Q(role__isnull=True, user__isnull=True, client__isnull=False)
                ),
            ),
            models.CheckConstraint(
                name="quota_has_a_limit",
                condition=Q(requests_per_day__isnull=False) | Q(requests_per_month__isnull=False),
            ),
            models.UniqueConstraint(fields=["role"], name="one_quota_per_role"),
            models.UniqueConstraint(fields=["user"], name="one_quota_per_user"),
            models.UniqueConstraint(fields=["client"], name="one_quota_per_client"),
        ]

    def __str__(self) -> str:
        kind, name = self.subject
        return f"quota for {kind} {name}"

    @property
    def subject(self) -> tuple[str, str]:
        """The (kind, name) this quota applies to, e.g. ("role", "developer")."""
        if self.role_id:
            return ("role", self.role.name)  # type: ignore[union-attr]
        if self.user_id:
            return ("user", self.user.get_username())  # type: ignore[union-attr]
        return ("client", self.client.name)  # type: ignore[union-attr]


class Usage(models.Model):
    """How many requests one consumer sent to one route on one UTC day (rolled up, not live)."""

    day = models.DateField(help_text="The UTC day.")
    consumer_kind = models.CharField(max_length=10, help_text="user, client or anonymous.")
    consumer_id = models.CharField(max_length=150, blank=True)
    consumer_name = models.CharField(max_length=150)
    route_id = models.PositiveIntegerField(help_text="The route's id when counted.")
    route_name = models.CharField(max_length=300, help_text="Methods and path of the route.")
    requests = models.PositiveBigIntegerField(default=0, help_text="Requests let through.")
    rejected = models.PositiveBigIntegerField(default=0, help_text="Requests refused with 429.")

    class Meta:
        verbose_name_plural = "usage"
        ordering = ["-day", "consumer_kind", "consumer_name", "route_name"]
        constraints = [
            models.UniqueConstraint(
                fields=["day", "consumer_kind", "consumer_id", "route_id"],
                name="one_usage_row_per_consumer_route_day",
            )
        ]
        indexes = [models.Index(fields=["consumer_kind", "consumer_id", "day"])]

    def __str__(self) -> str:
        return f"{self.day} {self.consumer_kind} {self.consumer_name} {self.route_name}"


class UsageFlush(models.Model):
    """A usage batch already written, so a flush retried after a crash never counts twice."""

    batch_id = models.CharField(max_length=32, unique=True)
    flushed_at = models.DateTimeField(auto_now_add=True, db_index=True)

    def __str__(self) -> str:
        return f"usage batch {self.batch_id}"


class QuotaAdjustment(models.Model):
    """A reset or top-up of one consumer's quota by an admin: who, when, why."""

    class Action(models.TextChoices):
        RESET = "reset", "Reset the period's count"
        TOP_UP = "top_up", "Top up (grant more requests this period)"

    class Period(models.TextChoices):
        DAY = "day", "Today (UTC)"
        MONTH = "month", "This month (UTC)"

    consumer_kind = models.CharField(max_length=10)
    consumer_id = models.CharField(max_length=150)
    consumer_name = models.CharField(max_length=150)
    action = models.CharField(max_length=10, choices=Action.choices)
    period = models.CharField(max_length=10, choices=Period.choices)
    amount = models.PositiveIntegerField(null=True, blank=True, help_text="Top-ups only.")
    reason = models.TextField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.get_action_display()} for {self.consumer_kind} {self.consumer_name}"


class UserQuotaStatus(User):
    """Users seen through their quotas (a console page; no table of its own)."""

    class Meta:
        proxy = True
        verbose_name = "user quota"
        verbose_name_plural = "user quotas"


class ClientQuotaStatus(ApiClient):
    """API clients seen through their quotas (a console page; no table of its own)."""

    class Meta:
        proxy = True
        verbose_name = "client quota"
        verbose_name_plural = "client quotas"
