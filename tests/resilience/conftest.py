"""Fixtures for the resilience tests: extra upstream servers that tests stop, slow and break."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.upstream import ReceivedRequest, UpstreamServer, _Aborted


class SlowableUpstream(UpstreamServer):
    """An upstream whose every answer can be delayed, and whose /health can be made to fail."""

    delay_seconds = 0.0
    health_broken = False

    def _record(self, req: ReceivedRequest) -> None:
        super()._record(req)
        if self.health_broken and req.path.endswith("/health"):
            raise _Aborted  # the connection is dropped without an answer
        if self.delay_seconds:
            time.sleep(self.delay_seconds)


@pytest.fixture
def upstreams() -> Iterator[list[SlowableUpstream]]:
    """Three fresh upstream servers on loopback, stopped after the test."""
    servers = [SlowableUpstream(f"upstream-{name}") for name in ("a", "b", "c")]
    for server in servers:
        server.start()
    yield servers
    for server in servers:
        server.stop()


@pytest.fixture
def make_service(db: Any) -> Any:
    """Factory: a service over `targets` ([(url, weight)...]) with one route `/<name>/**`."""
    from routing.models import Route, Service, Target
    from routing.table import route_tables

    def factory(
        name: str,
        targets: list[tuple[str, int]],
        *,
        route_fields: dict[str, Any] | None = None,
        **service_fields: Any,
    ) -> Service:
        service = Service.objects.create(name=name, **service_fields)
        for url, weight in targets:
            Target.objects.create(service=service, url=url, weight=weight)
        fields = {"authentication": Route.Authentication.NONE, **(route_fields or {})}
        Route.objects.create(path=f"/{name}/**", service=service, strip_prefix=True, **fields)
        route_tables.reset()
        return service

    return factory
