"""The client's headers as forwarded: names from the environ, remembered within a bound."""

from __future__ import annotations

import pytest

from routing import forwarding
from routing.forwarding import request_headers_from_meta

ENVIRON = {
    "REQUEST_METHOD": "GET",
    "wsgi.input": object(),
    "SERVER_NAME": "gw",
    "CONTENT_TYPE": "text/plain",
    "CONTENT_LENGTH": "4",
    "HTTP_ACCEPT": "*/*",
    "HTTP_X_CUSTOM_NAME": "a",
    "HTTP_EMPTY": "",
    "HTTP_HOST": "gw",
    "REMOTE_ADDR": "10.9.9.9",
}
EXPECTED = [("content-type", "text/plain"), ("accept", "*/*"), ("x-custom-name", "a")]


@pytest.fixture(autouse=True)
def _fresh_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(forwarding, "_environ_names", {})


def test_the_same_headers_come_out_the_first_time_and_every_time() -> None:
    for _ in range(3):
        assert request_headers_from_meta(ENVIRON) == EXPECTED
    assert forwarding._environ_names["HTTP_X_CUSTOM_NAME"] == "x-custom-name"
    assert forwarding._environ_names["SERVER_NAME"] == ""


def test_names_clients_invent_do_not_grow_the_memory_past_its_bound(monkeypatch) -> None:
    monkeypatch.setattr(forwarding, "_ENVIRON_NAMES_LIMIT", 12)
    for n in range(50):
        meta = {**ENVIRON, f"HTTP_X_INVENTED_{n}": "v"}
        assert (f"x-invented-{n}", "v") in request_headers_from_meta(meta)
    assert len(forwarding._environ_names) == 12
    # Past the bound, a new name is still worked out (and forwarded) every time.
    assert request_headers_from_meta({"HTTP_X_LATE": "1"}) == [("x-late", "1")]


def test_a_long_invented_name_is_forwarded_but_not_remembered() -> None:
    # Count alone would let 1,024 names of a request line's length each stay in every worker.
    key = "HTTP_X_" + "LONG_" * 40
    assert request_headers_from_meta({key: "v"}) == [(key[5:].replace("_", "-").lower(), "v")]
    assert key not in forwarding._environ_names
    assert "HTTP_X_SHORT" not in forwarding._environ_names
    request_headers_from_meta({"HTTP_X_SHORT": "v"})
    assert forwarding._environ_names["HTTP_X_SHORT"] == "x-short"
