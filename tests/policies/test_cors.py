"""cors: preflight answers and the headers of ordinary answers, per CONTRACT section 5."""

from __future__ import annotations

import pytest

from routing.compiled_policies import CorsPolicy
from routing.policies.cors import (
    add_to_response,
    allow_origin,
    is_preflight,
    normalized_origin,
    preflight_headers,
    response_headers,
)

APP = "https://app.example.com"


def policy(
    *,
    origins: tuple[str, ...] = (APP,),
    headers: str = "Authorization, Content-Type",
    credentials: bool = False,
    max_age: str = "600",
) -> CorsPolicy:
    any_origin = origins == ("*",)
    return CorsPolicy(
        origins=frozenset() if any_origin else frozenset(origins),
        any_origin=any_origin,
        methods=frozenset({"GET", "POST"}),
        headers=frozenset(h.strip().lower() for h in headers.split(",") if h.strip()),
        allow_methods="GET, POST",
        allow_headers=headers,
        expose_headers="X-Request-ID",
        credentials=credentials,
        max_age=max_age,
    )


def test_preflight_from_allowed_origin_carries_every_header() -> None:
    headers = preflight_headers(policy(), APP, None)
    assert headers == {
        "Access-Control-Allow-Origin": APP,
        "Access-Control-Allow-Methods": "GET, POST",
        "Access-Control-Allow-Headers": "Authorization, Content-Type",
        "Access-Control-Max-Age": "600",
        "Vary": "Origin",
    }


def test_preflight_from_refused_origin_carries_no_cors_header() -> None:
    assert preflight_headers(policy(), "https://evil.example", None) == {}


def test_any_origin_without_credentials_answers_star() -> None:
    cors = policy(origins=("*",))
    assert preflight_headers(cors, "https://x.example", None)["Access-Control-Allow-Origin"] == "*"
    headers = response_headers(cors, "https://x.example")
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert "Vary" not in headers  # the answer is the same for every origin


def test_any_origin_with_credentials_names_the_origin() -> None:
    headers = response_headers(policy(origins=("*",), credentials=True), "https://x.example")
    assert headers["Access-Control-Allow-Origin"] == "https://x.example"
    assert headers["Access-Control-Allow-Credentials"] == "true"
    assert headers["Vary"] == "Origin"


def test_actual_request_from_allowed_origin() -> None:
    assert response_headers(policy(credentials=True), APP) == {
        "Access-Control-Allow-Origin": APP,
        "Access-Control-Expose-Headers": "X-Request-ID",
        "Access-Control-Allow-Credentials": "true",
        "Vary": "Origin",
    }


def test_actual_request_without_origin_gets_only_vary_unless_any_origin_is_allowed() -> None:
    assert response_headers(policy(), None) == {"Vary": "Origin"}
    assert response_headers(policy(origins=("*",)), None) == {}


def test_max_age_absent_when_not_configured() -> None:
    assert "Access-Control-Max-Age" not in preflight_headers(policy(max_age=""), APP, None)


def test_unconfigured_headers_echo_a_well_formed_request_list() -> None:
    cors = policy(headers="")
    assert preflight_headers(cors, APP, "content-type, x-trace")[
        "Access-Control-Allow-Headers"
    ] == ("content-type, x-trace")
    assert "Access-Control-Allow-Headers" not in preflight_headers(cors, APP, "a\r\nSet-Cookie: x")


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
    for cors in (policy(), policy(origins=("*",), credentials=True)):
        assert preflight_headers(cors, origin, None) == {}
        assert set(response_headers(cors, origin)) <= {"Vary"}  # never an Allow-Origin


def test_origin_comparison_ignores_case() -> None:
    assert normalized_origin("HTTPS://App.Example.com") == APP
    assert allow_origin(policy(), "HTTPS://App.Example.com") == APP


def test_ipv6_and_port_origins_are_well_formed() -> None:
    assert normalized_origin("http://[::1]:8080") == "http://[::1]:8080"
    assert normalized_origin("http://localhost:3000") == "http://localhost:3000"


def test_preflight_needs_options_origin_and_requested_method() -> None:
    assert is_preflight("OPTIONS", APP, "POST")
    assert not is_preflight("OPTIONS", APP, None)
    assert not is_preflight("OPTIONS", None, "POST")
    assert not is_preflight("GET", APP, "POST")


def test_vary_origin_is_merged_with_the_answers_own_vary() -> None:
    from django.http import HttpResponse

    response = HttpResponse(b"")
    response["Vary"] = "Accept-Encoding"
    add_to_response(response, response_headers(policy(), APP))
    assert response["Vary"] == "Accept-Encoding, Origin"
    add_to_response(response, response_headers(policy(), APP))
    assert response["Vary"] == "Accept-Encoding, Origin"
    assert response["Access-Control-Allow-Origin"] == APP
