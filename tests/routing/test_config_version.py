"""The config version: bumped once per committed change, never behind what Redis published."""

from __future__ import annotations

import pytest

from gateway_project.redis import redis_client, redis_key
from routing.config_version import current_version, database_version
from routing.models import ConfigVersion, Route, Service
from routing.table import RouteTableHolder
from tests.support.clock import FrozenClock

pytestmark = pytest.mark.django_db(transaction=True)


def test_one_committed_transaction_bumps_the_version_once():
    before = current_version()
    from django.db import transaction

    with transaction.atomic():
        service = Service.objects.create(name="one", url="http://127.0.0.1:9001")
        service.description = "changed twice in one transaction"
        service.save()
    assert current_version() == before + 1
    assert database_version() == before + 1


def test_version_never_goes_below_what_redis_published():
    client = redis_client()
    if client is None:
        pytest.skip("needs a real Redis: set REDIS_URL (CI does)")
    client.set(redis_key("config_version"), 41)
    ConfigVersion.objects.all().delete()  # a restored database starts lower
    Service.objects.create(name="two", url="http://127.0.0.1:9001")
    assert current_version() == 42
    assert database_version() == 42


def test_a_committed_change_is_served_once_the_poll_interval_has_passed_and_not_before(
    settings,
):
    settings.GATEWAY_CONFIG_POLL_MS = 1000
    clock = FrozenClock(1000.0)
    holder = RouteTableHolder(monotonic=clock)
    before = holder.get()
    service = Service.objects.create(name="polled", url="http://127.0.0.1:9001")
    Route.objects.create(path="/polled/**", service=service, authentication="none")
    clock.advance(0.999)
    assert holder.get() is before  # within the interval: no version check, no recompile
    clock.advance(0.002)
    after = holder.get()
    assert after.version > before.version
    assert [r.service.name for r in after.routes if r.service.name == "polled"] == ["polled"]
