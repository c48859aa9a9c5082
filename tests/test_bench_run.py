"""bench/run.py's readings of a server's CPU and context switches, and its report of them."""

from __future__ import annotations

import os
import subprocess
import sys

from bench import run

# A child that burns 0.3 s of CPU and switches out 50 times, then says so and waits.
_CHILD = """
import time
deadline = time.monotonic() + 0.3
while time.monotonic() < deadline:
    pass
for _ in range(50):
    time.sleep(0.001)
print("done", flush=True)
time.sleep(30)
"""


def test_cpu_and_context_switches_of_a_processs_children_are_counted():
    user, system = run.cpu_ticks(os.getpid())
    switches = run.context_switches(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", _CHILD], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "done\n"  # this process waits, using no CPU
        later_user, later_system = run.cpu_ticks(os.getpid())
        later_switches = run.context_switches(os.getpid())
    finally:
        child.kill()
        child.wait()
    assert (later_user + later_system) - (user + system) >= 0.2 * run.TICKS
    assert later_switches - switches >= 50


def _result(system_us: float | None, switches: float | None) -> run.WrkResult:
    return run.WrkResult(1000.0, 1.0, 2.0, 5000, 0, system_us=system_us, switches=switches)


def test_the_report_has_kernel_time_and_switches_only_for_our_servers(capsys):
    runs = {
        name: {"c1": [_result(None, None)], "c32": [_result(None, None)]}
        for name in ("direct", "nginx_proxy")
    }
    runs["gateway_open"] = {"c1": [_result(90.0, 3.0)], "c32": [_result(80.0, 5.5)]}
    runs["gateway_full"] = {
        "c1": [_result(95.0, 2.8), _result(99.0, 3.2), _result(97.0, 3.0)],
        "c32": [_result(88.0, 5.6)],
    }
    report = run.build_report(runs, {"gateway_open": [400.0], "gateway_full": [460.0]}, [], [])
    scenarios = report["scenarios"]
    assert isinstance(scenarios, dict)
    assert scenarios["gateway_full"]["c1"]["cpu_sys_us_per_req"] == 97.0
    assert scenarios["gateway_full"]["c1"]["switches_per_req"] == 3.0
    assert scenarios["gateway_full"]["c32"]["cpu_sys_us_per_req"] == 88.0
    assert "cpu_sys_us_per_req" not in scenarios["direct"]["c32"]
    run.print_table(report)
    printed = capsys.readouterr().out
    assert "gateway_full             97        3.00            88         5.60" in printed
