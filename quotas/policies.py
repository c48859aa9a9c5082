"""Limit policies, the store's verdict, and UTC calendar periods: plain values, no I/O."""

from __future__ import annotations

import calendar
import math
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import lru_cache

TOKEN_BUCKET = "token_bucket"  # noqa: S105 - an algorithm name, not a secret
SLIDING_WINDOW = "sliding_window"
DAY = "day"
MONTH = "month"
KINDS = (TOKEN_BUCKET, SLIDING_WINDOW, DAY, MONTH)

# Policy names as clients see them in RateLimit-Policy, RateLimit and 429 bodies.
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()

RATE_POLICY = "rate"
DAY_POLICY = "day"
MONTH_POLICY = "month"


@dataclass(frozen=True, slots=True)
class Policy:
    """One limit to check for one request: what kind, how much, and the counter's key."""

    name: str
    kind: str
    key: str  # store key without the gateway's namespace; quotas get ":<period>" appended
    limit: int  # bucket capacity (burst), window size in requests, or the period's quota
    requests: int = 0  # token bucket / sliding window: requests per period
    period_seconds: int = 0  # token bucket / sliding window: the period

    @property
    def window_seconds(self) -> int:
        """The `w` the IETF draft advertises: the time a full allowance takes to come back."""
        if self.kind == TOKEN_BUCKET:
            return math.ceil(self.limit * self.period_seconds / self.requests)
        if self.kind == SLIDING_WINDOW:
            return self.period_seconds
        if self.kind == DAY:
            return 86_400
        return 0  # a month's length varies: the headers code fills it in from the clock

    def describe(self) -> str:
        """A readable summary, e.g. '100 requests per 60s (burst 20)'."""
        if self.kind == TOKEN_BUCKET:
            text = f"{self.requests} requests per {_period_text(self.period_seconds)}"
            return text if self.limit == self.requests else f"{text} (burst {self.limit})"
        if self.kind == SLIDING_WINDOW:
            window = _period_text(self.period_seconds)
            return f"{self.requests} requests per sliding {window}"
        return f"{self.limit} requests per UTC {self.kind}"


def _period_text(seconds: int) -> str:
    return {1: "second", 60: "minute", 3600: "hour"}.get(seconds, f"{seconds}s")


@dataclass(frozen=True, slots=True)
class PolicyState:
    """Where one policy stands after (or, for a dry run, before) this request."""

    policy: Policy
    remaining: int
    reset_seconds: float  # until the allowance is whole again (next unit when exhausted)
    retry_after_seconds: float | None  # set when this policy refused the request


@dataclass(frozen=True, slots=True)
class Verdict:
    """The store's answer for one request: every policy's state, and whether it may pass."""

    allowed: bool
    states: tuple[PolicyState, ...]
    now: float  # the store's clock (seconds since the epoch) when it decided

    @property
    def exceeded(self) -> tuple[PolicyState, ...]:
        """The policies that refused the request."""
        return tuple(s for s in self.states if s.retry_after_seconds is not None)

    @property
    def retry_after_seconds(self) -> float:
        """How long until every refusing policy would let a request through."""
        return max((s.retry_after_seconds or 0.0 for s in self.exceeded), default=0.0)

    def tightest(self) -> PolicyState | None:
        """The state with the least remaining (the legacy RateLimit-* headers describe it)."""
        states = self.states
        if len(states) < 2:  # most requests: one policy (or none)
            return states[0] if states else None
        return min(states, key=lambda s: (s.remaining, -s.reset_seconds))


def rate_policy(
    *, scope: str, consumer_key: str, requests: int, period_seconds: int, burst: int, algorithm: str
) -> Policy:
    """A route's rate limit for one consumer; `scope` keeps routes' counters apart."""
    if algorithm == SLIDING_WINDOW:
        # A sliding window admits `requests` in any window of the period: no burst over it.
        return Policy(
            RATE_POLICY,
            SLIDING_WINDOW,
            f"rl:{scope}:{consumer_key}",
            requests,
            requests,
            period_seconds,
        )
    return Policy(
        RATE_POLICY,
        TOKEN_BUCKET,
        f"rl:{scope}:{consumer_key}",
        burst,
        requests,
        period_seconds,
    )


def quota_policies(
    *, consumer_key: str, per_day: int | None, per_month: int | None
) -> list[Policy]:
    """A consumer's daily and monthly quota policies (keys are per consumer, not per route)."""
    policies = []
    if per_day is not None:
        policies.append(Policy(DAY_POLICY, DAY, quota_key(consumer_key, DAY), per_day))
    if per_month is not None:
        policies.append(Policy(MONTH_POLICY, MONTH, quota_key(consumer_key, MONTH), per_month))
    return policies


def quota_key(consumer_key: str, kind: str) -> str:
    """The base key of a consumer's day or month quota counter (the period id is appended)."""
    return f"rl:q{kind[0]}:{consumer_key}"


def consumer_key(kind: str, identifier: str) -> str:
    """The counter identity of a consumer: `u:<id>`, `c:<id>`, or `a:<client address>`."""
    prefix = {"user": "u", "client": "c"}.get(kind, "a")
    return f"{prefix}:{identifier}"


def effective_quota(
    own: tuple[int | None, int | None] | None, roles: list[tuple[int | None, int | None]]
) -> tuple[int | None, int | None]:
    """The (per_day, per_month) that applies: the consumer's own quota, else its roles' largest."""
    if own is not None:
        return own
    days = [day for day, _ in roles if day is not None]
    months = [month for _, month in roles if month is not None]
    return (max(days) if days else None, max(months) if months else None)


# --- UTC calendar periods (the Lua script computes the same from Redis TIME) -------------------


def day_number(now: float) -> int:
    """Days since 1970-01-01 UTC."""
    return int(now // 86_400)


@lru_cache(maxsize=64)
def _month_of_day(day: int) -> tuple[int, float, int]:
    """(month id, end of month in epoch seconds, month length in seconds) of a day number."""
    today = date.fromordinal(_EPOCH_ORDINAL + day)
    next_year, next_month = (
        (today.year + 1, 1) if today.month == 12 else (today.year, today.month + 1)
    )
    end = datetime(next_year, next_month, 1, tzinfo=UTC).timestamp()
    length = calendar.monthrange(today.year, today.month)[1] * 86_400
    return today.year * 12 + today.month - 1, end, length


def month_number(now: float) -> int:
    """Months since year 0 (year * 12 + month - 1) of the UTC date at `now`."""
    return _month_of_day(day_number(now))[0]


def period_id(kind: str, now: float) -> int:
    """The id of the day or month containing `now`."""
    return day_number(now) if kind == DAY else month_number(now)


def period_end(kind: str, now: float) -> float:
    """Seconds since the epoch when the UTC day or month containing `now` ends."""
    if kind == DAY:
        return (day_number(now) + 1) * 86_400.0
    return _month_of_day(day_number(now))[1]


def month_seconds(now: float) -> int:
    """The length of the UTC month containing `now`, in seconds."""
    return _month_of_day(day_number(now))[2]
