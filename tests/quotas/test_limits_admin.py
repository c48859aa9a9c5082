"""The console: quotas editable, per-consumer status from the store, recorded resets/top-ups."""

from __future__ import annotations

import time

from django.utils import timezone

from accounts.models import ApiClient, Role, User
from accounts.services import api_key_create
from quotas.admin import _duration
from quotas.models import Quota, QuotaAdjustment, Usage
from quotas.policies import consumer_key, quota_policies
from quotas.services import usage_flush
from routing.table import route_tables

STATUS_URL = "/admin/quotas/userquotastatus/"
CLIENT_STATUS_URL = "/admin/quotas/clientquotastatus/"


def developer(username: str = "alice") -> User:
    role, _ = Role.objects.get_or_create(name="developer")
    Quota.objects.get_or_create(
        role=role, defaults={"requests_per_day": 10, "requests_per_month": 100}
    )
    user = User.objects.create(username=username)
    user.roles.add(role)
    return user


def use(store, user: User, times: int) -> None:
    policies = quota_policies(
        consumer_key=consumer_key("user", str(user.pk)), per_day=10, per_month=100
    )
    for _ in range(times):
        assert store.check(policies, consume=True).allowed


def remaining_today(store, user: User) -> int:
    policies = quota_policies(
        consumer_key=consumer_key("user", str(user.pk)), per_day=10, per_month=None
    )
    return store.check(policies, consume=False).states[0].remaining


def test_quotas_are_editable_in_the_console(admin_client):
    role = Role.objects.create(name="partner")
    assert admin_client.get("/admin/quotas/quota/add/").status_code == 200
    response = admin_client.post(
        "/admin/quotas/quota/add/",
        {"role": role.pk, "requests_per_day": "500", "requests_per_month": ""},
    )
    assert response.status_code == 302, response.content
    quota = Quota.objects.get(role=role)
    assert (quota.requests_per_day, quota.requests_per_month) == (500, None)


def test_consumer_page_shows_usage_remaining_and_reset_from_the_store(
    admin_client, fresh_limit_store
):
    alice = developer()
    use(fresh_limit_store, alice, 3)
    page = admin_client.get(STATUS_URL).content.decode()
    assert "10/day, 100/month" in page
    assert "3 used, 7 left of 10" in page
    assert "3 used, 97 left of 100" in page
    assert "Day resets in" in page
    now = time.time()
    to_midnight = 86_400 - now % 86_400
    candidates = {_duration(to_midnight), _duration(to_midnight - 2)}  # the page took a moment
    assert any(f'<td class="field-day_resets">{text}</td>' in page for text in candidates)


def test_consumers_without_a_quota_show_their_usage_history(admin_client):
    User.objects.create(username="bob")
    Usage.objects.create(
        day=timezone.now().date(),
        consumer_kind="user",
        consumer_id=str(User.objects.get(username="bob").pk),
        consumer_name="bob",
        route_id=1,
        route_name="ANY /x/**",
        requests=42,
    )
    page = admin_client.get(STATUS_URL).content.decode()
    assert "no quota" in page
    assert "42 requests (history)" in page


def test_top_up_raises_what_remains_and_is_recorded_with_who_and_why(
    admin_client, admin_user, fresh_limit_store
):
    alice = developer()
    use(fresh_limit_store, alice, 10)
    form = admin_client.post(STATUS_URL, {"action": "adjust_quota", "_selected_action": [alice.pk]})
    assert form.status_code == 200 and b"reason" in form.content
    response = admin_client.post(
        STATUS_URL,
        {
            "action": "adjust_quota",
            "_selected_action": [alice.pk],
            "apply": "1",
            "operation": "top_up",
            "period": "day",
            "amount": "5",
            "reason": "Demo for the board",
        },
    )
    assert response.status_code == 302
    assert remaining_today(fresh_limit_store, alice) == 5
    record = QuotaAdjustment.objects.get()
    assert (record.consumer_kind, record.consumer_id, record.consumer_name) == (
        "user",
        str(alice.pk),
        "alice",
    )
    assert (record.action, record.period, record.amount) == ("top_up", "day", 5)
    assert record.created_by == admin_user and record.reason == "Demo for the board"


def test_reset_clears_the_period_and_needs_a_reason(admin_client, fresh_limit_store):
    alice = developer()
    use(fresh_limit_store, alice, 4)
    post = {
        "action": "adjust_quota",
        "_selected_action": [alice.pk],
        "apply": "1",
        "operation": "reset",
        "period": "day",
    }
    without_reason = admin_client.post(STATUS_URL, post)
    assert without_reason.status_code == 200  # the form again, with its error
    assert remaining_today(fresh_limit_store, alice) == 6
    assert admin_client.post(STATUS_URL, {**post, "reason": "false alarm"}).status_code == 302
    assert remaining_today(fresh_limit_store, alice) == 10
    assert QuotaAdjustment.objects.get().action == "reset"


def test_client_quota_page_and_usage_history_pages_load(admin_client):
    ApiClient.objects.create(name="batch")
    assert b"batch" in admin_client.get("/admin/quotas/clientquotastatus/").content
    assert admin_client.get("/admin/quotas/usage/").status_code == 200
    assert admin_client.get("/admin/quotas/quotaadjustment/").status_code == 200


def test_client_quotas_count_the_requests_its_api_keys_made(
    client, admin_client, make_route, upstream, fresh_limit_store
):
    """The proxy knows a client by its name (its keys' principal): the page must too."""
    batch = ApiClient.objects.create(name="batch")
    raw_key = api_key_create(client=batch, name="ci")[1]
    make_route("/api/v1/batch/**", upstream.url, authentication="required")
    for _ in range(3):
        assert client.get("/api/v1/batch/x", HTTP_X_API_KEY=raw_key).status_code == 200
    usage_flush()
    assert "3 requests (history)" in admin_client.get(CLIENT_STATUS_URL).content.decode()

    Quota.objects.create(client=batch, requests_per_day=10)
    route_tables.reset()  # the test's transaction never commits, so no config version bump
    assert client.get("/api/v1/batch/x", HTTP_X_API_KEY=raw_key).status_code == 200
    assert "1 used, 9 left of 10" in admin_client.get(CLIENT_STATUS_URL).content.decode()


def test_reset_times_read_as_days_hours_minutes_or_seconds():
    assert [_duration(s) for s in (0.2, 59, 61, 3700, 90_000)] == [
        "1s",
        "59s",
        "1m 1s",
        "1h 1m",
        "1d 1h",
    ]
