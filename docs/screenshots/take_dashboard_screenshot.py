"""Take docs/screenshots/dashboard.png: a real gateway, some traffic, headless Chromium.

Usage (from the repository root, with dev requirements installed and Chromium at
/usr/bin/chromium or $CHROMIUM):  python docs/screenshots/take_dashboard_screenshot.py
Everything runs on loopback with a throw-away SQLite database; nothing else is touched.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
VAR = tempfile.mkdtemp(prefix="gw-screenshot-")
ENV = {
    **{k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "DATABASE_URL"))},
    "GATEWAY_VAR_DIR": VAR,
    "SECRET_KEY": "screenshot-only",
    "DJANGO_SETTINGS_MODULE": "gateway_project.settings",
    "GATEWAY_SECURE_COOKIES": "false",
    "GATEWAY_TRAFFIC_FLUSH": "200ms",
    "GATEWAY_WORKERS": "1",
    "LOG_LEVEL": "WARNING",
}
ENV.pop("REDIS_URL", None)
os.environ.update(ENV)
PASSWORD = "screenshot-pw-123"  # noqa: S105 - a throw-away local admin


def _get(url: str) -> None:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310
            response.read()
    except urllib.error.HTTPError:
        pass


def main() -> None:
    """Serve, send traffic, log in, screenshot."""
    import django

    django.setup()
    from django.core.management import call_command

    from accounts.models import User
    from routing.models import Route, Service
    from tests.support.upstream import UpstreamServer

    call_command("migrate", verbosity=0)
    call_command("collectstatic", "--noinput", verbosity=0)
    User.objects.create_superuser("admin", "admin@example.com", PASSWORD)
    port = 8765
    with UpstreamServer("demo") as upstream:
        for name, path in (("tasks", "/api/v1/tasks/**"), ("billing", "/api/v1/billing/**")):
            service = Service.objects.create(name=name, url=upstream.url)
            Route.objects.create(path=path, service=service, authentication="none")
        service = Service.objects.create(name="reports", url=upstream.url)
        Route.objects.create(
            path="/api/v1/reports/**", service=service, authentication="none", methods="GET"
        )
        gunicorn = Path(sys.executable).with_name("gunicorn")
        server = subprocess.Popen(  # noqa: S603 - our own gunicorn, fixed arguments
            [str(gunicorn), "--config", "gateway_project/gunicorn.conf.py", "gateway_project.wsgi"],
            cwd=ROOT,
            env={**os.environ, "GATEWAY_BIND": f"127.0.0.1:{port}"},
        )
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(100):
                try:
                    _get(f"{base}/health")
                    break
                except OSError:
                    time.sleep(0.1)
            rng = random.Random(7)  # noqa: S311 - a repeatable traffic mix, not security
            for n in range(240):
                pick = rng.random()
                if pick < 0.5:
                    _get(f"{base}/api/v1/tasks/echo/{n}")
                elif pick < 0.75:
                    _get(f"{base}/api/v1/billing/slow/{rng.choice([20, 40, 80, 160])}")
                elif pick < 0.85:
                    _get(f"{base}/api/v1/billing/status/{rng.choice([500, 502, 503])}")
                elif pick < 0.95:
                    _get(f"{base}/api/v1/reports/slow/{rng.choice([120, 250, 400])}")
                else:
                    _get(f"{base}/unknown/{n}")
            time.sleep(0.5)
            _screenshot(base)
        finally:
            server.terminate()
            server.wait(30)


def _screenshot(base: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{base}/admin/login/?next=/admin/")
        page.fill("#id_username", "admin")
        page.fill("#id_password", PASSWORD)
        page.click("input[type=submit]")
        page.wait_for_selector("#traffic-dashboard")
        target = ROOT / "docs" / "screenshots" / "dashboard.png"
        page.screenshot(path=str(target), full_page=True)
        browser.close()
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
