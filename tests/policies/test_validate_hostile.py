"""validate against hostile input: documents that point elsewhere, bodies built to confuse."""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from gateway_project.errors import RequestInvalid, ServiceUnavailable
from routing.policies.validate import OperationValidator, UnusableDocument
from tests.policies.documents import OPENAPI_30, openapi_31


@pytest.fixture
def ref_server() -> Iterator[tuple[str, list[str]]]:
    """A loopback server standing for an internal host; records every path asked of it."""
    asked: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

        def do_GET(self) -> None:
            asked.append(self.path)
            data = json.dumps({"type": "object", "required": ["secret"]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", asked
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _with_body_schema(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(document)
    out["paths"]["/items"]["post"]["requestBody"]["content"]["application/json"]["schema"] = schema
    return out


def _post(
    validator: OperationValidator, body: bytes, content_type: str = "application/json"
) -> None:
    validator.check(
        method="POST",
        path="/items",
        query="",
        headers={},
        content_type=content_type,
        body=body,
    )


@pytest.mark.parametrize("keyword", ["$ref", "$dynamicRef"])
def test_a_reference_to_another_host_is_never_fetched(
    ref_server: tuple[str, list[str]], keyword: str
) -> None:
    url, asked = ref_server
    document = _with_body_schema(openapi_31(), {keyword: f"{url}/internal.json"})
    with pytest.raises(UnusableDocument):
        OperationValidator(document)
    assert asked == []


def test_a_remote_path_item_or_request_body_is_never_fetched(
    ref_server: tuple[str, list[str]],
) -> None:
    url, asked = ref_server
    by_path_item = copy.deepcopy(OPENAPI_30)
    by_path_item["paths"]["/items"] = {"$ref": f"{url}/path-item.json"}
    by_body = copy.deepcopy(OPENAPI_30)
    by_body["paths"]["/items"]["post"]["requestBody"] = {"$ref": f"{url}/body.json"}
    for document in (by_path_item, by_body):
        with pytest.raises(UnusableDocument):
            OperationValidator(document)
    assert asked == []


def test_a_reference_to_a_local_file_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps({"enum": ["s3cr3t-value"]}))
    for ref in (secret.as_uri(), "secret.json", "../etc/passwd#/x"):
        with pytest.raises(UnusableDocument):
            OperationValidator(_with_body_schema(OPENAPI_30, {"$ref": ref}))


def test_local_and_recursive_references_still_work() -> None:
    document = _with_body_schema(OPENAPI_30, {"$ref": "#/components/schemas/Node"})
    document["components"]["schemas"] = {
        "Node": {
            "type": "object",
            "properties": {"child": {"$ref": "#/components/schemas/Node"}},
            "additionalProperties": False,
        }
    }
    validator = OperationValidator(document)
    _post(validator, b'{"child": {"child": {}}}')
    with pytest.raises(RequestInvalid):
        _post(validator, b'{"child": {"other": 1}}')


def test_a_dangling_local_reference_is_a_503_not_a_crash() -> None:
    validator = OperationValidator(_with_body_schema(OPENAPI_30, {"$ref": "#/nowhere/at/all"}))
    with pytest.raises(ServiceUnavailable) as caught:
        _post(validator, b'{"name": "a", "quantity": 1}')
    assert "nowhere" not in str(caught.value.detail)


@pytest.mark.parametrize("document", [OPENAPI_30, openapi_31()], ids=["3.0", "3.1"])
@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"name": "a", "quantity": 1, "x": ' + b"[" * 5_000 + b"]" * 5_000 + b"}",
        b'{"name": "a", "quantity": 1, "x": ' + b'{"a":' * 5_000 + b"1" + b"}" * 5_000 + b"}",
    ],
    ids=["array", "nested-array-field", "nested-object-field"],
)
def test_deeply_nested_body_is_a_400(document: dict[str, Any], body: bytes) -> None:
    with pytest.raises(RequestInvalid) as caught:
        _post(OperationValidator(document), body)
    assert caught.value.errors[0]["field"] == "body"
    assert caught.value.errors[0]["type"] == "too_deep"


def test_deep_body_against_a_recursive_schema_is_a_400() -> None:
    document = _with_body_schema(OPENAPI_30, {"$ref": "#/components/schemas/Node"})
    document["components"]["schemas"] = {
        "Node": {"type": "object", "properties": {"c": {"$ref": "#/components/schemas/Node"}}}
    }
    depth = 600  # well inside what json.loads reads, deeper than the schema checker recurses
    body = b'{"c":' * depth + b"{}" + b"}" * depth
    with pytest.raises(RequestInvalid) as caught:
        _post(OperationValidator(document), body)
    assert caught.value.errors[0]["type"] == "too_deep"


@pytest.mark.parametrize("document", [OPENAPI_30, openapi_31()], ids=["3.0", "3.1"])
@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "Application/JSON"]
)
def test_duplicate_json_keys_are_refused(document: dict[str, Any], content_type: str) -> None:
    # The schema checker reads the last "quantity" (3); an upstream whose parser keeps the
    # first one would act on -5, a value the operation forbids.
    body = b'{"name": "a", "quantity": -5, "quantity": 3}'
    with pytest.raises(RequestInvalid) as caught:
        _post(OperationValidator(document), body, content_type)
    assert caught.value.errors == [
        {
            "field": "body.quantity",
            "message": "The key 'quantity' appears more than once in one object.",
            "type": "duplicate_key",
        }
    ]


def test_duplicate_keys_deep_inside_are_refused_too() -> None:
    document = _with_body_schema(OPENAPI_30, {"type": "object"})
    with pytest.raises(RequestInvalid) as caught:
        _post(OperationValidator(document), b'{"a": [{"b": 1, "b": 2}]}')
    assert caught.value.errors[0]["type"] == "duplicate_key"


def test_same_key_in_sibling_objects_is_fine() -> None:
    document = _with_body_schema(OPENAPI_30, {"type": "object"})
    _post(OperationValidator(document), b'{"a": {"id": 1}, "b": {"id": 2}, "id": 3}')


@pytest.mark.parametrize("document", [OPENAPI_30, openapi_31()], ids=["3.0", "3.1"])
@pytest.mark.parametrize("query", ["limit=5&limit=1000", "limit=1000&limit=5"])
def test_every_copy_of_a_repeated_query_parameter_is_checked(
    document: dict[str, Any], query: str
) -> None:
    # The checker reads the first copy; Django, Flask and PHP upstreams read the last one.
    with pytest.raises(RequestInvalid) as caught:
        OperationValidator(document).check(
            method="GET", path="/items", query=query, headers={}, content_type="", body=None
        )
    assert caught.value.errors == [
        {
            "field": "query.limit",
            "message": "1000 is greater than the maximum of 100",
            "type": "maximum",
        }
    ]


def test_repeated_query_parameters_that_all_pass_are_fine() -> None:
    OperationValidator(OPENAPI_30).check(
        method="GET", path="/items", query="limit=5&limit=7", headers={}, content_type="", body=None
    )
