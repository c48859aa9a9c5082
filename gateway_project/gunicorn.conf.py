"""gunicorn settings: bind, worker count and class, sized from the CPU count."""

from __future__ import annotations

import multiprocessing
import os

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
