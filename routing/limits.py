"""The proxy's limit rule: every rate limit and quota of a request, in one store call."""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from django.conf import settings

from accounts.identity import Principal
from gateway_project.hot_settings import hot_setting
from gateway_project.net import request_client_address
from quotas.errors import LimitStoreUnavailable, QuotaExceeded, RateLimitExceeded
from quotas.metrics import STORE_ERRORS
from quotas.policies import (
    MONTH,
    SLIDING_WINDOW,
    TOKEN_BUCKET,
    Policy,
    Verdict,
    consumer_key,
    effective_quota,
    month_seconds,
    quota_policies,
    rate_policy,
)
from quotas.store import PendingVerdict, StoreUnavailable, limit_store
from routing.table import CompiledQuota, CompiledRateLimit, CompiledRoute, route_tables

if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from routing.pipeline import RequestContext

logger = logging.getLogger("gateway.limits")


class _WarnEvery:
    """Lets a warning through at most once per interval (a dead Redis must not flood logs)."""

    def __init__(self) -> None:
        self._last = -math.inf
        self._lock = threading.Lock()

    def due(self, interval_seconds: float) -> bool:
        """Whether a warning may be logged now."""
        now = time.monotonic()
        with self._lock:
            if now - self._last < interval_seconds:
                return False
            self._last = now
            return True


_store_warning = _WarnEvery()


@lru_cache(maxsize=4096)
def _scope(route_id: int, spec: CompiledRateLimit) -> str:
    # The spec is part of the key: a changed limit starts fresh counters instead of
    # misreading the old ones.
    return f"r{route_id}.{spec.requests}.{spec.period_seconds}.{spec.burst}.{spec.algorithm[0]}"


def _identity(meta: Mapping[str, Any], consumer: Principal | None) -> tuple[str, str]:
    """(counter key, usage identity) of the caller: the consumer, or the client address."""
    if consumer is None or consumer.kind not in ("user", "client"):
        return consumer_key("anonymous", request_client_address(meta)), "anonymous"
    return consumer_key(consumer.kind, consumer.id), consumer.kind


def _quota(
    quotas: dict[tuple[str, str], CompiledQuota], consumer: Principal
) -> tuple[int | None, int | None]:
    own = quotas.get((consumer.kind, consumer.username))
    roles = [quotas[("role", role)] for role in consumer.roles if ("role", role) in quotas]
    return effective_quota(
        (own.per_day, own.per_month) if own else None,
        [(quota.per_day, quota.per_month) for quota in roles],
    )


def request_policies(context: RequestContext, route: CompiledRoute) -> tuple[list[Policy], str]:
    """The policies that apply to this request, and the consumer kind for usage counting."""
    consumer = context.principal
    key, kind = _identity(context.meta, consumer)
    policies: list[Policy] = []
    spec = route.rate_limit
    if spec is not None:
        policies.append(
            rate_policy(
                scope=_scope(route.id, spec),
                consumer_key=key,
                requests=spec.requests,
                period_seconds=spec.period_seconds,
                burst=spec.burst,
                algorithm=spec.algorithm,
            )
        )
    if consumer is not None and kind != "anonymous":
        quotas = route_tables.get().quotas
        if quotas:
            per_day, per_month = _quota(quotas, consumer)
            policies += quota_policies(consumer_key=key, per_day=per_day, per_month=per_month)
    return policies, kind


def _usage_field(context: RequestContext, route: CompiledRoute, kind: str) -> str:
    consumer = context.principal
    if kind == "anonymous" or consumer is None:
        # Anonymous callers are counted together: no per-address history (cardinality, privacy).
        return _usage_json("anonymous", "", "anonymous", route.id, route.name)
    return _usage_json(kind, consumer.id, consumer.username, route.id, route.name)


@lru_cache(maxsize=4096)
def _usage_json(kind: str, consumer_id: str, username: str, route_id: int, route_name: str) -> str:
    """The usage counter's field for one consumer on one route (the same few recur)."""
    return json.dumps([kind, consumer_id, username, route_id, route_name], separators=(",", ":"))


def _window(policy: Policy, now: float) -> int:
    return month_seconds(now) if policy.kind == MONTH else policy.window_seconds


def rate_limit_headers(verdict: Verdict) -> dict[str, str]:
    """RateLimit-Limit/-Remaining/-Reset (the tightest policy) and the IETF draft's fields."""
    tightest = verdict.tightest()
    if tightest is None:
        return {}
    # One loop for both lists: these are formatted for every limited request.
    policies, current = [], []
    for state in verdict.states:
        policy = state.policy
        policies.append(f'"{policy.name}";q={policy.limit};w={_window(policy, verdict.now)}')
        current.append(f'"{policy.name}";r={state.remaining};t={math.ceil(state.reset_seconds)}')
    return {
        "RateLimit-Limit": str(tightest.policy.limit),
        "RateLimit-Remaining": str(tightest.remaining),
        "RateLimit-Reset": str(math.ceil(tightest.reset_seconds)),
        "RateLimit-Policy": ", ".join(policies),
        "RateLimit": ", ".join(current),
    }


def _refusal(verdict: Verdict, headers: dict[str, str]) -> RateLimitExceeded | QuotaExceeded:
    exceeded = verdict.exceeded
    retry = max(1, math.ceil(verdict.retry_after_seconds))
    names = "; ".join(f'policy "{s.policy.name}" allows {s.policy.describe()}' for s in exceeded)
    quota = any(s.policy.kind not in (TOKEN_BUCKET, SLIDING_WINDOW) for s in exceeded)
    what = "Quota exceeded" if quota else "Rate limit exceeded"
    detail = f"{what}: {names}. Retry in {retry} s."
    error_class = QuotaExceeded if quota else RateLimitExceeded
    return error_class(detail, headers={**headers, "Retry-After": str(retry)})


def _explain(verdict: Verdict) -> str:
    parts = [
        f"{s.policy.name} ({s.policy.describe()}): {s.remaining} left, "
        f"resets in {math.ceil(s.reset_seconds)}s"
        for s in verdict.states
    ]
    outcome = "pass" if verdict.allowed else "429"
    return f"limits: {'; '.join(parts) or 'none'} -> {outcome} (dry run: nothing consumed)"


def _store_failed(context: RequestContext, policies: list[Policy], error: Exception) -> None:
    STORE_ERRORS.inc()
    closed = settings.GATEWAY_LIMITS_ON_REDIS_FAILURE == "closed" and bool(policies)
    if _store_warning.due(settings.GATEWAY_LIMITS_WARN_INTERVAL_MS / 1000):
        logger.warning(
            "limit store unavailable (%s); failing %s", error, "closed" if closed else "open"
        )
    context.note(
        f"limits: store unavailable -> {'503 (fail closed)' if closed else 'pass (fail open)'}"
    )
    if closed:
        context.limit_verdict = "store_unavailable_closed"
        raise LimitStoreUnavailable()
    context.limit_verdict = "store_unavailable_open"


@dataclass(frozen=True, slots=True)
class LimitCheck:
    """A request's limit check under way: begun by begin_limits, ended by settle_limits."""

    policies: list[Policy]
    pending: PendingVerdict


def check_limits(context: RequestContext) -> None:
    """Check and consume the route's rate limit and the consumer's quotas atomically.

    Returns when the request may pass; raises 429 (limits) or 503 (store down, failing closed).
    A dry run (explain) consumes nothing and records what it saw.
    """
    settle_limits(context, begin_limits(context))


def begin_limits(context: RequestContext) -> LimitCheck | None:
    """Send the request's limit check to the store (None when no limit applies).

    The caller must pass what this returns to settle_limits before anything of the request
    goes upstream; what it does in between overlaps the store's round trip.
    """
    route = context.route
    if route is None:
        raise RuntimeError("the limit step ran before match")
    policies, kind = request_policies(context, route)
    dry_run = context.dry_run
    tracking = hot_setting("GATEWAY_USAGE_TRACKING") and not dry_run
    usage = _usage_field(context, route, kind) if tracking else ""
    if not policies and not usage:
        context.limit_verdict = "unlimited"
        context.note("limits: none apply")
        return None
    pending = limit_store().begin_check(policies, consume=not dry_run, usage_field=usage)
    return LimitCheck(policies, pending)


def settle_limits(context: RequestContext, check: LimitCheck | None) -> None:
    """Take the verdict of a begun check: return when the request may pass, else raise 429
    (limits) or 503 (store down, failing closed)."""
    if check is None:
        return
    policies = check.policies
    try:
        verdict = check.pending.verdict()
    except StoreUnavailable as error:
        _store_failed(context, policies, error)
        return
    headers = rate_limit_headers(verdict) if _send_headers(context.route) else {}
    context.response_headers.update(headers)
    if context.dry_run:
        context.note(_explain(verdict))
    if verdict.allowed:
        context.limit_verdict = "allowed" if policies else "unlimited"
        return
    # The access log and gateway_limit_rejections_total{route,policy} read this.
    context.limit_verdict = "limited:" + ",".join(s.policy.name for s in verdict.exceeded)
    raise _refusal(verdict, headers)


def _send_headers(route: CompiledRoute | None) -> bool:
    spec = route.rate_limit if route is not None else None
    return spec.send_headers if spec is not None else True
