"""Take docs/screenshots/api-docs.png: Swagger UI with a service picked, via headless Chromium.

Run from the repository root with the dev requirements installed and Debian's chromium:
`python docs/screenshots/take_api_docs.py` (`apt-get install chromium`). Everything runs on
loopback in a temporary var dir.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.support.gateway_server import free_port  # noqa: E402
from tests.support.upstream import UpstreamServer  # noqa: E402

CONFIG = """\
services:
  - name: rd-service
    url: {url}
    openapi: /openapi.json
routes:
  - path: /api/v1/rd/**
    service: rd-service
    methods: [GET]
    strip_prefix: true
    rate_limit: {{requests_per_minute: 100, burst: 20}}
  - path: /tasks
    service: rd-service
    methods: [POST]
    authentication: optional
"""


def main() -> None:
    """Start an upstream and a gateway, then screenshot /api/docs?service=rd-service."""
    python = sys.executable
    with tempfile.TemporaryDirectory() as var, UpstreamServer("rd") as upstream:
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")} | {
            "GATEWAY_VAR_DIR": var,
            "SECRET_KEY": "screenshot-only",
            "DJANGO_SETTINGS_MODULE": "gateway_project.settings",
            "GATEWAY_SECURE_COOKIES": "false",
        }
        config = Path(var) / "gateway.yaml"
        config.write_text(CONFIG.format(url=upstream.url))
        for command in (
            ["migrate", "--noinput", "-v", "0"],
            ["collectstatic", "--noinput", "-v", "0"],
            ["gateway", "import", str(config)],
        ):
            subprocess.run(  # noqa: S603 - our own manage.py
                [python, "manage.py", *command], cwd=ROOT, env=env, check=True
            )
        port = free_port()
        server = subprocess.Popen(  # noqa: S603 - gunicorn from this venv
            [python, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "gateway_project.wsgi"],
            cwd=ROOT,
            env=env,
        )
        try:
            for _ in range(100):
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
                    break
                except OSError:
                    time.sleep(0.1)
            out = ROOT / "docs" / "screenshots" / "api-docs.png"
            subprocess.run(  # noqa: S603 - Debian's chromium, loopback only
                [
                    "/usr/bin/chromium",
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                    "--hide-scrollbars",
                    "--window-size=1280,1500",
                    "--virtual-time-budget=10000",
                    f"--screenshot={out}",
                    f"http://127.0.0.1:{port}/api/docs?service=rd-service#/default/listTasks",
                ],
                check=True,
                timeout=120,
            )
        finally:
            server.terminate()
            server.wait(30)


if __name__ == "__main__":
    main()
