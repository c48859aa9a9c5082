"""`make bench`: the gateway against a direct call and an nginx proxy, interleaved, on loopback.

Scenarios (each at 1 and 32 connections, rounds interleaved A B C D, A B C D, ...):
  direct        wrk -> nginx serving a small static JSON file (the upstream)
  nginx_proxy   wrk -> nginx reverse proxy -> upstream (the native ceiling)
  gateway_open  wrk -> gateway, open route (no auth, no limit) -> upstream
  gateway_full  wrk -> gateway, JWT + permission + rate limit + access log + metrics -> upstream
  server_floor  wrk -> gunicorn with the gateway's worker settings, a plain WSGI 200 (bench/floor_app.py)
Every figure is the median over the rounds. Writes bench/results/latest.json. For the scenarios
served by our own gunicorn, each connection count also gets the server's kernel time and its
threads' context switches per request (`cpu_sys_us_per_req`, `switches_per_req`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TICKS = os.sysconf("SC_CLK_TCK")
PAYLOAD = json.dumps({"id": 42, "title": "write the benchmark", "tags": ["bench", "gateway"]})


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout: float = 120) -> None:
    """Wait until `url` answers 200 (workers boot slowly on a busy machine)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer in {timeout}s")


# --- nginx -----------------------------------------------------------------------------------

NGINX_CONF = """
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    default_type application/json;
    keepalive_requests 100000;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    upstream origin {{ server 127.0.0.1:{upstream_port}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{upstream_port};
        root {tmp}/www;
        location / {{ try_files /data.json =404; }}
    }}
    server {{
        listen 127.0.0.1:{proxy_port};
        location / {{
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""


def start_nginx(tmp: Path, upstream_port: int, proxy_port: int) -> subprocess.Popen[bytes]:
    """nginx as the upstream (static JSON) and as a plain reverse proxy in front of it."""
    (tmp / "www").mkdir()
    (tmp / "www" / "data.json").write_text(PAYLOAD)
    conf = tmp / "nginx.conf"
    conf.write_text(NGINX_CONF.format(tmp=tmp, upstream_port=upstream_port, proxy_port=proxy_port))
    process = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(tmp)])
    wait_http(f"http://127.0.0.1:{upstream_port}/data.json")
    wait_http(f"http://127.0.0.1:{proxy_port}/data.json")
    return process


# --- the gateway -------------------------------------------------------------------------------

BENCH_CONFIG = """
services:
  - name: bench-origin
    url: http://127.0.0.1:{upstream_port}
routes:
  - path: /open/**
    service: bench-origin
    strip_prefix: true
    authentication: none
  - path: /full/**
    service: bench-origin
    strip_prefix: true
    authentication: required
    permissions: ["read:bench"]
    rate_limit: {{requests_per_second: 1000000, burst: 1000000}}
"""


def ensure_database(url: str) -> None:
    """Create the benchmark's PostgreSQL database if it does not exist."""
    import psycopg

    name = url.rsplit("/", 1)[1]
    admin_url = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as connection:
        exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        if exists.fetchone() is None:
            connection.execute(f'CREATE DATABASE "{name}"')


def bench_stores() -> tuple[str, str]:
    """The bench's PostgreSQL and Redis URLs (BENCH_DATABASE_URL, BENCH_REDIS_URL); the
    database is created if it does not exist."""
    database_url = os.environ.get(
        "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/gateway_bench"
    )
    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    ensure_database(database_url)
    return database_url, redis_url


def work_dir(prefix: str) -> Path:
    """A new temporary directory nginx's unprivileged workers can read."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    tmp.chmod(0o755)
    return tmp


def gateway_env(tmp: Path, port: int, database_url: str, redis_url: str) -> dict[str, str]:
    """The environment `make run` would give the gateway, pointed at the bench stores."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "JWT_"))}
    env.update(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        REDIS_KEY_PREFIX=f"gwbench{os.getpid()}",
        SECRET_KEY=secrets.token_urlsafe(40),
        JWT_SIGNING_KEY=secrets.token_urlsafe(40),
        GATEWAY_BIND=f"127.0.0.1:{port}",
        GATEWAY_VAR_DIR=str(tmp / "var"),
        LOG_LEVEL="INFO",
        PROMETHEUS_MULTIPROC_DIR=str(tmp / "prom"),
    )
    (tmp / "prom").mkdir()
    return env


def start_gunicorn(
    env: dict[str, str], app: str, log_path: Path, health_path: str
) -> subprocess.Popen[bytes]:
    """gunicorn with the gateway's own config file serving `app`; waits for `health_path`."""
    log = log_path.open("wb")
    process = subprocess.Popen(
        [str(BIN / "gunicorn"), "--config", "gateway_project/gunicorn.conf.py", app],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    wait_http(f"http://{env['GATEWAY_BIND']}{health_path}")
    return process


def start_floor(tmp: Path, env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    """The server floor: the same gunicorn settings and worker, a plain WSGI function."""
    floor_env = dict(
        env, GATEWAY_BIND=f"127.0.0.1:{port}", PROMETHEUS_MULTIPROC_DIR=str(tmp / "prom-floor")
    )
    (tmp / "prom-floor").mkdir()
    return start_gunicorn(floor_env, "bench.floor_app", tmp / "floor.log", "/")


def start_gateway(tmp: Path, env: dict[str, str], upstream_port: int) -> subprocess.Popen[bytes]:
    """Migrate, import the bench routes and serve with gunicorn as `make run` does."""
    prepare_gateway(tmp, env, upstream_port)
    return start_gunicorn(env, "gateway_project.wsgi", tmp / "gateway.log", "/health")


def prepare_gateway(tmp: Path, env: dict[str, str], upstream_port: int) -> None:
    """Migrate the bench database and import the bench routes (BENCH_CONFIG)."""
    python = str(BIN / "python")
    config = tmp / "bench.yaml"
    config.write_text(BENCH_CONFIG.format(upstream_port=upstream_port))
    for command in (
        ["migrate", "--noinput", "-v0"],
        ["gateway", "import", "--prune", str(config)],
    ):
        subprocess.run(
            [python, "manage.py", *command],
            cwd=ROOT,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )


def bench_token(signing_key: str) -> str:
    """An HS256 access token with the design document's claims and the bench permission."""
    import jwt

    now = int(time.time())
    claims = {
        "sub": "bench",
        "name": "Bench",
        "roles": ["bench"],
        "permissions": ["read:bench"],
        "iat": now,
        "exp": now + 3600,
        "jti": uuid.uuid4().hex,
        "token_type": "access",
    }
    return jwt.encode(claims, signing_key, algorithm="HS256")


# --- measuring ---------------------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def cpu_ticks(pid: int) -> tuple[int, int]:
    """(utime, stime) of a process and its direct children (gunicorn master + workers)."""
    user = system = 0
    for each in [pid, *_children(pid)]:
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        user += int(fields[11])
        system += int(fields[12])
    return user, system


def context_switches(pid: int) -> int:
    """Context switches, voluntary and not, of every thread of a process and its direct
    children: a thread waiting for the network or for the GIL switches out once each time."""
    total = 0
    for each in [pid, *_children(pid)]:
        for status in Path(f"/proc/{each}/task").glob("*/status"):
            try:
                text = status.read_text()
            except OSError:  # the thread has ended
                continue
            total += sum(int(n) for n in re.findall(r"ctxt_switches:\s+(\d+)", text))
    return total


def worker_rss_mb(pid: int) -> list[float]:
    """Resident memory of each worker, in MiB."""
    sizes = []
    for child in _children(pid):
        try:
            status = Path(f"/proc/{child}/status").read_text()
        except OSError:
            continue
        match = re.search(r"VmRSS:\s+(\d+) kB", status)
        if match:
            sizes.append(int(match[1]) / 1024)
    return sizes


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    match = re.match(r"([\d.]+)(us|ms|s)", text)
    if not match:
        raise ValueError(f"cannot read latency {text!r}")
    return float(match[1]) * _UNITS[match[2]]


@dataclass
class WrkResult:
    """One wrk run."""

    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    non2xx: int
    # The server's kernel time and context switches per request (scenarios on our server only).
    system_us: float | None = None
    switches: float | None = None


def run_wrk(url: str, connections: int, seconds: int, headers: list[str]) -> WrkResult:
    """Run wrk and parse its summary."""
    threads = 1 if connections == 1 else 2
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--latency",
        "--timeout",
        "5s",
    ]
    for header in headers:
        command += ["-H", header]
    out = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])  # type: ignore[index]
    # Anchored to the latency distribution's lines: the thread-stats lines end in a
    # "+/- Stdev" percentage such as "99.50%" that an unanchored pattern would match.
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M)[1])  # type: ignore[index]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M)[1])  # type: ignore[index]
    requests = int(re.search(r"(\d+) requests in", out)[1])  # type: ignore[index]
    non2xx_match = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non2xx = int(non2xx_match[1]) if non2xx_match else 0
    if errors:
        non2xx += sum(int(n) for n in errors.groups())
    return WrkResult(rps, p50, p99, requests, non2xx)


@dataclass
class Scenario:
    """A target of the benchmark."""

    name: str
    url: str
    headers: list[str]
    gateway_pid: int | None = None


def median(values: list[float]) -> float:
    """The median, rounded for the report."""
    return round(statistics.median(values), 3)


def main() -> None:
    """Run the benchmark and write the results."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5, help="length of each wrk run")
    parser.add_argument("--output", default=str(ROOT / "bench" / "results" / "latest.json"))
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a gateway setting for this run (gateway and floor), e.g. GATEWAY_THREADS=4",
    )
    args = parser.parse_args()
    for tool in ("nginx", "wrk"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed: `make bench` installs it (apt-get install {tool}).")
    database_url, redis_url = bench_stores()
    tmp = work_dir("gwbench-")
    upstream_port, proxy_port, gateway_port = free_port(), free_port(), free_port()
    floor_port = free_port()
    nginx = start_nginx(tmp, upstream_port, proxy_port)
    env = gateway_env(tmp, gateway_port, database_url, redis_url)
    for setting in args.set:
        name, _, value = setting.partition("=")
        env[name] = value
    gateway = floor = None
    try:
        gateway = start_gateway(tmp, env, upstream_port)
        floor = start_floor(tmp, env, floor_port)
        token = bench_token(env["JWT_SIGNING_KEY"])
        base = f"http://127.0.0.1:{gateway_port}"
        scenarios = [
            Scenario("direct", f"http://127.0.0.1:{upstream_port}/data.json", []),
            Scenario("nginx_proxy", f"http://127.0.0.1:{proxy_port}/data.json", []),
            Scenario("gateway_open", f"{base}/open/data.json", [], gateway.pid),
            Scenario(
                "gateway_full",
                f"{base}/full/data.json",
                [f"Authorization: Bearer {token}"],
                gateway.pid,
            ),
            Scenario("server_floor", f"http://127.0.0.1:{floor_port}/", [], floor.pid),
        ]
        for scenario in scenarios:  # warm up: pools, compiled routes, caches
            run_wrk(scenario.url, 8, 1, scenario.headers)
        rss_start = worker_rss_mb(gateway.pid)
        runs: dict[str, dict[str, list[WrkResult]]] = {
            s.name: {"c1": [], "c32": []} for s in scenarios
        }
        cpu: dict[str, list[float]] = {s.name: [] for s in scenarios if s.gateway_pid}
        for round_number in range(args.rounds):
            for scenario in scenarios:
                for connections in (1, 32):
                    pid = scenario.gateway_pid
                    before = cpu_ticks(pid) if pid else (0, 0)
                    switches_before = context_switches(pid) if pid else 0
                    result = run_wrk(scenario.url, connections, args.seconds, scenario.headers)
                    if pid and result.requests:
                        user, system = (a - b for a, b in zip(cpu_ticks(pid), before, strict=True))
                        per_request = 1e6 / TICKS / result.requests
                        cpu[scenario.name].append((user + system) * per_request)
                        result.system_us = system * per_request
                        switched = context_switches(pid) - switches_before
                        result.switches = switched / result.requests
                    runs[scenario.name][f"c{connections}"].append(result)
                    print(
                        f"round {round_number + 1} {scenario.name:13} c{connections:<3}"
                        f"{result.rps:10.0f} rps  p50 {result.p50_ms:7.2f} ms  "
                        f"p99 {result.p99_ms:7.2f} ms  non2xx {result.non2xx}",
                        flush=True,
                    )
        rss_end = worker_rss_mb(gateway.pid)
    finally:
        for server in (gateway, floor):
            if server is not None:
                server.send_signal(signal.SIGTERM)
                server.wait(30)
        nginx.send_signal(signal.SIGQUIT)
        nginx.wait(10)

    report = build_report(runs, cpu, rss_start, rss_end)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(report, indent=2) + "\n")
    print_table(report)
    print(f"\nwrote {args.output}")
    shutil.rmtree(tmp, ignore_errors=True)


def build_report(
    runs: dict[str, dict[str, list[WrkResult]]],
    cpu: dict[str, list[float]],
    rss_start: list[float],
    rss_end: list[float],
) -> dict[str, object]:
    """The contract's results document (medians over rounds)."""
    scenarios: dict[str, dict[str, object]] = {}
    for name, by_connections in runs.items():
        entry: dict[str, object] = {}
        for key, results in by_connections.items():
            figures: dict[str, float | int] = {
                "rps": median([r.rps for r in results]),
                "p50_ms": median([r.p50_ms for r in results]),
                "p99_ms": median([r.p99_ms for r in results]),
            }
            if key == "c32":
                figures["non2xx"] = sum(r.non2xx for r in results)
            if results[0].system_us is not None:
                figures["cpu_sys_us_per_req"] = median([r.system_us or 0.0 for r in results])
                figures["switches_per_req"] = median([r.switches or 0.0 for r in results])
            entry[key] = figures
        if name in cpu:
            entry["cpu_us_per_req"] = median(cpu[name])
        if name in ("gateway_open", "gateway_full"):
            entry["rss_mb_start"] = round(max(rss_start, default=0), 1)
            entry["rss_mb_end"] = round(max(rss_end, default=0), 1)
        scenarios[name] = entry

    def rps(name: str) -> float:
        return float(scenarios[name]["c32"]["rps"])  # type: ignore[index]

    def figure(name: str, key: str, field: str) -> float:
        return float(scenarios[name][key][field])  # type: ignore[index]

    ratios = {
        "gateway_open_vs_nginx_rps": round(rps("gateway_open") / rps("nginx_proxy"), 4),
        "gateway_full_vs_nginx_rps": round(rps("gateway_full") / rps("nginx_proxy"), 4),
        "gateway_full_added_p50_ms_c1": round(
            figure("gateway_full", "c1", "p50_ms") - figure("direct", "c1", "p50_ms"), 3
        ),
        "gateway_full_vs_nginx_p99_c32": round(
            figure("gateway_full", "c32", "p99_ms") / figure("nginx_proxy", "c32", "p99_ms"), 2
        ),
    }
    floor_cpu = float(scenarios.get("server_floor", {}).get("cpu_us_per_req") or 0)  # type: ignore[arg-type]
    if floor_cpu:
        full_cpu = float(scenarios["gateway_full"]["cpu_us_per_req"])  # type: ignore[arg-type]
        ratios["gateway_full_vs_floor_cpu"] = round(full_cpu / floor_cpu, 2)
    gunicorn_conf = (ROOT / "gateway_project" / "gunicorn.conf.py").read_text()
    worker_class = re.search(r'worker_class = "([\w.]+)"', gunicorn_conf)
    return {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "server": f"gunicorn {worker_class[1] if worker_class else '?'} "
            f"(gateway_project/gunicorn.conf.py)",
        },
        "scenarios": scenarios,
        "ratios": ratios,
    }


def print_table(report: dict[str, object]) -> None:
    """The results as a table."""
    scenarios = report["scenarios"]
    assert isinstance(scenarios, dict)
    print(
        f"\n{'scenario':14}{'c1 rps':>9}{'c1 p50':>9}{'c32 rps':>10}{'c32 p50':>9}"
        f"{'c32 p99':>9}{'non2xx':>8}{'cpu us/req':>11}{'rss MiB':>13}"
    )
    for name, entry in scenarios.items():
        c1, c32 = entry["c1"], entry["c32"]
        cpu = entry.get("cpu_us_per_req")
        rss = f"{entry['rss_mb_start']}->{entry['rss_mb_end']}" if "rss_mb_start" in entry else ""
        print(
            f"{name:14}{c1['rps']:9.0f}{c1['p50_ms']:9.2f}{c32['rps']:10.0f}"
            f"{c32['p50_ms']:9.2f}{c32['p99_ms']:9.2f}{c32['non2xx']:8d}"
            f"{(f'{cpu:.0f}' if cpu else ''):>11}{rss:>13}"
        )
    print(
        f"\n{'of which':14}{'c1 kernel us':>13}{'c1 switches':>12}{'c32 kernel us':>14}"
        f"{'c32 switches':>13}"
    )
    for name, entry in scenarios.items():
        c1, c32 = entry["c1"], entry["c32"]
        if "cpu_sys_us_per_req" in c32:
            print(
                f"{name:14}{c1['cpu_sys_us_per_req']:13.0f}{c1['switches_per_req']:12.2f}"
                f"{c32['cpu_sys_us_per_req']:14.0f}{c32['switches_per_req']:13.2f}"
            )
    print()
    for name, value in report["ratios"].items():  # type: ignore[attr-defined]
        print(f"{name:32} {value}")


if __name__ == "__main__":
    main()
