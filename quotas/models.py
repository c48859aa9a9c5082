"""Quotas: how many requests a role, user or API client may make per UTC day or month."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from accounts.models import ApiClient, Role


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
