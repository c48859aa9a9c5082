"""`make sdk`'s generator: the typed client built from the schema imports and calls a live gateway."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from routing.models import Route, Service

ROOT = Path(__file__).resolve().parents[2]
GENERATOR = Path(sys.executable).with_name("openapi-python-client")


@pytest.mark.django_db(transaction=True)
def test_generated_sdk_imports_and_lists_routes_from_a_live_gateway(
    tmp_path, live_server, staff_user, upstream
):
    if not GENERATOR.exists():
        pytest.skip("openapi-python-client is not installed: pip install -r requirements-dev.txt")
    schema = tmp_path / "gateway-openapi.json"
    schema.write_bytes(APIClient().get("/api/openapi.json").content)
    generated = subprocess.run(
        [
            str(GENERATOR),
            "generate",
            "--path",
            str(schema),
            "--output-path",
            str(tmp_path / "gateway_client"),
            "--meta",
            "none",
            "--config",
            str(ROOT / "config" / "openapi-python-client.yaml"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert generated.returncode == 0, generated.stdout + generated.stderr
    assert "Warning" not in generated.stdout + generated.stderr
    service = Service.objects.create(name="rd-service", url=upstream.url)
    Route.objects.create(path="/api/v1/rd/**", service=service)
    browser = APIClient()
    browser.force_login(staff_user)

    sys.path.insert(0, str(tmp_path))
    try:
        from gateway_client import Client
        from gateway_client.api.routes import gateway_routes_list

        cookies = {"sessionid": browser.cookies["sessionid"].value}
        with Client(base_url=live_server.url, cookies=cookies) as sdk:
            page = gateway_routes_list.sync(client=sdk, service="rd-service")
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m.split(".")[0] == "gateway_client"]:
            del sys.modules[name]
    assert page is not None and page.count == 1
    assert page.results[0].path == "/api/v1/rd/**"
    assert page.results[0].service == "rd-service"
