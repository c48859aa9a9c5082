"""The console's own answers are console pages: logout on GET, 403 and 404, never empty."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts.models import User

pytestmark = pytest.mark.django_db


def test_get_logout_is_a_page_with_a_logout_button_and_post_logs_out():
    user = User.objects.create_superuser("bye", "bye@example.com", "a long passphrase 42")
    client = Client()
    client.force_login(user)
    page = client.get("/admin/logout/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'method="post"' in html and 'value="Log out"' in html and "csrfmiddlewaretoken" in html
    client.post("/admin/logout/")
    assert client.get("/admin/").status_code == 302  # back to the login page


def test_a_refused_console_page_is_a_console_page_not_json():
    user = User.objects.create_user("norole", password="a long passphrase 42", is_staff=True)
    client = Client()
    client.force_login(user)
    response = client.get("/admin/gateway/explain/")
    assert response.status_code == 403
    assert response["Content-Type"].startswith("text/html")
    assert b"console role" in response.content


def test_an_unknown_console_page_is_a_console_404():
    user = User.objects.create_superuser("lost", "lost@example.com", "a long passphrase 42")
    client = Client()
    client.force_login(user)
    response = client.get("/admin/gateway/history/no.such/1/restore/", follow=False)
    assert response.status_code in (404, 405)
    assert response.content  # never an empty body


def test_the_route_forms_service_autocomplete_answers_an_operator():
    from django.contrib.auth.models import Group

    from audit.roles import OPERATOR, ensure_console_groups
    from routing.models import Service

    ensure_console_groups()
    Service.objects.create(name="auto-svc", url="http://127.0.0.1:9")
    user = User.objects.create_user("auto-op", password="a long passphrase 42", is_staff=True)
    user.groups.add(Group.objects.get(name=OPERATOR))
    client = Client()
    client.force_login(user)
    response = client.get(
        "/admin/autocomplete/",
        {"term": "auto", "app_label": "routing", "model_name": "route", "field_name": "service"},
    )
    assert response.status_code == 200
    assert response.json()["results"][0]["text"] == "auto-svc"
