"""Prometheus metrics of the limiter (registered in the default registry)."""

from __future__ import annotations

from prometheus_client import Counter

STORE_ERRORS = Counter(
    "gateway_limit_store_errors_total",
    "Limit checks that could not reach the counter store (Redis).",
)
USAGE_FLUSH_ERRORS = Counter(
    "gateway_usage_flush_errors_total",
    "Usage flushes that failed (the counts stay pending and are retried).",
)
