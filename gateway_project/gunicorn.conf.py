"""gunicorn settings: bind, worker count and class sized from the CPUs, graceful drain on SIGTERM.

Stopping (SIGTERM, as Docker and Kubernetes send it): /health/ready turns 503 at once while the
node keeps serving for GATEWAY_DRAIN, so a load balancer polling readiness moves traffic away;
then the listeners close (new connections are refused), requests in flight finish within
GATEWAY_GRACEFUL_TIMEOUT seconds, and the process exits. SIGINT/SIGQUIT stop at once.
"""

from __future__ import annotations

import glob
import os
import resource
import shutil
import tempfile
import time
from typing import Any

import gunicorn_h1c  # noqa: F401 - see http_parser below
from django.core.exceptions import ImproperlyConfigured

from gateway_project import accept_balance, drain
from gateway_project.env import env_choice, env_duration_ms, env_int
from gateway_project.sizing import available_cpus, default_workers


def _raise_open_files_limit(wanted: int) -> None:
    """Raise the soft open-files limit (workers inherit it) towards `wanted`, up to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


bind = os.environ.get("GATEWAY_BIND", "127.0.0.1:8000")
# Without Redis the counters live in-process, so one worker keeps every limit exact.
workers = env_int(
    "GATEWAY_WORKERS",
    default_workers(
        cpus=available_cpus(),
        redis=bool(os.environ.get("REDIS_URL") or os.environ.get("REDIS_URL_FILE")),
    ),
    minimum=1,
)
worker_class = "gateway_project.gunicorn_worker.DrainingThreadWorker"
# gunicorn_h1c's C parser (picohttpparser) reads the request head; gunicorn still applies its
# header policy (underscores, forwarded headers) in Python. "fast" never falls back quietly to
# the pure Python parser (~100 us more per request); gunicorn looks the module up per request,
# so it is imported at the top of this file: without it the server does not start.
http_parser = "fast"
threads = env_int("GATEWAY_THREADS", 8, minimum=1)
keepalive = env_int("GATEWAY_KEEPALIVE", 5)
# Longer than any route timeout, so gunicorn never kills a worker mid-request.
timeout = env_int("GATEWAY_WORKER_TIMEOUT", 120, minimum=1)
graceful_timeout = env_int("GATEWAY_GRACEFUL_TIMEOUT", 30, minimum=1)
accesslog = None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
# Header names holding underscores are ambiguous with dashes once in the WSGI environ
# (X_Forwarded_For and X-Forwarded-For both become HTTP_X_FORWARDED_FOR): dropped by default,
# or refused with 400 (GATEWAY_UNDERSCORE_HEADERS=reject). See SECURITY.md.
header_map = {"drop": "drop", "reject": "refuse"}[
    env_choice("GATEWAY_UNDERSCORE_HEADERS", "drop", ("drop", "reject"))
]
# gunicorn's runtime control socket lives at one fixed path per user, so several gateways on one
# machine would fight over it; we manage processes with signals instead.
control_socket_disable = True

# Worker heartbeats on tmpfs: a container's overlay /tmp can stall them (gunicorn's FAQ).
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108

# --- security ---
# Hostile-input bounds, enforced by gunicorn before the app runs (answers are problem+json,
# gateway_project/server_errors.py): request line -> 414, header count or size -> 431.
limit_request_line = env_int("GATEWAY_MAX_REQUEST_LINE", 8190, minimum=0)
limit_request_fields = env_int("GATEWAY_MAX_HEADERS", 100, minimum=1)
limit_request_field_size = env_int("GATEWAY_MAX_HEADER_SIZE", 8190, minimum=0)
# A client that stalls mid-request frees its thread after this long (slowloris); read by the
# worker class (gateway_project/gunicorn_worker.py) from the environment it inherits.
os.environ["GATEWAY_CLIENT_TIMEOUT_SECONDS"] = str(
    env_duration_ms("GATEWAY_CLIENT_TIMEOUT", "30s") / 1000
)
# The whole request head must arrive within this (total, not per read); until it has, the
# connection waits in the worker's event loop and holds no request thread.
_header_timeout_ms = env_duration_ms("GATEWAY_CLIENT_HEADER_TIMEOUT", "10s")
if _header_timeout_ms <= 0:
    raise ImproperlyConfigured("GATEWAY_CLIENT_HEADER_TIMEOUT: must be more than 0 (e.g. 10s)")
os.environ["GATEWAY_CLIENT_HEADER_TIMEOUT_SECONDS"] = str(_header_timeout_ms / 1000)
# Open connections per worker (reading heads, kept alive, or being served); past it the
# worker stops accepting and new connections wait in the kernel's listen queue.
worker_connections = env_int("GATEWAY_WORKER_CONNECTIONS", 1000, minimum=1)
# Each may be a relayed WebSocket (two sockets); + database, Redis, log files.
_raise_open_files_limit(2 * worker_connections + 256)
# A relayed WebSocket that moves no byte either way for this long is closed (close frame 1001);
# read by the worker class, as the client timeouts above.
_websocket_idle_ms = env_duration_ms("GATEWAY_WEBSOCKET_IDLE_TIMEOUT", "300s")
if _websocket_idle_ms <= 0:
    raise ImproperlyConfigured("GATEWAY_WEBSOCKET_IDLE_TIMEOUT: must be more than 0 (e.g. 300s)")
os.environ["GATEWAY_WEBSOCKET_IDLE_TIMEOUT_SECONDS"] = str(_websocket_idle_ms / 1000)

DRAIN_SECONDS = env_duration_ms("GATEWAY_DRAIN", "0s") / 1000


def when_ready(server: Any) -> None:
    """Put the drain in front of gunicorn's own graceful stop on SIGTERM."""
    drain.end_drain()
    graceful_stop = server.handle_term

    def handle_term() -> None:
        drain.begin_drain()
        if DRAIN_SECONDS > 0:
            server.log.info("Draining: not ready, still serving for %.1fs", DRAIN_SECONDS)
            time.sleep(DRAIN_SECONDS)
        graceful_stop()

    # The arbiter dispatches queued signals to `handle_<name>` attributes of itself.
    server.handle_term = handle_term


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


def pre_fork(server: Any, worker: Any) -> None:
    """Give the new worker its slot in the shared connection table (accept_balance)."""
    accept_balance.assign_slot(server, worker)


def post_worker_init(worker: Any) -> None:
    """Access log lines and per-request metrics leave the request threads: a background
    writer per worker for each."""
    from gateway_project import access_log, metrics

    access_log.start_writer()
    metrics.deferred.start()


def worker_exit(server: Any, worker: Any) -> None:
    """Write the access log lines and metric updates still pending before the worker goes."""
    from gateway_project import access_log, metrics

    access_log.stop_writer()
    metrics.deferred.stop()


def child_exit(server: Any, worker: Any) -> None:
    """A worker died: its live gauges (in-flight, breaker, config version) and its connections
    (for the others' accept balance) stop counting."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
    accept_balance.release_slot(server, worker)


def on_exit(server: Any) -> None:
    """Remove the metrics directory this config created."""
    if _owns_metrics_dir:
        shutil.rmtree(_metrics_dir, ignore_errors=True)
