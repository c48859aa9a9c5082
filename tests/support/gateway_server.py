"""A real gateway served by gunicorn in a subprocess, for end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]
GUNICORN = Path(sys.executable).with_name("gunicorn")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_database_url() -> str:
    """A DATABASE_URL naming the database the test session is using right now."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or "postgres"
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return f"postgres://{user}@{host}:{port}/{db['NAME']}"


def gateway_env(**overrides: str) -> dict[str, str]:
    """The environment of a gateway subprocess sharing the test session's database and Redis."""
    env: dict[str, str] = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("GATEWAY_", "JWT_", "DJANGO_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="gateway_project.settings",
        SECRET_KEY=settings.SECRET_KEY,
        DATABASE_URL=test_database_url(),
        GATEWAY_CONFIG_POLL="200ms",
        # Two workers share Redis; without it each would keep its own counters and caches,
        # so one worker, as `make run` starts then (gateway_project/sizing.py).
        GATEWAY_WORKERS="2" if settings.REDIS_URL else "1",
        GATEWAY_THREADS="4",
        GATEWAY_SECURE_COOKIES="false",
        LOG_LEVEL="WARNING",
        # Off unless a test asks: rows a server flushes on exit would outlive the test.
        GATEWAY_USAGE_TRACKING="false",
        PYTHONDONTWRITEBYTECODE="1",
    )
    if settings.REDIS_URL:
        env["REDIS_URL"] = settings.REDIS_URL
        env["REDIS_KEY_PREFIX"] = str(settings.CACHES["default"]["KEY_PREFIX"])
    else:
        env.pop("REDIS_URL", None)
    env.update(overrides)
    return env


# How long gunicorn may take to answer /health: a bound, not a measurement. Starting Django in
# a master and its workers is a few CPU-seconds, which a shared two-core machine at load 10+
# stretched past 30 s.
START_TIMEOUT_SECONDS = 120.0


class GatewayServer:
    """gunicorn serving the gateway on a free loopback port, as `make run` serves it."""

    def __init__(self, *, app: str = "gateway_project.wsgi", **env: str) -> None:
        self.app = app  # the WSGI module gunicorn serves (a test may serve its own beside)
        self.port = free_port()
        self.env = gateway_env(GATEWAY_BIND=f"127.0.0.1:{self.port}", **env)
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = Path(settings.VAR_DIR) / f"e2e-gateway-{self.port}.log"

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:PORT."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = START_TIMEOUT_SECONDS) -> GatewayServer:
        """Start gunicorn and wait until /health answers (polled; returns as soon as it does)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [str(GUNICORN), "--config", "gateway_project/gunicorn.conf.py", self.app],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gateway exited early:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=1) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"gateway did not become healthy in {timeout}s:\n{self.log()}")

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, wait for a graceful exit (SIGKILL after `timeout`); the exit status."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(5)

    def log(self) -> str:
        """What the server printed so far (last 4000 characters)."""
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def __enter__(self) -> GatewayServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
