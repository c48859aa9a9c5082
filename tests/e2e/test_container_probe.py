"""The image's HEALTHCHECK command against a real gateway whose ALLOWED_HOSTS are public names."""

from __future__ import annotations

import http.client
import subprocess
import sys

import pytest

from gateway_project.probe import PROBE_HOST_HEADER
from tests.support.gateway_server import ROOT, GatewayServer, free_port, gateway_env

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _healthcheck(bind: str, path: str = "/health") -> int:
    """Run the Dockerfile's HEALTHCHECK command as the container runtime does."""
    return subprocess.run(
        [sys.executable, "-m", "gateway_project.probe", path],
        cwd=ROOT,
        env=gateway_env(GATEWAY_BIND=bind),
        timeout=30,
        check=False,
    ).returncode


def _status(port: int, host: str) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", "/health", headers={"Host": host})
        return connection.getresponse().status
    finally:
        connection.close()


def test_healthcheck_passes_on_a_node_that_allows_only_named_hosts():
    # 127.0.0.1 only because GatewayServer waits for /health with it; localhost for the probe.
    allowed = "api.example.com,localhost,127.0.0.1"
    with GatewayServer(ALLOWED_HOSTS=allowed, GATEWAY_WORKERS="1") as node:
        assert _healthcheck(f"0.0.0.0:{node.port}") == 0
        assert _healthcheck(f"0.0.0.0:{node.port}", "/health/ready") == 0
        # The kubelet's default Host is the pod's address: turned away, hence `Host: localhost`.
        assert _status(node.port, "10.1.2.3:8000") == 400
        assert _status(node.port, PROBE_HOST_HEADER) == 200


def test_healthcheck_fails_when_nothing_listens():
    assert _healthcheck(f"0.0.0.0:{free_port()}") == 1
