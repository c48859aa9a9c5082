"""Measure what the observability middleware adds per proxied request (CPU time, in-process).

Runs the gateway in-process (Django test client, SQLite in a temporary directory, a real
upstream on loopback), and times interleaved rounds with and without
ObservabilityMiddleware.  Prints the median microseconds per request of each and the
difference.  Usage: `python bench/observability_overhead.py [requests-per-round] [rounds]`.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# Django imports the timed middleware by dotted path: let that name mean this very module.
sys.modules.setdefault("bench.observability_overhead", sys.modules[__name__])
os.environ.setdefault("SECRET_KEY", "bench-only")
os.environ["GATEWAY_VAR_DIR"] = tempfile.mkdtemp(prefix="obs-bench-")
os.environ.pop("DATABASE_URL", None)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway_project.settings")
os.environ["LOG_LEVEL"] = os.environ.get("BENCH_LOG_LEVEL", "INFO")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client, override_settings  # noqa: E402

from routing.models import Route, Service  # noqa: E402
from routing.table import route_tables  # noqa: E402
from tests.support.upstream import UpstreamServer  # noqa: E402

MIDDLEWARE_PATH = "gateway_project.observability.ObservabilityMiddleware"
TIMED_PATH = "bench.observability_overhead.TimedObservabilityMiddleware"
_own_ns: list[int] = []


class TimedObservabilityMiddleware:
    """The real middleware, timing only its own CPU work (everything but the inner call)."""

    def __init__(self, get_response: Any) -> None:
        from gateway_project.observability import ObservabilityMiddleware

        self.inner_ns = 0

        def timed_inner(request: Any) -> Any:
            started = time.thread_time_ns()
            response = get_response(request)
            self.inner_ns = time.thread_time_ns() - started
            return response

        self.real = ObservabilityMiddleware(timed_inner)

    def __call__(self, request: Any) -> Any:
        """Serve through the real middleware and record its own share of the time."""
        started = time.thread_time_ns()
        response = self.real(request)
        _own_ns.append(time.thread_time_ns() - started - self.inner_ns)
        return response


def _round(client: Client, count: int) -> float:
    """CPU seconds of this thread per request, over `count` requests."""
    started = time.thread_time()
    for _ in range(count):
        response = client.get("/bench/echo", HTTP_HOST="127.0.0.1")
        assert response.status_code == 200
    return (time.thread_time() - started) / count


def micro(count: int = 20_000, repeats: int = 5) -> tuple[float, float]:
    """CPU microseconds of the middleware alone around a stub view (best and median run)."""
    from django.http import HttpResponse
    from django.test import RequestFactory

    from gateway_project.observability import ObservabilityMiddleware
    from routing.pipeline import context_for

    table = route_tables.get()
    route = table.routes[0]
    answer = b"x" * 500

    def view(request: Any) -> Any:
        context = context_for(request)
        context.path, context.route = "/bench/echo", route
        context.upstream_seconds, context.attempts = 0.0008, 1
        context.upstream_target = route.service.targets[0].url
        return HttpResponse(answer)

    middleware = ObservabilityMiddleware(view)
    factory = RequestFactory()
    requests = [factory.get("/bench/echo", HTTP_HOST="127.0.0.1") for _ in range(count)]
    runs = []
    for _ in range(repeats):
        started = time.thread_time()
        for request in requests:
            middleware(request)
        runs.append((time.thread_time() - started) / count * 1e6)
        for request in requests:  # fresh requests for the next run
            request.__dict__.pop("gateway_context", None)
    return min(runs), statistics.median(runs)


def main() -> None:
    """Interleave rounds with and without the middleware; print medians in microseconds."""
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 7
    call_command("migrate", verbosity=0)
    # The access log goes to a file-like sink so terminal speed does not count.
    sink = open(os.devnull, "w")  # noqa: SIM115
    import logging

    for handler in logging.getLogger("gateway.access").handlers:
        handler.setStream(sink)  # type: ignore[attr-defined]
    without = [m for m in settings.MIDDLEWARE if m != MIDDLEWARE_PATH]
    with UpstreamServer("bench") as upstream:
        service = Service.objects.create(name="bench", url=upstream.url)
        Route.objects.create(path="/bench/**", service=service, authentication="none")
        route_tables.reset()
        client = Client()
        _round(client, 50)  # warm up pools and the route table
        on: list[float] = []
        off: list[float] = []
        for _ in range(rounds):
            on.append(_round(client, count))
            with override_settings(MIDDLEWARE=without):
                off.append(_round(Client(), count))
    with_us = statistics.median(on) * 1e6
    without_us = statistics.median(off) * 1e6
    print(f"requests/round={count} rounds={rounds} LOG_LEVEL={os.environ['LOG_LEVEL']}")
    print(f"with observability    : {with_us:8.1f} us CPU per request")
    print(f"without observability : {without_us:8.1f} us CPU per request")
    print(f"added (difference)    : {with_us - without_us:8.1f} us CPU per request")
    timed = [m if m != MIDDLEWARE_PATH else TIMED_PATH for m in settings.MIDDLEWARE]
    with UpstreamServer("bench") as upstream, override_settings(MIDDLEWARE=timed):
        Service.objects.filter(name="bench").update(url=upstream.url)
        route_tables.reset()
        client = Client()
        _round(client, 50)
        _own_ns.clear()
        _round(client, count * rounds)
        best, median = micro()
    own = sorted(_own_ns)
    print(f"micro (stub view)     : best {best:.1f} us, median {median:.1f} us CPU per request")
    print(
        f"middleware's own CPU  : median {own[len(own) // 2] / 1000:.1f} us, "
        f"p95 {own[int(len(own) * 0.95)] / 1000:.1f} us per request (n={len(own)})"
    )


if __name__ == "__main__":
    main()
