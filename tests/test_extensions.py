"""What the apps register with gateway_project (extensions.py) once Django has started."""

from __future__ import annotations

import pytest
from django.http import HttpResponse

from gateway_project import extensions
from quotas.flusher import start_background_flusher
from routing.proxy import BufferedProxiedResponse, StreamedProxiedResponse
from routing.table import route_tables


def test_relayed_answers_are_known_by_the_types_routing_registered():
    assert not extensions.is_relayed_response(HttpResponse("the gateway's own"))
    for kind in (BufferedProxiedResponse, StreamedProxiedResponse):
        assert extensions.is_relayed_response(object.__new__(kind))


@pytest.mark.django_db
def test_the_served_config_version_is_the_route_tables():
    assert extensions.config_version() == route_tables.get().version


def test_serving_processes_start_the_usage_flusher_registered_by_quotas():
    assert start_background_flusher in extensions._serving_starters


def test_start_serving_runs_each_registered_starter_once(monkeypatch):
    calls: list[str] = []
    monkeypatch.setattr(extensions, "_serving_starters", [])
    starter = lambda: calls.append("started")  # noqa: E731
    extensions.register_serving_starter(starter)
    extensions.register_serving_starter(starter)  # a second ready() call adds nothing
    extensions.start_serving()
    assert calls == ["started"]
