"""The console dashboard of a real gunicorn gateway shows what its workers served."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request

import pytest
import requests
from django.conf import settings
from django.contrib.auth.hashers import PBKDF2PasswordHasher

from accounts.models import User
from routing.models import Route, Service
from tests.support.gateway_server import ROOT, GatewayServer, gateway_env
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

ROUTE = "ANY /api/v1/console/**"


def _collect_static() -> None:
    """The console's CSS as `make run` serves it (hashed names need the manifest)."""
    if (settings.STATIC_ROOT / "staticfiles.json").exists():
        return
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "--verbosity", "0"],
        cwd=ROOT,
        env=gateway_env(),
        check=True,
        timeout=120,
    )


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def _dashboard_row(session: requests.Session, base: str) -> list[str] | None:
    html = session.get(f"{base}/admin/", timeout=10).text
    match = re.search(r'<tr data-route="' + re.escape(ROUTE) + r'">(.*?)</tr>', html, re.DOTALL)
    return re.findall(r'<td class="gw-num">([^<]*)</td>', match.group(1)) if match else None


def test_dashboard_of_a_running_gateway_shows_its_traffic_and_access_log(upstream):
    _collect_static()
    admin = User.objects.create_superuser("console-admin", "admin@example.com")
    # The server verifies with the production hashers, not the test suite's fast one.
    hasher = PBKDF2PasswordHasher()
    admin.password = hasher.encode("pw-console-123", hasher.salt(), iterations=1000)
    admin.save()
    service = Service.objects.create(name="console", url=upstream.url)
    Route.objects.create(path="/api/v1/console/**", service=service, authentication="none")
    # Without Redis the aggregates live in the process: the embedded mode runs one worker.
    workers = "2" if settings.REDIS_URL else "1"
    with GatewayServer(
        GATEWAY_TRAFFIC_FLUSH="200ms", GATEWAY_WORKERS=workers, LOG_LEVEL="INFO"
    ) as gateway:
        wait_until(
            lambda: _get(f"{gateway.url}/api/v1/console/echo/warmup") == 200,
            interval=0.1,
            message=gateway.log,
        )
        statuses = [_get(f"{gateway.url}/api/v1/console/echo/{n}") for n in range(7)]
        statuses += [_get(f"{gateway.url}/api/v1/console/status/502") for _ in range(2)]
        assert statuses == [200] * 7 + [502] * 2

        session = requests.Session()
        page = session.get(f"{gateway.url}/admin/login/", timeout=10)
        assert "csrftoken" in session.cookies, (page.status_code, page.headers, gateway.log())
        login = session.post(
            f"{gateway.url}/admin/login/?next=/admin/",
            data={
                "username": "console-admin",
                "password": "pw-console-123",
                "csrfmiddlewaretoken": session.cookies["csrftoken"],
            },
            headers={"Referer": f"{gateway.url}/admin/login/"},
            timeout=10,
        )
        assert login.status_code == 200 and 'id="traffic-dashboard"' in login.text, gateway.log()

        # The other worker flushes its buffer every 200 ms: poll (bounded, generous) until the
        # count is in, then check the figures exactly.
        def counted() -> list[str] | None:
            found = _dashboard_row(session, gateway.url)
            return found if found is not None and found[0] == "10" else None

        row = wait_until(counted, interval=0.2, message=gateway.log)
        requests_count, error_rate, _, _, _ = row
        assert requests_count == "10"  # the warm-up request and the nine above
        assert error_rate == "20.0%"
    lines = [
        json.loads(line)
        for line in gateway.log_path.read_text().splitlines()
        if line.startswith('{"ts"')
    ]
    ours = [line for line in lines if line["route"] == ROUTE]
    assert len(ours) == 10
    assert {line["status"] for line in ours} == {200, 502}
