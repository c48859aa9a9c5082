"""The worker's pre_request hook logs what gunicorn's default hook logs, at every level."""

from __future__ import annotations

import logging
import types
from collections.abc import Iterator
from typing import Any

import pytest
from gunicorn import glogging
from gunicorn.config import Config, PreRequest

from gateway_project import gunicorn_worker, handoff
from gateway_project.gunicorn_worker import default_hooks_replaced, pre_request_debug_line


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.seen: list[tuple[Any, ...]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append((record.name, record.levelno, record.msg, record.args))


@pytest.fixture
def error_log(monkeypatch: pytest.MonkeyPatch) -> Iterator[logging.Logger]:
    """gunicorn's error logger; gunicorn's loggers are restored after the test."""
    for name in ("gunicorn", "gunicorn.error", "gunicorn.access"):
        logger = logging.getLogger(name)
        for attribute in ("level", "handlers", "disabled", "propagate"):
            monkeypatch.setattr(logger, attribute, getattr(logger, attribute))
    monkeypatch.setattr(logging.root.manager, "disable", logging.root.manager.disable)
    yield logging.getLogger("gunicorn.error")
    logging.root.setLevel(logging.root.level)  # empties every logger's cache of answers


def _worker(log: Any) -> Any:
    return types.SimpleNamespace(log=log)


def _request() -> Any:
    return types.SimpleNamespace(method="GET", path="/a/b")


def _logged(hook: Any, worker: Any, logger: logging.Logger) -> list[tuple[Any, ...]]:
    records = _Records()
    logger.handlers = [records]
    logger.propagate = False
    hook(worker, _request())
    return records.seen


@pytest.mark.parametrize(
    "level", [logging.DEBUG, logging.INFO, logging.WARNING, logging.NOTSET, "disabled", "off"]
)
def test_the_debug_line_is_logged_exactly_when_gunicorns_hook_logs_it(level, error_log):
    log = glogging.Logger(Config())
    if level == "disabled":
        error_log.disabled = True
        error_log.setLevel(logging.DEBUG)
    elif level == "off":  # logging.disable() above debug
        error_log.setLevel(logging.DEBUG)
        logging.disable(logging.DEBUG)
    else:
        error_log.setLevel(level)
        logging.getLogger("gunicorn").setLevel(logging.DEBUG)  # NOTSET inherits from here
    stock = _logged(PreRequest.default, _worker(log), error_log)
    assert _logged(pre_request_debug_line, _worker(log), error_log) == stock
    expected = [("gunicorn.error", logging.DEBUG, "%s %s", ("GET", "/a/b"))]
    assert stock == (expected if level in (logging.DEBUG, logging.NOTSET) else [])


def test_a_level_changed_at_run_time_counts_from_the_next_request(error_log):
    log = glogging.Logger(Config())
    error_log.setLevel(logging.INFO)
    assert _logged(pre_request_debug_line, _worker(log), error_log) == []
    error_log.setLevel(logging.DEBUG)
    assert len(_logged(pre_request_debug_line, _worker(log), error_log)) == 1


class _OwnLogger(glogging.Logger):
    calls: list[tuple[Any, ...]]

    def debug(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.calls.append((msg, args))


class _OwnErrorLog(logging.Logger):
    calls: list[tuple[Any, ...]]

    def debug(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        self.calls.append((msg, args))


def test_a_logger_of_its_own_gets_gunicorns_call(error_log):
    error_log.setLevel(logging.INFO)
    own = _OwnLogger(Config())
    own.calls = []
    pre_request_debug_line(_worker(own), _request())
    assert own.calls == [("%s %s", ("GET", "/a/b"))]
    log = glogging.Logger(Config())
    log.error_log = own_error_log = _OwnErrorLog("own")
    own_error_log.calls = []
    pre_request_debug_line(_worker(log), _request())
    assert own_error_log.calls == [("%s %s", ("GET", "/a/b"))]


def test_the_worker_replaces_only_gunicorns_own_default_hook(error_log):
    cfg = Config()
    gunicorn_worker.settings_as_attributes(cfg)
    default_hooks_replaced(cfg)
    assert cfg.pre_request is pre_request_debug_line

    def own_hook(worker: Any, req: Any) -> None:
        pass

    cfg = Config()
    cfg.set("pre_request", own_hook)
    gunicorn_worker.settings_as_attributes(cfg)
    default_hooks_replaced(cfg)
    assert cfg.pre_request is own_hook


def test_the_gateways_worker_runs_it(gunicorn_restored, monkeypatch, error_log):
    from gunicorn.workers.gthread import ThreadWorker

    from gateway_project.gunicorn_worker import DrainingThreadWorker

    # init_process turns the WebSocket hand-over on for this process: off again afterwards.
    monkeypatch.setattr(handoff, "_enabled", handoff._enabled)
    monkeypatch.setattr(ThreadWorker, "init_process", lambda self: None)
    cfg = Config()
    worker = DrainingThreadWorker(1, 0, [], None, 30, cfg, glogging.Logger(cfg))
    worker.init_process()
    assert worker.cfg.pre_request is pre_request_debug_line
