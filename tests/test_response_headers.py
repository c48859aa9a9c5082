"""The gateway's own response headers: stored exactly as Django's `response[name] = value`."""

from __future__ import annotations

import pytest
from django.http import BadHeaderError, HttpResponse

from gateway_project.response_headers import set_header, set_headers_if_absent


@pytest.mark.parametrize(
    "value",
    [
        "4b2f9f36280dfc9dfd0a609ace73908f",
        '"rate";q=10;w=60, "day";q=1000;w=86400',
        "",
        " padded ",
        "caf\xe9",  # latin-1, not ASCII: Django's path
        "snow \u2603",  # not latin-1: Django MIME-encodes it
        7,  # not a str: Django converts it
    ],
)
def test_a_header_is_stored_as_django_stores_it(value):
    ours, djangos = HttpResponse(), HttpResponse()
    set_header(ours, "RateLimit-Policy", value)
    djangos["RateLimit-Policy"] = value
    assert ours.headers._store == djangos.headers._store
    assert ours.items() == djangos.items()


@pytest.mark.parametrize("value", ["split\r\nX-Evil: 1", "line\nfeed", "carriage\rreturn"])
def test_a_value_with_cr_or_lf_is_refused_as_django_refuses_it(value):
    response = HttpResponse()
    with pytest.raises(BadHeaderError):
        set_header(response, "X-Request-ID", value)
    assert "x-request-id" not in response.headers._store


def test_a_header_already_there_in_whatever_case_is_kept():
    response = HttpResponse()
    response["Retry-After"] = "30"
    for name in ("Retry-After", "retry-after", "RETRY-AFTER"):
        set_headers_if_absent(response, {name: "1"})
    # A value that is not ASCII takes Django's path, here its MIME encoding.
    set_headers_if_absent(response, {"RateLimit-Limit": "10", "X-Note": "snow \u2603"})
    djangos = HttpResponse()
    djangos["X-Note"] = "snow \u2603"
    assert response["Retry-After"] == "30"
    assert list(response.items()) == [
        ("Content-Type", "text/html; charset=utf-8"),
        ("Retry-After", "30"),
        ("RateLimit-Limit", "10"),
        ("X-Note", djangos["X-Note"]),
    ]
    assert djangos["X-Note"] != "snow \u2603"
