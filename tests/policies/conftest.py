"""Fixtures of the route-policy end-to-end tests: the policy upstream, a config, a gateway."""

from __future__ import annotations

import io
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from tests.policies.policy_upstream import PolicyUpstream, policy_upstream
from tests.support.gateway_server import GatewayServer

ALLOWED_ORIGIN = "http://app.test"


@pytest.fixture(scope="session")
def policy_servers() -> Iterator[PolicyUpstream]:
    """The upstream (HTTP and WebSocket) for the whole session."""
    with policy_upstream() as servers:
        yield servers


@pytest.fixture
def servers(policy_servers: PolicyUpstream) -> PolicyUpstream:
    """The session's upstream with its record cleared."""
    policy_servers.reset()
    return policy_servers


def policy_config(servers: PolicyUpstream) -> str:
    """A config file (CONTRACT section 2) giving a route to every policy."""
    return f"""
services:
  - name: pol
    url: {servers.http_url}
  - name: inv
    url: {servers.http_url}
    openapi: /openapi.json
  - name: inv31
    url: {servers.http_url}
    openapi: /openapi31.json
  - name: wsecho
    url: {servers.ws_url}
routes:
  - path: /cors/**
    service: pol
    authentication: required
    cors: {{origins: ["{ALLOWED_ORIGIN}"], methods: [GET, POST],
           headers: [Authorization, Content-Type, X-API-Key], expose_headers: [X-Request-ID],
           credentials: true, max_age: 10m}}
  - path: /open-cors/**
    service: pol
    authentication: none
    cors: {{origins: ["*"]}}
  - path: /hdr/**
    service: pol
    authentication: none
    request_headers: {{set: {{X-Api-Version: "2"}}, remove: [X-Debug]}}
    response_headers: {{set: {{Cache-Control: no-store}}, remove: [X-Powered-By]}}
  - path: /hidden/**
    service: pol
    authentication: required
    hide_credentials: true
  - path: /shown/**
    service: pol
    authentication: required
  - path: /ipallow/**
    service: pol
    authentication: none
    ip_allow: ["10.1.0.0/16"]
  - path: /ipdeny/**
    service: pol
    authentication: none
    ip_deny: ["10.9.0.0/16"]
  - path: /inv/**
    service: inv
    strip_prefix: true
    authentication: none
    validate: true
  - path: /inv31/**
    service: inv31
    strip_prefix: true
    authentication: none
    validate: true
  - path: /cached/**
    service: pol
    authentication: optional
    cache: {{ttl: 30s}}
  - path: /opencache/**
    service: pol
    authentication: none
    cache: {{ttl: 30s}}
  - path: /corscache/**
    service: pol
    authentication: none
    cors: {{origins: ["{ALLOWED_ORIGIN}"]}}
    cache: {{ttl: 30s}}
  - path: /ipdeny-mapped/**
    service: pol
    authentication: none
    ip_deny: ["::ffff:10.9.0.0/112"]
  - path: /ws/**
    service: wsecho
    authentication: required
    websocket: true
"""


def import_config(text: str) -> None:
    """Load a config file through `gateway import`, as a user would."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "gateway.yaml"
        path.write_text(text)
        call_command("gateway", "import", str(path), stdout=io.StringIO(), stderr=io.StringIO())


def remove_config() -> None:
    """Delete the services (and their routes) the policy config created."""
    from routing.models import Route, Service

    names = ["pol", "inv", "inv31", "wsecho"]
    Route.objects.filter(service__name__in=names).delete()
    Service.objects.filter(name__in=names).delete()


def api_key(name: str, *roles: Any) -> str:
    """A new API client (with `roles`) and a key; the raw key."""
    from accounts.models import ApiClient
    from accounts.services import api_key_create

    client = ApiClient.objects.create(name=name)
    client.roles.set(roles)
    return api_key_create(client=client, name=f"{name}-key")[1]


@contextmanager
def running_gateway(**env: str) -> Iterator[GatewayServer]:
    """A gunicorn gateway sharing the test database and Redis, stopped afterwards."""
    server = GatewayServer(**env)
    server.start()  # START_TIMEOUT_SECONDS: generous for a shared machine
    try:
        yield server
    finally:
        server.stop()
