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
