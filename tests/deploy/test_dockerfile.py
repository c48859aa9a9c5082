"""The Dockerfile: multi-stage, slim, non-root, health-checked, serving with gunicorn."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import resolve

from gateway_project import health

from .manifests import DOCKERFILE, ROOT, dockerfile, dockerfile_stages

HADOLINT = shutil.which("hadolint", path=str(Path(sys.executable).parent))
GUNICORN_CMD = ["gunicorn", "--config", "gateway_project/gunicorn.conf.py", "gateway_project.wsgi"]
BUILD_TOOLS = ("build-essential", "gcc", "g++", "make ", "libpq-dev", "python3-dev")


def _final_stage() -> list[dict]:
    return dockerfile_stages()[-1]


def _instructions(stage: list[dict], name: str) -> list[str]:
    return [i["value"] for i in stage if i["instruction"] == name]


def test_dockerfile_passes_hadolint():
    if HADOLINT is None:
        pytest.fail("hadolint is missing: `pip install -r requirements-dev.txt`")
    result = subprocess.run(
        [HADOLINT, "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_is_multi_stage_on_python_311_slim():
    stages = dockerfile_stages()
    assert len(stages) >= 2
    assert set(dockerfile().parent_images) == {"python:3.11-slim"}
    copies = _instructions(_final_stage(), "COPY")
    assert copies and all(c.startswith("--from=build ") for c in copies), copies


def test_final_stage_installs_no_build_tools():
    final_runs = " ".join(_instructions(_final_stage(), "RUN"))
    assert "apt-get install" not in final_runs and "pip install" not in final_runs
    assert not any(tool in final_runs for tool in BUILD_TOOLS)


def test_static_files_are_collected_at_build_without_a_real_secret():
    build_runs = " ".join(_instructions(dockerfile_stages()[0], "RUN"))
    assert "SECRET_KEY=build" in build_runs
    assert "manage.py collectstatic --noinput" in build_runs
    # Collected into STATIC_ROOT under /app, which the final stage copies whole.
    static_root = Path(settings.STATIC_ROOT).relative_to(settings.BASE_DIR)
    assert static_root.parts[0] == "var"
    assert "/app /app" in " ".join(_instructions(_final_stage(), "COPY"))


def test_final_stage_runs_as_a_non_root_user():
    (user,) = _instructions(_final_stage(), "USER")
    name = user.split(":")[0]
    assert name not in ("root", "0")
    assert name.isdigit(), "a numeric UID lets Kubernetes verify runAsNonRoot"


def test_health_check_probes_the_liveness_endpoint_with_python():
    (check,) = _instructions(_final_stage(), "HEALTHCHECK")
    command = json.loads(check.split("CMD", 1)[1])
    assert command[:3] == ["python", "-m", "gateway_project.probe"]
    assert resolve(command[3]).func is health.liveness


def test_entry_point_is_gunicorn_with_the_config_file():
    (cmd,) = _instructions(_final_stage(), "CMD")
    assert json.loads(cmd) == GUNICORN_CMD
    assert not _instructions(_final_stage(), "ENTRYPOINT")
    assert (ROOT / GUNICORN_CMD[2]).exists()


def test_image_listens_where_gateway_bind_says_and_keeps_state_in_its_var_dir():
    env = dockerfile().envs
    port = env["GATEWAY_BIND"].rsplit(":", 1)[1]
    assert _instructions(_final_stage(), "EXPOSE") == [port]
    assert env["GATEWAY_BIND"].startswith("0.0.0.0:")
    volumes = json.loads(_instructions(_final_stage(), "VOLUME")[0])
    assert volumes == [env["GATEWAY_VAR_DIR"]]
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"


def test_dockerignore_keeps_secrets_and_local_state_out_of_the_build_context():
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", "var", ".env", "tests", "deploy"} <= ignored
    # Everything the image runs is Python inside the project packages.
    assert not {"gateway_project", "config", "manage.py", "requirements.txt"} & ignored
