"""The worker exempts what loading the application built from garbage collection."""

from __future__ import annotations

import gc
import types

from gateway_project.gunicorn_worker import DrainingThreadWorker


def test_loading_the_application_freezes_what_it_built():
    worker = object.__new__(DrainingThreadWorker)  # only load_wsgi is exercised
    built: list[object] = []

    def wsgi() -> object:
        built.append({"a structure": ["the application keeps"]})
        return "the application"

    worker.app = types.SimpleNamespace(wsgi=wsgi)
    gc.unfreeze()
    try:
        worker.load_wsgi()
        # Frozen objects are left out of every generation the collector walks.
        still_collected = any(each is built[0] for each in gc.get_objects())
    finally:
        gc.unfreeze()  # this test process goes on collecting as before
    assert worker.wsgi == "the application"
    assert not still_collected
