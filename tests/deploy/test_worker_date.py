"""What the worker caches from gunicorn: the Date header per second, the settings per worker."""

from __future__ import annotations

import os
import subprocess
import sys
import types
from pathlib import Path

import pytest
from gunicorn import util
from gunicorn.config import Config

from gateway_project import gunicorn_worker


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The worker module's wall clock, set by the test (a one-item list)."""
    now = [1_700_000_000.4]
    monkeypatch.setattr(gunicorn_worker, "time", types.SimpleNamespace(time=lambda: now[0]))
    monkeypatch.setattr(gunicorn_worker, "_date_header", (0, ""))
    return now


def test_the_date_is_gunicorns_and_formatted_once_per_second(clock):
    first = gunicorn_worker.http_date_per_second()
    assert first == "Tue, 14 Nov 2023 22:13:20 GMT" == util.http_date(1_700_000_000)
    clock[0] += 0.5
    assert gunicorn_worker.http_date_per_second() is first  # the same second: not formatted
    clock[0] += 0.6
    assert gunicorn_worker.http_date_per_second() == "Tue, 14 Nov 2023 22:13:21 GMT"


def test_an_explicit_timestamp_is_formatted_as_gunicorn_does(clock):
    assert gunicorn_worker.http_date_per_second(86_400.9) == util.http_date(86_400.9)
    assert gunicorn_worker.http_date_per_second(86_400.9) == "Fri, 02 Jan 1970 00:00:00 GMT"


def test_settings_as_attributes_reads_every_setting_as_gunicorn_would():
    config = Config()
    config.set("threads", 8)
    config.set("http_parser", "fast")
    config.set("worker_class", "gateway_project.gunicorn_worker.DrainingThreadWorker")
    before = {name: getattr(config, name) for name in config.settings}
    derived = (config.sendfile, config.env, config.worker_class, config.is_ssl)
    gunicorn_worker.settings_as_attributes(config)
    assert {name: getattr(config, name) for name in config.settings} == before
    assert (config.sendfile, config.env, config.worker_class, config.is_ssl) == derived
    assert vars(config)["threads"] == 8  # a plain attribute now, not Config.__getattr__


def test_the_config_refuses_to_start_without_the_c_parser(tmp_path):
    # http_parser = "fast" alone would fail every request instead (gunicorn imports per request).
    hide_parser = (
        "import runpy, sys; sys.modules['gunicorn_h1c'] = None; "
        "runpy.run_path('gateway_project/gunicorn.conf.py')"
    )
    result = subprocess.run(
        [sys.executable, "-c", hide_parser],
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "gunicorn_h1c" in result.stderr
