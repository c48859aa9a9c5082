"""Limits through the proxy: headers, 429s, keys, quotas per consumer, explain."""

from __future__ import annotations

import ipaddress
import json

from accounts.models import ApiClient, Role, User
from quotas.models import Quota
from quotas.store import use_store
from routing.explain import explain_request
from tests.quotas.conftest import consumer_header


def limited_route(make_route, upstream, path="/api/v1/lim/**", **limit):
    fields = {f"rate_limit_{name}": value for name, value in limit.items()}
    return make_route(path, upstream.url, **fields)


def test_limited_route_answers_with_the_ratelimit_headers(client, make_route, upstream):
    limited_route(make_route, upstream, requests=60, period="minute", burst=3)
    response = client.get("/api/v1/lim/echo")
    assert response.status_code == 200
    assert response["RateLimit-Limit"] == "3"
    assert response["RateLimit-Remaining"] == "2"
    assert response["RateLimit-Reset"] == "1"  # one token back per second
    assert response["RateLimit-Policy"] == '"rate";q=3;w=3'
    assert response["RateLimit"] == '"rate";r=2;t=1'
    assert "Retry-After" not in response


def test_request_over_the_limit_is_refused_with_429_problem_and_retry_after(
    client, make_route, upstream
):
    limited_route(make_route, upstream, requests=2, period="hour")
    statuses = [client.get("/api/v1/lim/echo").status_code for _ in range(2)]
    refused = client.get("/api/v1/lim/echo")
    assert statuses == [200, 200]
    assert refused.status_code == 429
    assert refused["Content-Type"] == "application/problem+json"
    body = json.loads(refused.content)
    assert body["status"] == 429
    assert body["code"] == "rate_limit_exceeded"
    assert '"rate"' in body["detail"] and "2 requests per hour" in body["detail"]
    assert refused["Retry-After"] == "1800"  # the next token, at 2 per hour
    assert refused["RateLimit-Remaining"] == "0"
    assert refused["RateLimit"] == '"rate";r=0;t=1800'
    assert upstream.count("/api/v1/lim/") == 2


def test_route_setting_hides_the_headers_but_a_429_keeps_retry_after(client, make_route, upstream):
    limited_route(make_route, upstream, requests=1, period="hour", headers=False)
    passed = client.get("/api/v1/lim/echo")
    refused = client.get("/api/v1/lim/echo")
    assert passed.status_code == 200 and refused.status_code == 429
    for response in (passed, refused):
        assert not [name for name in response.headers if name.lower().startswith("ratelimit")]
    assert refused["Retry-After"] == "3600"


def test_route_without_limits_sends_no_ratelimit_headers(client, make_route, upstream):
    make_route("/api/v1/open/**", upstream.url)
    response = client.get("/api/v1/open/echo")
    assert response.status_code == 200
    assert "RateLimit-Limit" not in response and "RateLimit" not in response


def test_spoofed_forwarded_for_never_changes_an_anonymous_callers_key(client, make_route, upstream):
    limited_route(make_route, upstream, requests=1, period="hour")
    assert client.get("/api/v1/lim/echo").status_code == 200
    spoofed = client.get("/api/v1/lim/echo", HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert spoofed.status_code == 429


def test_clients_behind_a_trusted_proxy_are_limited_each_by_their_own_address(
    client, make_route, upstream, settings
):
    settings.GATEWAY_TRUSTED_PROXIES = (ipaddress.ip_network("127.0.0.1/32"),)
    limited_route(make_route, upstream, requests=1, period="hour")
    first = client.get("/api/v1/lim/echo", HTTP_X_FORWARDED_FOR="203.0.113.9")
    second = client.get("/api/v1/lim/echo", HTTP_X_FORWARDED_FOR="198.51.100.7")
    again = client.get("/api/v1/lim/echo", HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert [first.status_code, second.status_code, again.status_code] == [200, 200, 429]


def test_sliding_window_route_refuses_past_n_and_advertises_its_window(
    client, make_route, upstream
):
    limited_route(make_route, upstream, requests=2, period="minute", algorithm="sliding_window")
    responses = [client.get("/api/v1/lim/echo") for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 429]
    assert responses[0]["RateLimit-Policy"] == '"rate";q=2;w=60'
    assert 59 <= int(responses[2]["Retry-After"]) <= 60


def test_role_quota_counts_each_consumer_separately(client, make_route, upstream, consumers):
    make_route("/api/v1/q/**", upstream.url)
    Quota.objects.create(role=Role.objects.create(name="developer"), requests_per_day=2)
    alice = consumer_header("user", "11", "alice", "developer")
    bob = consumer_header("user", "12", "bob", "developer")
    statuses = [
        client.get("/api/v1/q/echo", HTTP_X_TEST_CONSUMER=alice).status_code for _ in range(3)
    ]
    assert statuses == [200, 200, 429]
    refused = client.get("/api/v1/q/echo", HTTP_X_TEST_CONSUMER=alice)
    assert json.loads(refused.content)["code"] == "quota_exceeded"
    assert '"day"' in json.loads(refused.content)["detail"]
    assert int(refused["Retry-After"]) == int(refused["RateLimit-Reset"])
    for_bob = client.get("/api/v1/q/echo", HTTP_X_TEST_CONSUMER=bob)
    assert for_bob.status_code == 200
    assert for_bob["RateLimit-Policy"] == '"day";q=2;w=86400'
    assert for_bob["RateLimit-Remaining"] == "1"


def test_anonymous_callers_have_no_quota(client, make_route, upstream, consumers):
    make_route("/api/v1/q/**", upstream.url)
    Quota.objects.create(role=Role.objects.create(name="developer"), requests_per_day=1)
    statuses = [client.get("/api/v1/q/echo").status_code for _ in range(3)]
    assert statuses == [200, 200, 200]


def test_own_quota_overrides_role_quotas_and_clients_have_quotas_too(
    client, make_route, upstream, consumers
):
    make_route("/api/v1/q/**", upstream.url)
    role = Role.objects.create(name="developer")
    Quota.objects.create(role=role, requests_per_day=1)
    Quota.objects.create(user=User.objects.create(username="carol"), requests_per_day=3)
    Quota.objects.create(client=ApiClient.objects.create(name="batch"), requests_per_month=2)
    carol = consumer_header("user", "21", "carol", "developer")
    batch = consumer_header("client", "5", "batch", "developer")
    carol_statuses = [
        client.get("/api/v1/q/echo", HTTP_X_TEST_CONSUMER=carol).status_code for _ in range(4)
    ]
    batch_statuses = [
        client.get("/api/v1/q/echo", HTTP_X_TEST_CONSUMER=batch).status_code for _ in range(3)
    ]
    assert carol_statuses == [200, 200, 200, 429]
    assert batch_statuses == [200, 200, 429]


def test_rate_limit_and_quotas_are_all_listed_and_legacy_headers_follow_the_tightest(
    client, make_route, upstream, consumers
):
    limited_route(make_route, upstream, requests=10, period="minute")
    Quota.objects.create(
        role=Role.objects.create(name="developer"), requests_per_day=500, requests_per_month=3
    )
    who = consumer_header("user", "31", "dave", "developer")
    response = client.get("/api/v1/lim/echo", HTTP_X_TEST_CONSUMER=who)
    policy = response["RateLimit-Policy"]
    assert policy.startswith('"rate";q=10;w=60, "day";q=500;w=86400, "month";q=3;w=')
    assert response["RateLimit"].startswith('"rate";r=9;t=6, "day";r=499;t=')
    assert response["RateLimit-Limit"] == "3"  # the month quota has the least left
    assert response["RateLimit-Remaining"] == "2"


def test_explain_reports_the_limits_and_consumes_nothing(client, make_route, upstream):
    limited_route(make_route, upstream, requests=1, period="hour")
    for _ in range(3):
        report = explain_request(method="GET", path="/api/v1/lim/echo", headers={})
        assert report.allowed
        assert any(step.startswith("limits: rate") and "-> pass" in step for step in report.steps)
    assert client.get("/api/v1/lim/echo").status_code == 200
    report = explain_request(method="GET", path="/api/v1/lim/echo", headers={})
    assert report.status == 429
    assert any("-> 429" in step for step in report.steps)


def test_a_limited_request_in_steady_state_makes_no_database_query(
    client, make_route, upstream, consumers, django_assert_num_queries
):
    limited_route(make_route, upstream, requests=100, period="minute")
    Quota.objects.create(role=Role.objects.create(name="developer"), requests_per_day=100)
    who = consumer_header("user", "41", "erin", "developer")
    assert client.get("/api/v1/lim/echo", HTTP_X_TEST_CONSUMER=who).status_code == 200
    with django_assert_num_queries(0):
        response = client.get("/api/v1/lim/echo", HTTP_X_TEST_CONSUMER=who)
    assert response["RateLimit-Remaining"] == "98"


def test_a_per_second_bucket_gives_the_token_back_after_a_second(
    client, make_route, upstream, store_factory, clock
):
    # The store runs on a frozen clock (in production: Redis TIME, or this process's clock),
    # so the refill is crossed exactly instead of slept past.
    use_store(store_factory(clock))
    limited_route(make_route, upstream, requests=1, period="second")
    assert client.get("/api/v1/lim/echo").status_code == 200
    refused = client.get("/api/v1/lim/echo")
    assert refused.status_code == 429 and refused["Retry-After"] == "1"
    clock.advance(0.9)
    assert client.get("/api/v1/lim/echo").status_code == 429  # nine tenths of a token
    clock.advance(0.1)
    assert client.get("/api/v1/lim/echo").status_code == 200
    assert client.get("/api/v1/lim/echo").status_code == 429


def test_gateway_errors_after_the_limit_check_carry_the_ratelimit_headers(client, make_route):
    make_route("/api/v1/gone/**", "http://127.0.0.1:9", rate_limit_requests=5)
    response = client.get("/api/v1/gone/echo")
    assert response.status_code == 502
    assert response["RateLimit-Limit"] == "5"
    assert response["RateLimit-Remaining"] == "4"
