"""The consent page's redirect origin: only a registered URI's, only a well-formed CSP source."""

from __future__ import annotations

import pytest
from django.http import HttpResponse
from oauth2_provider.models import get_application_model

from accounts.oauth_pages import redirect_origin
from gateway_project.content_policy import allow_form_action

pytestmark = pytest.mark.django_db


@pytest.fixture
def app():
    model = get_application_model()
    return model.objects.create(
        name="web",
        client_type="public",
        authorization_grant_type="authorization-code",
        redirect_uris="https://app.example:8443/cb https://Other.Example/cb com.example.app:/cb",
    )


@pytest.mark.parametrize(
    ("uri", "origin"),
    [
        ("https://app.example:8443/cb", "https://app.example:8443"),
        ("https://Other.Example/cb", "https://other.example"),
        ("com.example.app:/cb", "com.example.app:"),
        ("https://evil.example/cb", None),  # not registered
        ("https://app.example:8443/other", None),
        ("", None),
    ],
)
def test_origin_is_that_of_a_registered_redirect_uri_only(app, uri, origin):
    assert redirect_origin(app, uri) == origin


@pytest.mark.parametrize(
    "source",
    [
        "https://a.example; script-src *",
        "https://a.example 'unsafe-inline'",
        "https://my_app.example",
        "*",
        "'self'",
    ],
)
def test_form_action_takes_no_other_source(source):
    response = HttpResponse("<p>", content_type="text/html")

    assert allow_form_action(response, source) is False
    assert getattr(response, "csp_form_action", ()) == ()


def test_consent_page_with_an_unusual_registered_host_renders_without_the_exception(client, app):
    from accounts.models import User

    app.redirect_uris = "https://my_app.example/cb"  # valid URL, but no CSP host-source
    app.save()
    client.force_login(User.objects.create_user("erin", password="pw-erin-12345678"))

    response = client.get(
        "/o/authorize/",
        {
            "response_type": "code",
            "client_id": app.client_id,
            "redirect_uri": "https://my_app.example/cb",
            "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            "code_challenge_method": "S256",
        },
    )

    assert response.status_code == 200
    assert "form-action 'self';" in response["Content-Security-Policy"]
