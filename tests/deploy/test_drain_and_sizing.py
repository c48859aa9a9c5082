"""The drain flag shared across gunicorn's fork, and worker sizing from the container's CPUs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gateway_project import drain
from gateway_project.probe import probe_port
from gateway_project.sizing import available_cpus, default_workers


@pytest.fixture
def draining():
    """This process marked as draining, cleared afterwards."""
    drain.begin_drain()
    yield
    drain.end_drain()


@pytest.mark.django_db
def test_readiness_answers_503_draining_while_liveness_stays_200(client, draining):
    ready = client.get("/health/ready")
    assert ready.status_code == 503
    assert ready["Content-Type"] == "application/problem+json"
    assert ready.json()["code"] == "draining"
    assert client.get("/health").status_code == 200


@pytest.mark.django_db
def test_readiness_is_200_when_not_draining(client):
    assert not drain.is_draining()
    assert client.get("/health/ready").status_code == 200


def test_drain_flag_set_in_one_process_is_seen_by_a_forked_one():
    # gunicorn's master maps the flag before forking; a worker must see the master's write.
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the "worker": wait for the parent's write, report what it sees
        os.close(write_end)
        os.read(read_end, 1)
        os._exit(0 if drain.is_draining() else 1)
    os.close(read_end)
    try:
        drain.begin_drain()
        os.write(write_end, b"x")
        _, status = os.waitpid(pid, 0)
    finally:
        drain.end_drain()
        os.close(write_end)
    assert os.waitstatus_to_exitcode(status) == 0


def _cgroup(tmp_path: Path, cpu_max: str) -> Path:
    (tmp_path / "cpu.max").write_text(cpu_max)
    return tmp_path


def test_cpu_limit_of_the_container_caps_the_cpu_count(tmp_path):
    assert available_cpus(_cgroup(tmp_path, "150000 100000\n")) == min(
        2, len(os.sched_getaffinity(0))
    )
    assert available_cpus(_cgroup(tmp_path, "50000 100000\n")) == 1


def test_no_cpu_limit_uses_the_cpus_the_process_may_run_on(tmp_path):
    assert available_cpus(_cgroup(tmp_path, "max 100000\n")) == len(os.sched_getaffinity(0))
    assert available_cpus(tmp_path / "missing") == len(os.sched_getaffinity(0))


def test_cgroup_v1_quota_is_honoured(tmp_path):
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("100000\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert available_cpus(tmp_path) == 1


@pytest.mark.parametrize(
    ("cpus", "redis", "workers"), [(1, True, 2), (4, True, 5), (4, False, 1), (1, False, 1)]
)
def test_workers_are_one_per_cpu_plus_one_with_redis_and_one_without(cpus, redis, workers):
    assert default_workers(cpus=cpus, redis=redis) == workers


@pytest.mark.parametrize(
    ("bind", "port"), [("0.0.0.0:8000", 8000), ("[::]:8080", 8080), ("127.0.0.1:9", 9)]
)
def test_probe_finds_the_port_in_gateway_bind(bind, port):
    assert probe_port(bind) == port
