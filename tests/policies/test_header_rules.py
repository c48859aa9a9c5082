"""request_headers / response_headers: set and remove, and the names no route may touch."""

from __future__ import annotations

import pytest
from django.http import HttpResponse

from routing.policies.headers import HeaderRules, header_rule_error


def test_request_rules_remove_then_set() -> None:
    rules = HeaderRules.compile(set={"X-Api-Version": "2"}, remove=["X-Debug"])
    assert rules is not None
    headers = {"x-debug": "1", "x-api-version": "1", "accept": "*/*"}
    rules.apply_to_request(headers)
    assert headers == {"x-api-version": "2", "accept": "*/*"}


def test_response_rules_apply_to_headers_and_cookies() -> None:
    rules = HeaderRules.compile(
        set={"Cache-Control": "no-store"}, remove=["X-Powered-By", "Set-Cookie"]
    )
    assert rules is not None
    response = HttpResponse(b"ok")
    response["X-Powered-By"] = "PHP"
    response.extra_headers = [("Set-Cookie", "a=b")]  # type: ignore[attr-defined]
    rules.apply_to_response(response)
    assert "X-Powered-By" not in response
    assert response["Cache-Control"] == "no-store"
    assert response.extra_headers == []  # type: ignore[attr-defined]


def test_no_rules_compile_to_none() -> None:
    assert HeaderRules.compile(set={}, remove=[]) is None


@pytest.mark.parametrize(
    "name",
    [
        "Host",
        "Connection",
        "Upgrade",
        "Transfer-Encoding",
        "X-Forwarded-For",
        "x-forwarded-host",
        "X-Request-ID",
        "Via",
        "X-Consumer-Id",
        "X-Consumer-Roles",
        "Content-Length",
    ],
)
def test_protected_names_are_refused(name: str) -> None:
    assert header_rule_error(name) is not None
    with pytest.raises(ValueError):
        HeaderRules.compile(set={name: "x"})
    with pytest.raises(ValueError):
        HeaderRules.compile(remove=[name])


@pytest.mark.parametrize("value", ["a\r\nSet-Cookie: x=y", "a\nb", "a\x00b", "x" * 9000])
def test_values_with_control_characters_are_refused(value: str) -> None:
    assert header_rule_error("X-Ok", value) is not None


@pytest.mark.parametrize("name", ["Bad Name", "X:Y", "", "X\r\n", "X\n"])
def test_invalid_names_are_refused(name: str) -> None:
    assert header_rule_error(name) is not None
