"""cors: preflight answers and the headers of ordinary answers, per CONTRACT section 5."""

from __future__ import annotations

import pytest

from routing.policies.cors import CorsPolicy, is_preflight, normalized_origin

APP = "https://app.example.com"


def policy(**overrides: object) -> CorsPolicy:
    settings: dict[str, object] = {
        "origins": [APP],
        "methods": ["GET", "POST"],
        "headers": ["Authorization", "Content-Type"],
        "expose_headers": ["X-Request-ID"],
        "credentials": False,
        "max_age_seconds": 600,
    }
    settings.update(overrides)
    return CorsPolicy.compile(**settings)  # type: ignore[arg-type]


def test_preflight_from_allowed_origin_carries_every_header() -> None:
    headers = policy().preflight_headers(APP, None)
    assert headers == {
        "Access-Control-Allow-Origin": APP,
        "Access-Control-Allow-Methods": "GET, POST",
        "Access-Control-Allow-Headers": "Authorization, Content-Type",
        "Access-Control-Max-Age": "600",
        "Vary": "Origin",
    }


def test_preflight_from_refused_origin_carries_no_cors_header() -> None:
    assert policy().preflight_headers("https://evil.example", None) == {}


def test_any_origin_without_credentials_answers_star() -> None:
    cors = policy(origins=["*"])
    assert cors.preflight_headers("https://x.example", None)["Access-Control-Allow-Origin"] == "*"
    headers = cors.response_headers("https://x.example")
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert "Vary" not in headers  # the answer is the same for every origin


def test_any_origin_with_credentials_names_the_origin() -> None:
    headers = policy(origins=["*"], credentials=True).response_headers("https://x.example")
    assert headers["Access-Control-Allow-Origin"] == "https://x.example"
    assert headers["Access-Control-Allow-Credentials"] == "true"
    assert headers["Vary"] == "Origin"


def test_actual_request_from_allowed_origin() -> None:
    assert policy(credentials=True).response_headers(APP) == {
        "Access-Control-Allow-Origin": APP,
        "Access-Control-Expose-Headers": "X-Request-ID",
        "Access-Control-Allow-Credentials": "true",
        "Vary": "Origin",
    }


def test_actual_request_without_origin_gets_nothing() -> None:
    assert policy().response_headers(None) == {}


def test_max_age_absent_when_not_configured() -> None:
    assert "Access-Control-Max-Age" not in policy(max_age_seconds=None).preflight_headers(APP, None)


def test_unconfigured_headers_echo_a_well_formed_request_list() -> None:
    cors = policy(headers=[])
    assert cors.preflight_headers(APP, "content-type, x-trace")["Access-Control-Allow-Headers"] == (
        "content-type, x-trace"
    )
    assert "Access-Control-Allow-Headers" not in cors.preflight_headers(APP, "a\r\nSet-Cookie: x")


@pytest.mark.parametrize(
    "origin",
    [
        "https://app.example.com\r\nSet-Cookie: a=b",
        "https://app.example.com\n",
        "https://" + "a" * 100_000 + ".example.com",
        "https://app.example.com/path",
        "https://user@app.example.com",
        "https://app.example.com\x00",
        "",
    ],
)
def test_hostile_origin_is_never_allowed_nor_echoed(origin: str) -> None:
    for cors in (policy(), policy(origins=["*"], credentials=True)):
        assert cors.preflight_headers(origin, None) == {}
        assert cors.response_headers(origin) == {}


def test_origin_comparison_ignores_case() -> None:
    assert normalized_origin("HTTPS://App.Example.com") == APP
    assert policy().allow_origin("HTTPS://App.Example.com") == APP


def test_ipv6_and_port_origins_are_well_formed() -> None:
    assert normalized_origin("http://[::1]:8080") == "http://[::1]:8080"
    assert normalized_origin("http://localhost:3000") == "http://localhost:3000"


def test_preflight_needs_options_origin_and_requested_method() -> None:
    assert is_preflight("OPTIONS", APP, "POST")
    assert not is_preflight("OPTIONS", APP, None)
    assert not is_preflight("OPTIONS", None, "POST")
    assert not is_preflight("GET", APP, "POST")
