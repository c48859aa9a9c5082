"""A first request through the proxy to a real upstream."""

from __future__ import annotations

import json


def test_get_is_forwarded_to_the_upstream(gateway, make_route, upstream):
    make_route("/api/v1/rd/**", upstream.url)
    response = gateway.get("/api/v1/rd/echo/tasks?x=1")
    assert response.status_code == 200, response.content
    body = json.loads(response.content)
    assert body["path"] == "/api/v1/rd/echo/tasks"
    assert body["query"] == "x=1"
