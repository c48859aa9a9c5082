"""hide_credentials: the forwarded headers never carry the caller's credentials."""

from __future__ import annotations

from routing.forwarding import request_headers_from_meta

META = {
    "HTTP_AUTHORIZATION": "Bearer secret",
    "HTTP_X_API_KEY": "key-secret",
    "HTTP_ACCEPT": "application/json",
}


def test_credentials_are_forwarded_by_default() -> None:
    names = dict(request_headers_from_meta(META))
    assert names["authorization"] == "Bearer secret"
    assert names["x-api-key"] == "key-secret"


def test_hide_credentials_drops_authorization_and_api_key() -> None:
    headers = dict(request_headers_from_meta(META, hide_credentials=True))
    assert headers == {"accept": "application/json"}
