"""Looking an API key up is a read; recording its use is a separate, throttled write."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts import services
from accounts.authentication import authenticate_credential
from accounts.credential_cache import api_key_cache_key, cache_drop
from accounts.models import ApiClient, ApiKey
from accounts.selectors import api_key_match, principal_for_api_key
from accounts.services import api_key_create, api_key_use_record, forget_api_key_use

pytestmark = pytest.mark.django_db


@pytest.fixture
def key() -> tuple[ApiKey, str]:
    client = ApiClient.objects.create(name="batch")
    api_key, raw = api_key_create(client=client, name="prod")
    forget_api_key_use(api_key.pk)
    return api_key, raw


def _writes(queries: CaptureQueriesContext) -> list[str]:
    return [
        q["sql"] for q in queries.captured_queries if not q["sql"].lstrip().startswith("SELECT")
    ]


def test_the_lookup_selector_never_writes_even_on_a_cache_miss(key):
    api_key, raw = key
    cache_drop(api_key_cache_key(api_key.key_hash))
    with CaptureQueriesContext(connection) as queries:
        match = api_key_match(raw_key=raw)
        principal_for_api_key(raw_key=raw)
    assert match.key_id == api_key.pk
    assert match.principal.username == "batch"
    assert _writes(queries) == []
    assert ApiKey.objects.get(pk=api_key.pk).last_used_at is None


def test_authenticating_records_the_use_once_per_interval(key, monkeypatch):
    api_key, raw = key
    clock = [1000.0]
    monkeypatch.setattr(services.time, "monotonic", lambda: clock[0])
    authenticate_credential("api_key", raw)
    first = ApiKey.objects.get(pk=api_key.pk).last_used_at
    assert first is not None

    with CaptureQueriesContext(connection) as queries:
        clock[0] += services.LAST_USED_INTERVAL_SECONDS - 1
        authenticate_credential("api_key", raw)
    assert _writes(queries) == []  # inside the interval: served from the cache, nothing written

    clock[0] += 2
    with CaptureQueriesContext(connection) as queries:
        authenticate_credential("api_key", raw)
    assert len(_writes(queries)) == 1
    second = ApiKey.objects.get(pk=api_key.pk).last_used_at
    assert second is not None and second >= first


def test_a_dry_run_authenticates_without_recording(key):
    api_key, raw = key
    authenticate_credential("api_key", raw, record_use=False)
    assert ApiKey.objects.get(pk=api_key.pk).last_used_at is None


def test_a_failed_write_is_logged_not_raised(key, monkeypatch, caplog):
    api_key, _ = key

    def broken(*args, **kwargs):
        raise RuntimeError("database gone")

    monkeypatch.setattr(services.ApiKey.objects, "filter", broken)
    api_key_use_record(key_id=api_key.pk)
    assert "could not record last use" in caplog.text
