"""validate: requests checked against real OpenAPI 3.0 and 3.1 operations with openapi-core."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway_project.errors import OperationNotFound, RequestInvalid
from routing.policies.validate import OperationValidator
from tests.policies.documents import OPENAPI_30, openapi_31

GOOD_HEADERS = {"X-Tenant": "acme"}


@pytest.fixture(params=["3.0", "3.1"])
def validator(request: pytest.FixtureRequest) -> OperationValidator:
    return OperationValidator(OPENAPI_30 if request.param == "3.0" else openapi_31())


def check(validator: OperationValidator, **overrides: Any) -> None:
    request: dict[str, Any] = {
        "method": "GET",
        "path": "/items/42",
        "query": "",
        "headers": GOOD_HEADERS,
        "content_type": "",
        "body": None,
    }
    request.update(overrides)
    validator.check(**request)


def errors_of(validator: OperationValidator, **overrides: Any) -> list[dict[str, str]]:
    with pytest.raises(RequestInvalid) as caught:
        check(validator, **overrides)
    assert caught.value.status_code == 400
    return caught.value.errors


def test_valid_requests_pass(validator: OperationValidator) -> None:
    check(validator)
    check(validator, query="verbose=true")
    check(validator, method="GET", path="/items", query="limit=10", headers={})
    body = json.dumps({"name": "bolt", "quantity": 3}).encode()
    check(validator, method="POST", path="/items", content_type="application/json", body=body)


def test_bad_path_parameter(validator: OperationValidator) -> None:
    errors = errors_of(validator, path="/items/abc")
    assert errors[0]["field"] == "path.item_id"


def test_missing_required_header(validator: OperationValidator) -> None:
    assert errors_of(validator, headers={}) == [
        {"field": "header.X-Tenant", "message": "header.X-Tenant is required.", "type": "required"}
    ]


def test_header_violating_its_pattern(validator: OperationValidator) -> None:
    errors = errors_of(validator, headers={"X-Tenant": "ACME-1"})
    assert errors[0]["field"] == "header.X-Tenant"
    assert errors[0]["type"] == "pattern"


def test_bad_query_parameters(validator: OperationValidator) -> None:
    errors = errors_of(validator, path="/items", query="limit=1000", headers={})
    assert errors[0]["field"] == "query.limit"
    assert errors[0]["type"] == "maximum"
    missing = errors_of(validator, path="/items", query="", headers={})
    assert missing[0] == {
        "field": "query.limit",
        "message": "query.limit is required.",
        "type": "required",
    }


def test_body_errors_name_each_field(validator: OperationValidator) -> None:
    body = json.dumps({"name": "", "quantity": 0, "extra": 1}).encode()
    errors = errors_of(
        validator, method="POST", path="/items", content_type="application/json", body=body
    )
    by_field = {error["field"]: error["type"] for error in errors}
    assert by_field["body.name"] == "minLength"
    assert by_field["body.quantity"] == "minimum"
    assert by_field["body"] == "additionalProperties"


def test_missing_body_and_unparsable_body(validator: OperationValidator) -> None:
    missing = errors_of(validator, method="POST", path="/items", content_type="application/json")
    assert missing[0]["field"] == "body" and missing[0]["type"] == "required"
    broken = errors_of(
        validator, method="POST", path="/items", content_type="application/json", body=b"{not json"
    )
    assert broken[0]["field"] == "body"


def test_wrong_content_type(validator: OperationValidator) -> None:
    errors = errors_of(
        validator, method="POST", path="/items", content_type="text/plain", body=b"hello"
    )
    assert errors[0]["type"] == "unsupported_media_type"


def test_unknown_operation_is_404(validator: OperationValidator) -> None:
    with pytest.raises(OperationNotFound) as caught:
        check(validator, path="/nothing/here")
    assert (caught.value.status_code, caught.value.default_code) == (404, "operation_not_found")
    with pytest.raises(OperationNotFound):
        check(validator, method="DELETE", path="/items/1")


def test_security_is_left_to_the_gateway(validator: OperationValidator) -> None:
    # listItems declares bearer security; the gateway authenticated already, so no header here.
    check(validator, method="GET", path="/items", query="limit=5", headers={})


def test_openapi_31_type_lists_and_const() -> None:
    validator = OperationValidator(openapi_31())
    good = json.dumps({"name": "a", "quantity": 1, "note": None, "kind": "item"}).encode()
    check(validator, method="POST", path="/items", content_type="application/json", body=good)
    bad = json.dumps({"name": "a", "quantity": 1, "kind": "other"}).encode()
    errors = errors_of(
        validator, method="POST", path="/items", content_type="application/json", body=bad
    )
    assert errors[0] == {"field": "body.kind", "message": errors[0]["message"], "type": "const"}


def test_huge_bad_value_gives_a_bounded_message(validator: OperationValidator) -> None:
    body = json.dumps({"name": "x" * 100_000, "quantity": 1}).encode()
    errors = errors_of(
        validator, method="POST", path="/items", content_type="application/json", body=body
    )
    assert all(len(error["message"]) <= 300 for error in errors)
