"""The errors limits raise; the gateway's one handler renders them as problem+json."""

from __future__ import annotations

from gateway_project.errors import GatewayError


class RateLimitExceeded(GatewayError):
    """A route's rate limit refused the request (429, with Retry-After)."""

    status_code = 429
    default_code = "rate_limit_exceeded"
    default_detail = "Too many requests; slow down and retry later."
    title = "Too many requests"


class QuotaExceeded(GatewayError):
    """The consumer's daily or monthly quota is used up (429, with Retry-After)."""

    status_code = 429
    default_code = "quota_exceeded"
    default_detail = "The request quota is used up; retry after it resets."
    title = "Too many requests"


class LimitStoreUnavailable(GatewayError):
    """The limit counters cannot be reached and limits fail closed (503)."""

    status_code = 503
    default_code = "limit_store_unavailable"
    default_detail = "Rate limits cannot be checked right now; retry shortly."
    title = "Service unavailable"
