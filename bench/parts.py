"""What each part of a proxied request costs where it runs: CPU per request with a part left out.

bench/profile.py splits gateway_full's CPU by the samples that hold the GIL, so the time a
request thread spends in the kernel for its two round trips (Redis, the upstream), and what
those waits cost afterwards (the thread wakes up on a core nginx or Redis has just used, its
caches cold), is spread over every component by share. This measures instead: it serves
kept-alive gateway_full requests in this process through the worker's own handle() (as
bench/calls.py does) and takes the request thread's CPU time (user and system) per request,
first for the whole request, then with one part replaced by an immediate answer or left out.
The difference is what that part costs in place. For comparison, the two round trips are also
timed alone, called in a loop. The variants alternate over the rounds and the median of each
is reported; the background writers (access log, deferred metrics) are other threads and not
counted.

    .venv/bin/python bench/parts.py --rounds 3

Needs nginx on PATH and the bench's PostgreSQL and Redis (as bench/calls.py).
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import run  # noqa: E402 - after the path is set
from bench.calls import bench_services, kept_alive_client, stop_nginx  # noqa: E402

# The variant with nothing left out (bench/instructions.py counts it by this name too).
WHOLE = "the whole request"
_BODY = b'{"ok": true, "items": [1, 2, 3], "note": "an answer of the upstream\'s size"}'


def _plain_200(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]


def _answer(*_args: Any, **_kwargs: Any) -> Any:
    from django.http import HttpResponse

    return HttpResponse(_BODY, content_type="application/json")


def _answer_after_limits(
    _request: Any, _context: Any, *, before_body: Callable[[], None] | None = None
) -> Any:
    """forward's stand-in: the limit verdict it is handed is still taken."""
    if before_body is not None:
        before_body()
    return _answer()


def variants(worker: Any) -> dict[str, Callable[[], contextlib.AbstractContextManager[Any]]]:
    """Each variant's name and a context manager that sets it up on this worker (targets are
    imported when a variant is set up, so the names can be listed before Django is)."""

    @contextlib.contextmanager
    def without_observability() -> Iterator[None]:
        from django.conf import settings

        from gateway_project.dispatch import ProxyWSGIHandler

        lean = [
            m
            for m in settings.GATEWAY_PROXY_MIDDLEWARE
            if not m.endswith(".ObservabilityMiddleware")
        ]
        with mock.patch.object(settings, "GATEWAY_PROXY_MIDDLEWARE", lean):
            handler = ProxyWSGIHandler()
        with mock.patch.object(worker.wsgi, "proxy", handler):
            yield

    @contextlib.contextmanager
    def without_auth() -> Iterator[None]:
        with (
            mock.patch("routing.pipeline.Authenticate.run", lambda _step, _ctx: None),
            mock.patch("routing.pipeline.Authorize.run", lambda _step, _ctx: None),
        ):
            yield

    return {
        WHOLE: contextlib.nullcontext,
        "server only (a plain WSGI 200)": lambda: mock.patch.object(worker, "wsgi", _plain_200),
        "Django and middleware, the view answering at once": lambda: mock.patch(
            "routing.views.ProxyView.dispatch", _answer
        ),
        "forward answered by the gateway (no upstream)": lambda: mock.patch(
            "routing.pipeline.forward", _answer_after_limits
        ),
        "limit verdict awaited in its own step (no overlap)": lambda: mock.patch(
            "routing.pipeline._LIMIT_SETTLED_BY_FORWARD.settled_by_forward", False
        ),
        "limit step left out (no Redis)": lambda: mock.patch(
            "routing.pipeline.Limit.run", lambda _step, _ctx: None
        ),
        "observability middleware left out": without_observability,
        "authentication and authorization left out": without_auth,
    }


def round_trips_alone() -> dict[str, Callable[[], object]]:
    """The two round trips on their own, called in a loop from this thread: the limit check
    (one EVALSHA) and the upstream request with the client's answer made from it."""
    from quotas.store import limit_store
    from routing import limits
    from routing.pipeline import RequestContext
    from routing.proxy import client_response
    from routing.table import route_tables
    from routing.upstream import UpstreamRequest, upstream_client

    route = route_tables.get().match("GET", "/full/data.json")
    context = RequestContext(
        method="GET", raw_path="/full/data.json", meta={"REMOTE_ADDR": "127.0.0.1"}, route=route
    )
    policies, _ = limits.request_policies(context, route)
    store = limit_store()

    def forward() -> object:
        request = UpstreamRequest(
            method="GET", path="/data.json", headers={}, body=None, replayable=True
        )
        return client_response(upstream_client().send(route, request).response, method="GET")

    return {
        "alone: the limit check (one EVALSHA), in a loop": lambda: store.check(
            policies, consume=True
        ),
        "alone: the upstream request and its answer, in a loop": forward,
    }


def cpu_per_request(serve_one: Callable[[], object], requests: int) -> float:
    """The request thread's CPU time (user and system) per request, in µs."""
    started = time.thread_time()
    for _ in range(requests):
        serve_one()
    return (time.thread_time() - started) / requests * 1e6


def measure(rounds: int, batch: int) -> dict[str, float]:
    """The median CPU per request of each variant, the variants alternating over the rounds."""
    tmp = run.work_dir("gwparts-")
    nginx, token = bench_services(tmp)
    try:
        worker, serve_one = kept_alive_client("/full/data.json", token)
        setups = variants(worker)
        samples: dict[str, list[float]] = {name: [] for name in setups}
        alone = round_trips_alone()
        samples.update({name: [] for name in alone})
        for _ in range(rounds):
            for name, setup in setups.items():
                with setup():
                    cpu_per_request(serve_one, 100)  # warm up
                    samples[name] += [cpu_per_request(serve_one, batch) for _ in range(3)]
            for name, call in alone.items():
                cpu_per_request(call, 100)
                samples[name] += [cpu_per_request(call, batch) for _ in range(3)]
    finally:
        stop_nginx(nginx)
        shutil.rmtree(tmp, ignore_errors=True)
    return {name: statistics.median(values) for name, values in samples.items()}


def report(medians: dict[str, float]) -> None:
    """Print each variant's CPU per request and the difference from the whole request."""
    whole = medians["the whole request"]
    print(f"| {'what runs':54} | {'CPU µs/request':>14} | {'whole minus this':>16} |")
    print(f"|{'-' * 56}|{'-' * 16}|{'-' * 18}|")
    for name, value in medians.items():
        difference = f"{whole - value:16.1f}" if not name.startswith("alone") else " " * 16
        print(f"| {name:54} | {value:14.1f} | {difference} |")


def main() -> None:
    """Measure every variant and print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=200, help="requests per timed batch")
    args = parser.parse_args()
    report(measure(args.rounds, args.batch))


if __name__ == "__main__":
    main()
