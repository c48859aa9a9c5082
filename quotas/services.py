"""Writes of the quotas app: usage rollup, quota resets and top-ups."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from quotas.models import QuotaAdjustment, Usage, UsageFlush
from quotas.policies import consumer_key
from quotas.store import LimitStore, limit_store

logger = logging.getLogger("gateway.usage")

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_FLUSH_RECORDS_KEPT = timedelta(days=30)


@dataclass
class _Row:
    consumer_name: str
    route_name: str
    requests: int = 0
    rejected: int = 0


def _rows(counts: dict[str, int]) -> dict[tuple[date, str, str, int], _Row]:
    """Group a batch's `"<day>|<a|r>|<json>"` counts by (day, kind, consumer id, route id)."""
    rows: dict[tuple[date, str, str, int], _Row] = {}
    for field, count in counts.items():
        try:
            day_text, outcome, who = field.split("|", 2)
            kind, consumer_id, name, route_id, route_name = json.loads(who)
            day = date.fromordinal(_EPOCH_ORDINAL + int(day_text))
        except (ValueError, TypeError):
            logger.warning("skipping a malformed usage count %r", field)
            continue
        row = rows.setdefault((day, kind, consumer_id, int(route_id)), _Row(name, route_name))
        if outcome == "a":
            row.requests += count
        else:
            row.rejected += count
    return rows


def usage_flush(*, store: LimitStore | None = None) -> int:
    """Move pending usage counts from the store into Usage rows, exactly once; rows touched."""
    store = store or limit_store()
    touched = 0
    for batch in store.claim_usage():
        rows = _rows(batch.counts)
        with transaction.atomic():
            _, new_batch = UsageFlush.objects.get_or_create(batch_id=batch.batch_id)
            if new_batch:  # else a crash after commit left it in the store: already counted
                for (day, kind, consumer_id, route_id), row in rows.items():
                    usage, created = Usage.objects.get_or_create(
                        day=day,
                        consumer_kind=kind,
                        consumer_id=consumer_id,
                        route_id=route_id,
                        defaults={
                            "consumer_name": row.consumer_name,
                            "route_name": row.route_name,
                            "requests": row.requests,
                            "rejected": row.rejected,
                        },
                    )
                    if not created:
                        Usage.objects.filter(pk=usage.pk).update(
                            requests=F("requests") + row.requests,
                            rejected=F("rejected") + row.rejected,
                            consumer_name=row.consumer_name,
                            route_name=row.route_name,
                        )
                    touched += 1
        store.usage_flushed(batch.batch_id)
    UsageFlush.objects.filter(flushed_at__lt=timezone.now() - _FLUSH_RECORDS_KEPT).delete()
    return touched


def quota_adjust(
    *,
    consumer_kind: str,
    consumer_id: str,
    consumer_name: str,
    period: str,
    top_up: int | None,
    reason: str,
    by: Any,
    store: LimitStore | None = None,
) -> QuotaAdjustment:
    """Reset (top_up None) or top up a consumer's quota for the current period, and record it."""
    store = store or limit_store()
    store.adjust_quota(
        consumer_key=consumer_key(consumer_kind, consumer_id), kind=period, top_up=top_up
    )
    return QuotaAdjustment.objects.create(
        consumer_kind=consumer_kind,
        consumer_id=consumer_id,
        consumer_name=consumer_name,
        action=QuotaAdjustment.Action.RESET if top_up is None else QuotaAdjustment.Action.TOP_UP,
        period=period,
        amount=top_up,
        reason=reason,
        created_by=by if getattr(by, "pk", None) else None,
    )
