"""request_headers / response_headers: set and remove, both ways."""

from __future__ import annotations

from django.http import HttpResponse

from routing.compiled_policies import HeaderRules
from routing.policies.headers import apply_to_request, apply_to_response, describe


def rules(set: dict[str, str], remove: list[str]) -> HeaderRules:
    return HeaderRules(
        set=tuple(set.items()),
        set_names=frozenset(n.lower() for n in set),
        remove=frozenset(n.lower() for n in remove),
    )


def test_request_rules_remove_then_set() -> None:
    headers = {"x-debug": "1", "x-api-version": "1", "accept": "*/*"}
    apply_to_request(rules({"X-Api-Version": "2"}, ["X-Debug"]), headers)
    assert headers == {"x-api-version": "2", "accept": "*/*"}


def test_response_rules_apply_to_headers_and_cookies() -> None:
    response = HttpResponse(b"ok")
    response["X-Powered-By"] = "PHP"
    response.extra_headers = [("Set-Cookie", "a=b")]  # type: ignore[attr-defined]
    apply_to_response(
        rules({"Cache-Control": "no-store"}, ["X-Powered-By", "Set-Cookie"]), response
    )
    assert "X-Powered-By" not in response
    assert response["Cache-Control"] == "no-store"
    assert response.extra_headers == []  # type: ignore[attr-defined]


def test_set_cookie_rule_replaces_the_upstreams_cookies() -> None:
    response = HttpResponse(b"ok")
    response.extra_headers = [("Set-Cookie", "a=b"), ("Set-Cookie", "c=d")]  # type: ignore[attr-defined]
    apply_to_response(rules({"Set-Cookie": "only=1"}, []), response)
    assert response.extra_headers == [("Set-Cookie", "only=1")]  # type: ignore[attr-defined]


def test_describe_lists_each_rule() -> None:
    assert describe(rules({"X-A": "1"}, ["X-B"])) == "set X-A, remove x-b"
