"""Instructions per proxied request, counted by valgrind: a CPU measure the host cannot move.

`make bench` times requests, and on a shared 2-core host the same code moves by a third
between runs, more than most single changes are worth; bench/calls.py counts calls, which
weigh a dict lookup and a JSON encoding alike. This counts the machine instructions the
process executes (valgrind's callgrind, instrumenting only while the requests are served):
it serves kept-alive requests in this process as a worker does (bench/calls.py's harness:
DrainingThreadWorker.handle() over a socketpair, against nginx, PostgreSQL and Redis as
`make bench` sets them up) and divides. It reports the request thread's instructions (the
serving thread; runs of the same code agreed within 0.1% back to back and within about 1%
over a session, so a change under 1% needs several runs) and all threads' (the
access log's writer and the deferred metrics too, but also timers whose work per request
depends on how long the run takes: less repeatable).

    .venv/bin/python bench/instructions.py --requests 400 --route full [--top 30]
    .venv/bin/python bench/instructions.py --part "limit step left out (no Redis)"
    .venv/bin/python bench/instructions.py --parts    # every bench/parts.py variant, a table
    .venv/bin/python bench/instructions.py --keep /tmp/request.out  # then, who calls what:
    callgrind_annotate --tree=caller /tmp/request.out

Needs valgrind (Debian's package) and what bench/calls.py needs. Under valgrind the request
head is parsed by gunicorn's Python parser: valgrind 3.19 cannot decode the SSE4.2
instruction gunicorn_h1c's picohttpparser uses. That adds the same instructions to every
run, so compare runs with each other, not with `make bench`.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import parts  # noqa: E402 - after the path is set
from bench.parts import WHOLE  # noqa: E402

# Set in the environment of the run under valgrind, so the script knows which side it is.
_UNDER_VALGRIND = "GATEWAY_BENCH_UNDER_CALLGRIND"
_WARM_UP = 200
_COLLECTED = re.compile(r"Collected\s*:\s*(\d+)")


def serve_counted(requests: int, route: str, part: str) -> None:
    """Under valgrind: warm up, then instrument exactly `requests` requests (with one of
    bench/parts.py's variants set up, `part` naming it)."""
    from bench import calls, run

    tmp = run.work_dir("gwinstr-")
    nginx, token = calls.bench_services(tmp)
    try:
        worker, serve_one = calls.kept_alive_client(f"/{route}/data.json", token)
        with parts.variants(worker)[part]():
            for _ in range(_WARM_UP):  # route table, connections, caches
                serve_one()
            callgrind_control("on")
            for _ in range(requests):
                serve_one()
            callgrind_control("off")
    finally:
        calls.stop_nginx(nginx)
        shutil.rmtree(tmp, ignore_errors=True)


def callgrind_control(state: str) -> None:
    """Turn callgrind's instrumentation of this process on or off (returns once it is)."""
    subprocess.run(
        ["callgrind_control", "--instr=" + state, str(os.getpid())],
        check=True,
        capture_output=True,
    )


def _thread_total(profile: Path) -> int:
    """The instructions one of callgrind's per-thread profiles holds."""
    totals = [
        int(line.split()[1])
        for line in profile.read_text().splitlines()
        if line.startswith(("summary:", "totals:"))
    ]
    if not totals:
        raise SystemExit(f"no total in {profile}")
    return max(totals)  # a part dumped before instrumentation began sums to 0


def count(
    requests: int, route: str, top: int, part: str = WHOLE, keep: Path | None = None
) -> tuple[float, float]:
    """Run this script's counted side under valgrind; instructions per request on the
    request thread and on all threads (`keep`: where to copy the request thread's profile)."""
    if shutil.which("valgrind") is None:
        raise SystemExit("bench/instructions.py needs valgrind: apt-get install -y valgrind")
    with tempfile.TemporaryDirectory(prefix="gwinstr-") as tmp:
        log, out = Path(tmp) / "valgrind.log", Path(tmp) / "callgrind.out"
        env = dict(os.environ, PYTHONHASHSEED="0", GUNICORN_CMD_ARGS="--http-parser python")
        env[_UNDER_VALGRIND] = "1"
        command = [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            "--separate-threads=yes",  # one profile per thread: out-01 is the serving thread
            f"--log-file={log}",
            f"--callgrind-out-file={out}",
            sys.executable,
            str(Path(__file__).resolve()),
            "--requests",
            str(requests),
            "--route",
            route,
            "--part",
            part,
        ]
        finished = subprocess.run(command, env=env, check=False)
        found = _COLLECTED.search(log.read_text()) if log.exists() else None
        if finished.returncode != 0 or found is None:
            if log.exists():  # valgrind's own complaints (an unknown instruction, say)
                print("\n".join(log.read_text(errors="replace").splitlines()[-30:]))
            raise SystemExit(f"the counted run failed (exit {finished.returncode}); see above")
        request_thread = Path(f"{out}-01")
        if keep is not None:
            shutil.copyfile(request_thread, keep)
        if top:
            annotated = subprocess.run(
                ["callgrind_annotate", str(request_thread)],
                capture_output=True,
                text=True,
                check=True,
            )
            # callgrind_annotate's header (profile, events, totals) is 24 lines long.
            print("\n".join(annotated.stdout.splitlines()[: top + 24]))
        return _thread_total(request_thread) / requests, int(found.group(1)) / requests


def main() -> None:
    """Print the instructions per request of one route."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--route", choices=["full", "open"], default="full")
    parser.add_argument(
        "--top", type=int, default=0, help="also list the request thread's N costliest C functions"
    )
    parser.add_argument(
        "--part",
        default=WHOLE,
        choices=list(parts.variants(None)),
        help="one of bench/parts.py's variants",
    )
    parser.add_argument(
        "--parts", action="store_true", help="each of bench/parts.py's variants, as a table"
    )
    parser.add_argument(
        "--keep",
        type=Path,
        help="copy the request thread's profile here (callgrind_annotate --tree=caller FILE)",
    )
    args = parser.parse_args()
    if os.environ.get(_UNDER_VALGRIND):
        serve_counted(args.requests, args.route, args.part)
        return
    if args.parts:
        report_parts(args.requests, args.route)
        return
    request_thread, all_threads = count(args.requests, args.route, args.top, args.part, args.keep)
    print(
        f"{request_thread:,.0f} instructions per request on the request thread, "
        f"{all_threads:,.0f} on all threads ({args.requests} {args.route} requests)"
    )


def report_parts(requests: int, route: str) -> None:
    """Request-thread instructions per request with each part left out, and the difference."""
    names = list(parts.variants(None))
    whole = count(requests, route, 0)[0]
    print(f"{'what runs':55} {'instructions/request':>21} {'whole minus this':>17}")
    print(f"{WHOLE:55} {whole:21,.0f} {0:17,.0f}")
    for name in names[1:]:
        this = count(requests, route, 0, name)[0]
        print(f"{name:55} {this:21,.0f} {whole - this:17,.0f}")


if __name__ == "__main__":
    main()
