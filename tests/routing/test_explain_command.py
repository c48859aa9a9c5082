"""`gateway explain` says when it cannot see the running gateway's counters (no Redis)."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from routing.management.commands.gateway import EXPLAIN_WITHOUT_REDIS

pytestmark = pytest.mark.django_db


def _explain() -> str:
    stdout = io.StringIO()
    call_command("gateway", "explain", "GET", "/nowhere", stdout=stdout)
    return stdout.getvalue()


def test_without_redis_the_report_says_its_counts_are_not_the_gateways(settings):
    settings.REDIS_URL = ""
    text = _explain()
    assert EXPLAIN_WITHOUT_REDIS in text
    assert "POST /api/gateway/explain/" in text


def test_with_redis_the_counts_are_shared_and_no_note_is_printed(settings):
    settings.REDIS_URL = "redis://127.0.0.1:6379/8"
    assert "REDIS_URL is not set" not in _explain()


def test_explain_runs_the_proxys_steps_without_consuming_quota(make_route, upstream, gateway):
    make_route("/once/**", upstream.url, rate_limit_requests=1)
    for _ in range(3):
        stdout = io.StringIO()
        call_command("gateway", "explain", "GET", "/once/echo", stdout=stdout)
        lines = stdout.getvalue().splitlines()
        assert "route:      /once/** (methods: any)" in lines
        assert "  auth: none (credentials ignored)" in lines
        assert any(line.startswith("  limits: rate") and "-> pass" in line for line in lines)
        assert "verdict:    200 forwarded to the upstream" in lines
    assert upstream.received == []
    assert gateway.get("/once/echo").status_code == 200  # the one request the limit allows
    assert gateway.get("/once/echo").status_code == 429
