"""The console's purge action empties a route's response cache; a viewer cannot run it."""

from __future__ import annotations

import time

import pytest
from django.contrib.auth.models import Group

from accounts.models import User
from audit.roles import VIEWER, ensure_console_groups
from routing.policies.cache import CachedAnswer, base_key, cache_store, lookup, store_answer

CHANGELIST = "/admin/routing/route/"


def _cached(route_id: int) -> str:
    key = base_key(
        version=1, route_id=route_id, method="GET", path="/p", query="", host="h", consumer=None
    )
    answer = CachedAnswer(status=200, headers=(), body=b"kept", stored_at=time.time())
    store_answer(cache_store(), key, answer=answer, vary=(), request_headers={}, ttl_seconds=60)
    return key


def test_superuser_purges_the_selected_routes(admin_client, make_route) -> None:
    route = make_route("/purge-me/**", "http://127.0.0.1:9")
    key = _cached(route.pk)
    response = admin_client.post(
        CHANGELIST, {"action": "purge_cached_answers", "_selected_action": [route.pk]}, follow=True
    )
    assert response.status_code == 200
    assert "Purged 1 cached entries of 1 route(s)." in response.content.decode()
    assert lookup(cache_store(), key, {}) is None


@pytest.mark.django_db
def test_viewer_cannot_purge(client, make_route) -> None:
    ensure_console_groups()
    viewer = User.objects.create_user(username="viewer-p", password="pw-viewer-1", is_staff=True)
    viewer.groups.add(Group.objects.get(name=VIEWER))
    client.force_login(viewer)
    route = make_route("/keep-me/**", "http://127.0.0.1:9")
    key = _cached(route.pk)
    client.post(CHANGELIST, {"action": "purge_cached_answers", "_selected_action": [route.pk]})
    assert lookup(cache_store(), key, {}) is not None
    cache_store().purge(f"rcache:{route.pk}:")
