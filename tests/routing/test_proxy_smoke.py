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


def test_the_gateway_fixture_serves_proxied_paths_by_the_lean_handler(gateway, client, db):
    # The full stack's session and clickjacking middleware mark the gateway's own answers;
    # the lean proxy handler adds neither to a proxied path's error.
    full = client.get("/nowhere/at-all")
    lean = gateway.get("/nowhere/at-all")
    assert full.status_code == lean.status_code == 404
    assert "X-Frame-Options" in full
    assert "X-Frame-Options" not in lean
    assert lean["Content-Type"] == "application/problem+json"
    assert lean["X-Request-ID"] == json.loads(lean.content)["request_id"]
