"""The gateway served by real gunicorn: config reaches it through the database and Redis."""

from __future__ import annotations

import email.utils
import json
import re
import time
import urllib.request

import pytest

from routing.models import Route, Service
from tests.support.gateway_server import GatewayServer

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _get(url: str) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_route_created_in_the_database_is_served_within_the_poll_interval(upstream):
    with GatewayServer() as gateway:
        status, _, _ = _get(f"{gateway.url}/api/v1/e2e/echo")
        assert status == 404
        service = Service.objects.create(name="e2e", url=upstream.url)
        Route.objects.create(path="/api/v1/e2e/**", service=service, authentication="none")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            status, headers, body = _get(f"{gateway.url}/api/v1/e2e/echo")
            if status == 200:
                break
            time.sleep(0.1)
        assert status == 200, gateway.log()
        assert json.loads(body)["path"] == "/api/v1/e2e/echo"
        assert re.fullmatch("[0-9a-f]{32}", headers["X-Request-ID"])
        # The worker formats Date once per second (gunicorn_worker.http_date_per_second).
        served_at = email.utils.parsedate_to_datetime(headers["Date"])
        assert abs(served_at.timestamp() - time.time()) < 5
