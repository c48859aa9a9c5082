"""Function calls per proxied request: a measure that does not move with the machine's noise.

On a shared 2-core machine timings move by 10% between runs of the same code, more than most
single changes to the request's path are worth. This counts instead: it serves kept-alive
requests in this process exactly as a worker does (the gateway's DrainingThreadWorker.handle()
over a socketpair, against nginx as the upstream and the bench's PostgreSQL and Redis, after
gunicorn.conf.py's worker hooks) and counts, with sys.setprofile, every Python function call
and every call into C made on the request thread, split by component as bench/profile.py
splits its samples. The count moves only when the code does, so a change can be judged before
`make bench`, which still has the last word. The background writers' work (access log lines,
deferred metrics) is not on the request thread and not counted.

    .venv/bin/python bench/calls.py --requests 500 --route full

Needs nginx on PATH and the bench's PostgreSQL and Redis (BENCH_DATABASE_URL, BENCH_REDIS_URL
as for bench/run.py).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any
from unittest import mock

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import run  # noqa: E402 - after the path is set
from bench.profile import OTHER, component_of  # noqa: E402


def inside_project(filename: str, root: Path = ROOT) -> str:
    """A code file's path as component_of expects it: from its package down (an installed
    package's after site-packages/, the project's after its root), so that a checkout's own
    path (say /work/wt-gunicorn/) cannot match a component's fragment."""
    installed = filename.rpartition("site-packages/")[2]
    if installed != filename:
        return installed
    return filename.removeprefix(f"{root}/")


class CallCounter:
    """Calls by component, from sys.setprofile events (Python calls and calls into C)."""

    def __init__(self) -> None:
        self.python: Counter[str] = Counter()
        self.c: Counter[str] = Counter()
        self.functions: Counter[str] = Counter()  # Python functions, as file:line(name)
        self._components: dict[str, str] = {}

    def _component(self, frame: FrameType) -> str:
        filename = frame.f_code.co_filename
        known = self._components.get(filename)
        if known is None:
            known = self._components[filename] = component_of(inside_project(filename))
        return known

    def __call__(self, frame: FrameType, event: str, _arg: Any) -> None:
        """The profile hook: a call counts for the component of the code that runs it."""
        if event == "call":
            self.python[self._component(frame)] += 1
            code = frame.f_code
            self.functions[f"{code.co_filename}:{code.co_firstlineno}({code.co_name})"] += 1
        elif event == "c_call":  # charged to the Python code that calls into C
            self.c[self._component(frame)] += 1


def serving_worker() -> tuple[Any, Any]:
    """A DrainingThreadWorker set up as in a gunicorn worker process, without its event loop,
    and a factory of its connections."""
    from gunicorn.app.wsgiapp import WSGIApplication
    from gunicorn.workers.gthread import ThreadWorker

    from gateway_project.client_socket import ClientSocket
    from gateway_project.gunicorn_worker import DrainingThreadWorker, GatewayConnection

    sys.argv = ["gunicorn", "--config", "gateway_project/gunicorn.conf.py", "gateway_project.wsgi"]
    app = WSGIApplication("%(prog)s [OPTIONS] [APP_MODULE]")
    cfg = app.cfg
    worker = DrainingThreadWorker(1, os.getpid(), [], app, 30, cfg, cfg.logger_class(cfg))
    # gthread's own init_process would start the event loop; the request thread's part is here.
    with mock.patch.object(ThreadWorker, "init_process", lambda self: None):
        worker.init_process()
    worker.wsgi = app.wsgi()
    # Loading the application compiled the route table on this thread, over a database
    # connection. In a worker that is gunicorn's main thread; the pool threads that serve never
    # made one. This thread serves here, so it lets that connection go.
    from django.db import connections

    connections.close_all()
    worker.alive, worker.nr, worker.max_requests = True, 0, sys.maxsize
    worker.keepalived_conns, worker.tpool = [], None  # no pool: each request returns to "loop"
    cfg.post_worker_init(worker)
    # The access log's lines would mix with the report: the writer still runs, into nothing.
    access = logging.getLogger("gateway.access")
    access.handlers, access.propagate = [logging.NullHandler()], False

    def connection(sock: socket.socket) -> Any:
        adopted = ClientSocket.adopt(sock, worker.read_timeout)
        conn = GatewayConnection(cfg, adopted, ("127.0.0.1", 40000), ("127.0.0.1", 8000))
        conn.read_timeout = worker.read_timeout
        return conn

    return worker, connection


def kept_alive_client(path: str, token: str) -> tuple[Any, Callable[[], None]]:
    """The serving worker and a function that sends one kept-alive GET of `path` (with the
    bench's bearer token) over a socketpair, serves it through the worker's handle() on this
    thread and reads the 200 answer."""
    worker, connection = serving_worker()
    ours, client = socket.socketpair()
    conn = connection(ours)
    head = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nUser-Agent: bench\r\n"
        f"Authorization: Bearer {token}\r\n\r\n"
    ).encode()

    def serve_one() -> None:
        client.sendall(head)
        conn.gather = True
        if worker.handle(conn) is not True:
            raise RuntimeError("the worker closed the connection")
        worker._release_head(conn)
        answer = client.recv(1 << 16)
        if not answer.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"not a 200: {answer[:80]!r}")

    return worker, serve_one


def count_calls(requests: int, path: str, token: str) -> CallCounter:
    """Serve `requests` kept-alive GETs of `path` and count the request thread's calls."""
    _, serve_one = kept_alive_client(path, token)
    for _ in range(100):  # warm up: route table, connections, caches
        serve_one()
    counter = CallCounter()
    sys.setprofile(counter)
    try:
        for _ in range(requests):
            serve_one()
    finally:
        sys.setprofile(None)
    return counter


def bench_services(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Start nginx as the upstream and set this process up as a worker of the bench's gateway
    (its environment, database and route table): the nginx process and a bearer token."""
    database_url, redis_url = run.bench_stores()
    upstream_port, proxy_port = run.free_port(), run.free_port()
    nginx = run.start_nginx(tmp, upstream_port, proxy_port)
    try:
        env = run.gateway_env(tmp, run.free_port(), database_url, redis_url)
        run.prepare_gateway(tmp, env, upstream_port)
    except BaseException:
        stop_nginx(nginx)
        raise
    os.environ.update(env)
    os.chdir(ROOT)
    return nginx, run.bench_token(env["JWT_SIGNING_KEY"])


def stop_nginx(nginx: subprocess.Popen[bytes]) -> None:
    """Stop the upstream nginx."""
    nginx.send_signal(signal.SIGQUIT)
    nginx.wait(10)


def report(counter: CallCounter, requests: int, functions: int) -> None:
    """Print calls per request, in all and by component (and the most called functions)."""
    python, c = sum(counter.python.values()), sum(counter.c.values())
    print(
        f"{(python + c) / requests:.1f} calls per request: {python / requests:.1f} Python "
        f"function calls, {c / requests:.1f} calls into C\n"
    )
    print(f"| {'component':55} | {'Python':>7} | {'into C':>7} |")
    print(f"|{'-' * 57}|{'-' * 9}|{'-' * 9}|")
    for name, _ in (counter.python + counter.c).most_common():
        label = name if name != OTHER else "other (interpreter, stdlib, this script)"
        print(
            f"| {label:55} | {counter.python[name] / requests:7.1f} | "
            f"{counter.c[name] / requests:7.1f} |"
        )
    if functions:
        print(f"\nThe {functions} Python functions called most, calls per request:")
        for function, count in counter.functions.most_common(functions):
            print(f"{count / requests:7.1f}  {function.removeprefix(str(ROOT) + '/')}")


def main() -> None:
    """Count the calls of one route's requests and print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--route", choices=["full", "open"], default="full")
    parser.add_argument("--functions", type=int, default=0, help="also list the N most called")
    args = parser.parse_args()
    tmp = run.work_dir("gwcalls-")
    nginx, token = bench_services(tmp)
    try:
        counter = count_calls(args.requests, f"/{args.route}/data.json", token)
    finally:
        stop_nginx(nginx)
        shutil.rmtree(tmp, ignore_errors=True)
    report(counter, args.requests, args.functions)


if __name__ == "__main__":
    main()
