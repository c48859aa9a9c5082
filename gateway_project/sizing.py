"""How many CPUs this process may really use: CPU affinity and the cgroup (container) quota."""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def _cgroup_v2_cpus(root: Path) -> float | None:
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    try:
        return int(quota) / int(period)
    except (ValueError, ZeroDivisionError):
        return None


def _cgroup_v1_cpus(root: Path) -> float | None:
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    if quota <= 0 or period <= 0:
        return None
    return quota / period


def available_cpus(cgroup_root: Path = CGROUP_ROOT) -> int:
    """CPUs this process can use: affinity, capped by a container's CPU limit (at least 1).

    `os.cpu_count()` reports the host's CPUs: on a 64-core Kubernetes node with a 1-CPU limit
    it would size 129 workers and run the pod out of memory.
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    quota = _cgroup_v2_cpus(cgroup_root)
    if quota is None:
        quota = _cgroup_v1_cpus(cgroup_root)
    if quota is not None:
        cpus = min(cpus, math.ceil(quota))
    return max(cpus, 1)


def default_workers(*, cpus: int, redis: bool) -> int:
    """gunicorn workers: CPUs + 1 with Redis; without it one, so in-process limits hold.

    Each worker runs Python on one core at a time (the GIL) and serves concurrent requests on
    its threads, so CPUs + 1 keeps every core busy with one to spare for I/O waits; more
    processes than that only queue for the same cores (measured: 2 CPUs, gateway_full at c32,
    p99 about half with 3 workers than with 5, for the same throughput and CPU per request).
    """
    return cpus + 1 if redis else 1
