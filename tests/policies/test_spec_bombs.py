"""A service's OpenAPI document from a hostile upstream: read within bounds or refused."""

from __future__ import annotations

import time

import pytest

from routing.upstream_docs import SpecUnavailable, parse_spec


def _laughs(levels: int = 8) -> bytes:
    """About a kilobyte of YAML whose aliases expand to 10**levels schema nodes."""
    lines = ["  a0: &a0 {type: string}"]
    for level in range(1, levels + 1):
        refs = ", ".join(f"p{index}: *a{level - 1}" for index in range(10))
        lines.append(f"  a{level}: &a{level} {{type: object, properties: {{{refs}}}}}")
    return (
        "openapi: 3.0.3\ninfo: {title: t, version: '1'}\nx-bomb:\n"
        + "\n".join(lines)
        + "\npaths: {}\n"
    ).encode()


def test_yaml_aliases_in_an_upstream_document_are_refused_at_once() -> None:
    # The portal serializes the document and validate walks it: expanded, 10**8 nodes.
    started = time.monotonic()
    with pytest.raises(SpecUnavailable) as caught:
        parse_spec(_laughs())
    assert time.monotonic() - started < 5
    assert "anchor" in str(caught.value) or "alias" in str(caught.value)


def test_plain_yaml_and_json_documents_still_parse() -> None:
    yaml_doc = b"openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths:\n  /x: {}\n"
    assert parse_spec(yaml_doc)["paths"] == {"/x": {}}
    json_doc = b'{"openapi": "3.1.0", "info": {"title": "t", "version": "1"}, "paths": {}}'
    assert parse_spec(json_doc)["openapi"] == "3.1.0"


def test_deeply_nested_json_document_is_refused_not_a_crash() -> None:
    body = b'{"openapi": "3.0.3", "paths": {}, "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with pytest.raises(SpecUnavailable):
        parse_spec(body)
