"""Where gateway_full's CPU goes: py-spy on every gunicorn worker while wrk drives the route.

Starts nginx (the upstream) and the gateway exactly as `make bench` does (bench/run.py), drives
the gateway_full scenario with wrk, samples every worker with py-spy, and splits
the measured CPU per request by component. Only samples of a thread holding the GIL count
(a thread blocked in a socket call, the event loop or a queue has released it), so the split is
of the Python work; the kernel's share of each socket call is in the total, not in the split.
A sample is charged to the innermost frame that
belongs to a known component, so a socket call inside the upstream client counts as upstream
client, and Django's own frames only what Django itself spends.

    .venv/bin/pip install py-spy   # a profiling tool, not a dependency of the gateway
    .venv/bin/python bench/profile.py --seconds 20

Needs py-spy, nginx and wrk on PATH (or in the virtualenv's bin) and the bench's PostgreSQL and
Redis (BENCH_DATABASE_URL, BENCH_REDIS_URL as for bench/run.py).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import run  # noqa: E402 - after the path is set

# (component, path fragments of a frame's file). Checked from the innermost frame outwards;
# the first frame matching any fragment decides. Generic standard library modules (threading,
# re, socket wrappers) are deliberately absent: they count for whoever called them.
COMPONENTS: list[tuple[str, tuple[str, ...]]] = [
    ("access log", ("gateway_project/access_log.py", "orjson")),
    ("metrics", ("prometheus_client/", "gateway_project/metrics.py", "quotas/metrics.py")),
    (
        "tracing + dashboard aggregates",
        ("gateway_project/tracing.py", "gateway_project/traffic.py", "opentelemetry/"),
    ),
    ("limit script round trip (Redis)", ("quotas/", "redis/", "django_redis/", "hiredis")),
    (
        "auth (JWT decode, consumer)",
        ("jwt/", "rest_framework_simplejwt/", "accounts/", "cryptography/"),
    ),
    ("permission check", ("routing/authorization.py",)),
    (
        "upstream client (request build, send, parse, relay)",
        (
            "routing/upstream.py",
            "routing/upstream_",
            "routing/proxy.py",
            "routing/forwarding.py",
            "routing/breaker.py",
            "routing/target_state.py",
            "routing/dns.py",
            "gateway_project/upstream_head.py",
            "gateway_project/outbound_guard.py",
            "urllib3/",
            "http/client.py",
            "httptools",
        ),
    ),
    (
        "gunicorn worker (accept, parse, write)",
        ("gunicorn/", "gateway_project/gunicorn_worker.py", "gateway_project/client_framing.py"),
    ),
    ("routing (match, pipeline, view)", ("routing/",)),
    ("DRF (request wrap, negotiation, response)", ("rest_framework/",)),
    ("gateway middleware (observability, errors, ids)", ("gateway_project/",)),
    ("Django handler + middleware", ("django/",)),
]
OTHER = "other (interpreter, stdlib outside a component)"


def component_of(stack: str) -> str:
    """The component a collapsed stack (outermost;...;innermost) is charged to."""
    for frame in reversed(stack.split(";")):
        for name, fragments in COMPONENTS:
            if any(fragment in frame for fragment in fragments):
                return name
    return OTHER


def split_samples(raw: str) -> Counter[str]:
    """Samples per component from py-spy's raw (collapsed stack) output."""
    counts: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, number = line.rpartition(" ")
        if stack and number.isdigit():
            counts[component_of(stack)] += int(number)
    return counts


def tool(name: str) -> str:
    """A tool from the virtualenv's bin or PATH."""
    found = shutil.which(name, path=f"{run.BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if found is None:
        sys.exit(f"{name} is not installed (see this file's docstring).")
    return found


def main() -> None:
    """Profile gateway_full under load and print the per-component table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=20, help="length of the sampled wrk run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--raw", help="also keep py-spy's collapsed stacks in this file")
    args = parser.parse_args()
    py_spy, _, _ = tool("py-spy"), tool("nginx"), tool("wrk")
    database_url, redis_url = run.bench_stores()
    tmp = run.work_dir("gwprofile-")
    upstream_port, proxy_port, gateway_port = run.free_port(), run.free_port(), run.free_port()
    nginx = run.start_nginx(tmp, upstream_port, proxy_port)
    env = run.gateway_env(tmp, gateway_port, database_url, redis_url)
    gateway = None
    try:
        try:
            gateway = run.start_gateway(tmp, env, upstream_port)
        except RuntimeError:
            sys.stderr.write((tmp / "gateway.log").read_text()[-3000:])
            raise
        url = f"http://127.0.0.1:{gateway_port}/full/data.json"
        headers = [f"Authorization: Bearer {run.bench_token(env['JWT_SIGNING_KEY'])}"]
        run.run_wrk(url, 8, 2, headers)  # warm up
        raw_path = tmp / "stacks.txt"
        spy = subprocess.Popen(
            [
                py_spy,
                "record",
                "--pid",
                str(gateway.pid),
                "--subprocesses",
                "--nonblocking",
                "--gil",  # only samples holding the GIL: Python running, not a thread waiting
                "--format",
                "raw",
                "--rate",
                str(args.rate),
                "--duration",
                str(args.seconds),
                "--output",
                str(raw_path),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        before = sum(run.cpu_ticks(gateway.pid))
        outcome: list[run.WrkResult] = []
        driver = threading.Thread(
            target=lambda: outcome.append(run.run_wrk(url, args.connections, args.seconds, headers))
        )
        driver.start()
        driver.join()
        used = (sum(run.cpu_ticks(gateway.pid)) - before) / run.TICKS
        spy.wait(args.seconds + 60)
        raw = raw_path.read_text()
        if args.raw:
            Path(args.raw).write_text(raw)
    finally:
        if gateway is not None:
            gateway.send_signal(signal.SIGTERM)
            gateway.wait(30)
        nginx.send_signal(signal.SIGQUIT)
        nginx.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)

    result = outcome[0]
    cpu_us = used / result.requests * 1e6
    counts = split_samples(raw)
    total = sum(counts.values()) or 1
    print(
        f"gateway_full c{args.connections}: {result.rps:.0f} rps, p99 {result.p99_ms:.1f} ms, "
        f"{cpu_us:.0f} us CPU per request (gunicorn master + workers, /proc), "
        f"{total} samples holding the GIL\n"
    )
    print(f"| {'component':55} | {'share':>6} | {'us/request':>10} |")
    print(f"|{'-' * 57}|{'-' * 8}|{'-' * 12}|")
    for name, count in counts.most_common():
        share = count / total
        print(f"| {name:55} | {share:6.1%} | {share * cpu_us:10.0f} |")


if __name__ == "__main__":
    main()
