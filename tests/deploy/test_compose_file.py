"""deploy/docker-compose.yml: a valid compose file whose stack starts in the right order."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.urls import resolve

from gateway_project import health
from gateway_project.probe import probe_port
from routing.configfile.service import config_import
from routing.configfile.validate import parse_config

from .manifests import COMPOSE_FILE, GATEWAY_COMPOSE_SERVICES, ROOT, compose

DOCKER_COMPOSE = shutil.which("docker-compose", path=str(Path(sys.executable).parent))


def _service(name: str) -> dict:
    return compose()["services"][name]


def _seconds(duration: str) -> int:
    assert duration.endswith("s") and duration[:-1].isdigit(), duration
    return int(duration[:-1])


def test_compose_file_is_valid_for_docker_compose():
    if DOCKER_COMPOSE is None:
        pytest.fail("docker-compose is missing: `pip install -r requirements-dev.txt`")
    result = subprocess.run(
        [DOCKER_COMPOSE, "-f", str(COMPOSE_FILE), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_stack_has_database_cache_release_step_gateway_health_checker_and_upstream():
    assert set(compose()["services"]) == {
        "postgres",
        "redis",
        "migrate",
        "gateway",
        "healthcheck",
        "demo-upstream",
    }


def test_gateway_starts_only_after_the_release_step_succeeded():
    depends = _service("gateway")["depends_on"]
    assert depends["migrate"]["condition"] == "service_completed_successfully"
    assert depends["redis"]["condition"] == "service_healthy"
    migrate = _service("migrate")
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert migrate["command"] == ["python", "-m", "gateway_project.release"]
    assert migrate["restart"] == "no"
    assert (ROOT / "gateway_project" / "release.py").exists()


def test_health_checker_runs_the_gateway_healthcheck_command():
    checker = _service("healthcheck")
    assert checker["command"] == ["python", "manage.py", "gateway", "healthcheck"]
    assert checker["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


@pytest.mark.parametrize("service", GATEWAY_COMPOSE_SERVICES)
def test_gateway_image_services_share_database_redis_and_var_volume(service):
    spec = _service(service)
    assert spec["build"]["context"] == ".."
    env = spec["environment"]
    assert (
        env["DATABASE_URL"].startswith("postgres://") and "@postgres:5432/" in env["DATABASE_URL"]
    )
    assert env["REDIS_URL"] == "redis://redis:6379/0"
    # SECRET_KEY is generated once by the release step into this shared volume.
    assert "SECRET_KEY" not in env
    assert f"gateway-var:{env['GATEWAY_VAR_DIR']}" in spec["volumes"]


def test_published_port_is_the_port_the_gateway_binds():
    gateway = _service("gateway")
    (mapping,) = gateway["ports"]
    container_port = int(mapping.rsplit(":", 1)[1])
    assert container_port == probe_port(gateway["environment"]["GATEWAY_BIND"])
    assert resolve("/health").func is health.liveness


def test_stop_grace_period_covers_drain_and_graceful_timeout():
    gateway = _service("gateway")
    env = gateway["environment"]
    needed = _seconds(env["GATEWAY_DRAIN"]) + int(env["GATEWAY_GRACEFUL_TIMEOUT"])
    assert _seconds(gateway["stop_grace_period"]) > needed


def _mounted_file(service: dict, container_path: str) -> Path:
    """The host file a bind mount of `service` shows at `container_path`."""
    for volume in service["volumes"]:
        source, target = volume.split(":")[:2]
        if source.startswith(".") and container_path.startswith(target + "/"):
            return (COMPOSE_FILE.parent / source / container_path[len(target) + 1 :]).resolve()
    raise AssertionError(f"{container_path} is not on a bind mount")


def test_release_step_loads_config_compose_yaml_through_gateway_config():
    migrate = _service("migrate")
    config = _mounted_file(migrate, migrate["environment"]["GATEWAY_CONFIG"])
    assert config == ROOT / "config" / "compose.yaml"
    spec = parse_config(config.read_text())
    # The demo service points at the demo-upstream container and the port it listens on.
    command = _service("demo-upstream")["command"]
    port = command[command.index("http.server") + 1]
    assert spec.services["demo"].url == f"http://demo-upstream:{port}"


@pytest.mark.django_db
def test_compose_config_file_imports_cleanly_into_the_gateway():
    text = (ROOT / "config" / "compose.yaml").read_text()
    result = config_import(text=text)
    assert result.applied
    assert config_import(text=text).changes == []  # re-import is a no-op


def test_demo_upstream_serves_the_files_the_demo_route_reaches():
    demo_dir = ROOT / "deploy" / "demo"
    assert (demo_dir / "hello.json").exists()
    assert (demo_dir / "health.json").exists()
    volumes = _service("demo-upstream")["volumes"]
    assert "./demo:/srv:ro" in volumes
