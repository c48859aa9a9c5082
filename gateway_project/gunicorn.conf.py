"""gunicorn settings: bind, worker count and class, sized from the CPU count."""

from __future__ import annotations

import glob
import multiprocessing
import os
import shutil
import tempfile
from typing import Any

bind = os.environ.get("GATEWAY_BIND", "127.0.0.1:8000")
# Without Redis the counters live in-process, so one worker keeps every limit exact.
_default_workers = multiprocessing.cpu_count() * 2 + 1 if os.environ.get("REDIS_URL") else 1
workers = int(os.environ.get("GATEWAY_WORKERS", _default_workers))
worker_class = "gthread"
threads = int(os.environ.get("GATEWAY_THREADS", "8"))
keepalive = int(os.environ.get("GATEWAY_KEEPALIVE", "5"))
# Longer than any route timeout, so gunicorn never kills a worker mid-request.
timeout = int(os.environ.get("GATEWAY_WORKER_TIMEOUT", "120"))
graceful_timeout = int(os.environ.get("GATEWAY_GRACEFUL_TIMEOUT", "30"))
accesslog = None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
# Requests with header names holding underscores are dropped (ambiguous with dashes).
header_map = "drop"
# gunicorn's runtime control socket lives at one fixed path per user, so several gateways on one
# machine would fight over it; we manage processes with signals instead.
control_socket_disable = True

# --- observability ---
# prometheus-client's multiprocess mode: every worker writes its samples to files in one
# directory that a scrape merges.  The variable must be set before a worker imports the app.
_metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or ""
_owns_metrics_dir = not _metrics_dir
if not _metrics_dir:
    _metrics_dir = tempfile.mkdtemp(prefix="gateway-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_dir
os.makedirs(_metrics_dir, exist_ok=True)
# Samples of a previous run's (dead) workers go; a reload (HUP re-reads this file in the same
# master) must keep the live workers' files.
if os.environ.get("GATEWAY_METRICS_DIR_CLEANED") != _metrics_dir:
    for _stale in glob.glob(os.path.join(_metrics_dir, "*.db")):
        os.remove(_stale)
    os.environ["GATEWAY_METRICS_DIR_CLEANED"] = _metrics_dir


def child_exit(server: Any, worker: Any) -> None:
    """A worker died: its live gauges (in-flight, breaker, config version) stop counting."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server: Any) -> None:
    """Remove the metrics directory this config created."""
    if _owns_metrics_dir:
        shutil.rmtree(_metrics_dir, ignore_errors=True)
