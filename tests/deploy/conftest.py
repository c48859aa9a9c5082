"""Fixtures for the worker's tests."""

from __future__ import annotations

import pytest
from gunicorn import util
from gunicorn.http import message as http_message
from gunicorn.http import wsgi

# What gunicorn_worker.install_per_request_savings() replaces in gunicorn's modules.
_REPLACED_BY_THE_WORKER = (
    (util, "http_date"),
    (http_message, "_ip_in_allow_list"),
    (wsgi, "WSGIErrorsWrapper"),
    (wsgi, "Response"),
    (wsgi, "create"),
)


@pytest.fixture
def gunicorn_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    """gunicorn's functions as they were before the test, whatever the test installs."""
    for module, name in _REPLACED_BY_THE_WORKER:
        monkeypatch.setattr(module, name, getattr(module, name))  # restored after the test
