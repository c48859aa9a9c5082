"""`manage.py api_key`: create (shown once), list (never the secret), revoke."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from accounts.models import ApiKey
from accounts.selectors import principal_for_api_key
from tests.support.identity import api_client, role

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command("api_key", *args, stdout=out, stderr=StringIO())
    return out.getvalue().strip()


def test_created_key_works_and_is_listed_without_its_secret():
    api_client("batch", role("reader", "read:tasks"))

    key = run("create", "batch", "ci", "--expires-in", "720h")

    assert principal_for_api_key(raw_key=key).roles == {"reader"}
    assert ApiKey.objects.get().expires_at is not None
    listing = run("list", "batch")
    assert "batch/ci  active" in listing
    assert key not in listing


def test_revoked_key_is_refused():
    api_client("batch")
    key = run("create", "batch", "ci")

    run("revoke", ApiKey.objects.get().prefix)

    with pytest.raises(Exception, match="revoked"):
        principal_for_api_key(raw_key=key)
    assert "revoked" in run("list")


def test_unknown_client_is_an_error():
    with pytest.raises(CommandError, match="No API client"):
        run("create", "nobody", "ci")
