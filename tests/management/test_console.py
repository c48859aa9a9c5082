"""Console pages: explain, config import/export, cluster status."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from routing.models import Route
from routing.table import route_tables

pytestmark = pytest.mark.django_db

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "gateway.example.yaml"


@pytest.fixture
def staff_client(client, django_user_model):
    user = django_user_model.objects.create_superuser("root", password="long-test-password-1")
    client.force_login(user)
    return client


def test_console_pages_need_a_staff_login(client):
    response = client.get("/admin/gateway/explain/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_explain_page_shows_the_route_and_verdict(staff_client, upstream):
    staff_client.post(
        "/admin/gateway/config/",
        {"file": SimpleUploadedFile("c.yaml", EXAMPLE.read_bytes()), "apply": "1"},
    )
    route_tables.reset()  # the test's transaction never commits, so the version never moves
    response = staff_client.post(
        "/admin/gateway/explain/", {"method": "GET", "path": "/api/v1/pm/tasks", "headers": ""}
    )
    text = response.content.decode()
    assert "route:      /api/v1/pm/**" in text
    assert "Verdict:" in text
    assert upstream.count() == 0


def test_explain_page_rejects_a_malformed_header_line(staff_client):
    response = staff_client.post(
        "/admin/gateway/explain/", {"method": "GET", "path": "/x", "headers": "no colon here"}
    )
    assert "Line 1 must look like" in response.content.decode()


def test_config_upload_previews_then_applies(staff_client):
    upload = SimpleUploadedFile("c.yaml", EXAMPLE.read_bytes())
    preview = staff_client.post("/admin/gateway/config/", {"file": upload, "preview": "1"})
    assert "+ route ANY /api/v1/rd/**" in preview.content.decode()
    assert Route.objects.count() == 0
    text = preview.context["form"].initial["text"]
    applied = staff_client.post("/admin/gateway/config/", {"text": text, "apply": "1"})
    assert applied.status_code == 302
    assert Route.objects.count() == 3


def test_invalid_upload_lists_errors_and_changes_nothing(staff_client):
    upload = SimpleUploadedFile("c.yaml", b"routes:\n  - path: /health\n    service: x\n")
    response = staff_client.post("/admin/gateway/config/", {"file": upload, "apply": "1"})
    text = response.content.decode()
    assert "shadows the gateway&#x27;s own path /health" in text
    assert "Nothing was changed" in text
    assert Route.objects.count() == 0


def test_config_download_is_the_export(staff_client):
    staff_client.post(
        "/admin/gateway/config/",
        {"file": SimpleUploadedFile("c.yaml", EXAMPLE.read_bytes()), "apply": "1"},
    )
    response = staff_client.get("/admin/gateway/config/", {"download": "1"})
    assert response["Content-Disposition"] == 'attachment; filename="gateway-config.yaml"'
    assert b"/api/v1/rd/**" in response.content


def test_cluster_page_lists_this_process_after_it_served(staff_client, make_route, upstream):
    make_route("/svc/**", upstream.url)
    staff_client.get("/svc/echo")
    response = staff_client.get("/admin/gateway/cluster/")
    version = route_tables.get().version
    assert f"<td>{version}</td>" in response.content.decode()
