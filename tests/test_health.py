"""Liveness and readiness."""

from __future__ import annotations

import json

import pytest
import redis

from tests.support.gateway_server import free_port

pytestmark = pytest.mark.django_db


def test_liveness_answers_ok(client):
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readiness_checks_the_database_and_redis(client, settings):
    response = client.get("/health/ready")
    assert response.status_code == 200
    checks = response.json()["checks"]
    assert checks["database"] == "ok"
    assert ("redis" in checks) == bool(settings.REDIS_URL)


def test_readiness_is_503_naming_redis_when_redis_is_down(client, monkeypatch):
    dead = redis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.2)
    monkeypatch.setattr("gateway_project.health.redis_client", lambda: dead)
    response = client.get("/health/ready")
    assert response.status_code == 503
    assert response["Content-Type"] == "application/problem+json"
    body = json.loads(response.content)
    assert body["checks"]["redis"] == "unavailable"
    assert "redis" in body["detail"]
