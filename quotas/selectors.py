"""Reads of the quotas app: a consumer's quota and where it stands."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from django.db.models import Sum

from accounts.models import ApiClient, User
from quotas.models import Quota, Usage
from quotas.policies import DAY, consumer_key, effective_quota, quota_policies
from quotas.store import LimitStore, StoreUnavailable, limit_store


@dataclass(frozen=True)
class PeriodStatus:
    """One quota period of one consumer: its limit, what is left and when it resets."""

    limit: int
    remaining: int
    resets_in_seconds: float

    @property
    def used(self) -> int:
        """Requests counted against the limit (top-ups lower it)."""
        return max(0, self.limit - self.remaining)


@dataclass(frozen=True)
class QuotaStatus:
    """A consumer's quota as the console shows it."""

    kind: str
    identifier: str
    name: str
    day: PeriodStatus | None
    month: PeriodStatus | None
    store_error: bool = False


def consumer_identity(consumer: User | ApiClient) -> tuple[str, str, str]:
    """(kind, id, name) of a user or API client, as the proxy identifies its consumers.

    A client's id is its name, not its primary key: the principal of its API keys and
    client-credentials tokens carries the name (accounts.selectors.principal_for_client), and
    its counters and usage rows are keyed by it.
    """
    if isinstance(consumer, ApiClient):
        return "client", consumer.name, consumer.name
    return "user", str(consumer.pk), consumer.get_username()


def consumer_quota(*, consumer: User | ApiClient) -> tuple[int | None, int | None]:
    """The (per_day, per_month) quota that applies to a user or client (own, else roles')."""
    field = "client" if isinstance(consumer, ApiClient) else "user"
    own = Quota.objects.filter(**{field: consumer}).first()
    role_quotas = Quota.objects.filter(role__in=consumer.roles.all())
    return effective_quota(
        (own.requests_per_day, own.requests_per_month) if own else None,
        [(quota.requests_per_day, quota.requests_per_month) for quota in role_quotas],
    )


def quota_status(*, consumer: User | ApiClient, store: LimitStore | None = None) -> QuotaStatus:
    """Today's and this month's quota of a consumer, read from the store without consuming."""
    kind, identifier, name = consumer_identity(consumer)
    per_day, per_month = consumer_quota(consumer=consumer)
    policies = quota_policies(
        consumer_key=consumer_key(kind, identifier), per_day=per_day, per_month=per_month
    )
    if not policies:
        return QuotaStatus(kind, identifier, name, None, None)
    try:
        verdict = (store or limit_store()).check(policies, consume=False)
    except StoreUnavailable:
        return QuotaStatus(kind, identifier, name, None, None, store_error=True)
    periods = {
        state.policy.kind: PeriodStatus(state.policy.limit, state.remaining, state.reset_seconds)
        for state in verdict.states
    }
    return QuotaStatus(kind, identifier, name, periods.get(DAY), periods.get("month"))


def usage_totals(*, kind: str, identifier: str, today: date) -> tuple[int, int]:
    """(today's, this month's) flushed request counts of a consumer from the usage history."""
    rows = Usage.objects.filter(
        consumer_kind=kind, consumer_id=identifier, day__gte=today.replace(day=1)
    )
    month = rows.aggregate(total=Sum("requests"))["total"] or 0
    day = rows.filter(day=today).aggregate(total=Sum("requests"))["total"] or 0
    return day, month
