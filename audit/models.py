"""What every history row carries besides simple-history's own columns."""

from __future__ import annotations

from typing import Any

from django.db import models
from simple_history.models import HistoricalRecords


class ChangeSetFields(models.Model):
    """The change set a history row belongs to: one console save, API call, import or rollback."""

    change_set = models.CharField(max_length=32, blank=True, default="", db_index=True)

    class Meta:
        abstract = True


def history_user(request: Any = None, **kwargs: Any) -> Any:
    """The signed-in console account, if any: a token principal is no User row to point at."""
    from django.contrib.auth import get_user_model

    user = getattr(request, "user", None)
    return user if isinstance(user, get_user_model()) else None


def tracked(
    *, m2m_fields: tuple[str, ...] = (), excluded: tuple[str, ...] = ()
) -> HistoricalRecords:
    """History for a config model: who, when, why, which change set, and its m2m fields."""
    return HistoricalRecords(
        bases=[ChangeSetFields],
        history_change_reason_field=models.TextField(null=True, blank=True),
        m2m_fields=list(m2m_fields),
        excluded_fields=list(excluded),
        get_user=history_user,
    )
