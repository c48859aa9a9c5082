"""`request_headers` / `response_headers`: set and remove headers on the way up and down."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from routing.compiled_policies import HeaderRules


def apply_to_request(rules: HeaderRules, headers: MutableMapping[str, str]) -> None:
    """Apply to the upstream request's headers (a dict keyed by lower-case name)."""
    for name in rules.remove:
        headers.pop(name, None)
    for name, value in rules.set:
        headers[name.lower()] = value


def apply_to_response(rules: HeaderRules, response: Any) -> None:
    """Apply to a proxied answer (a Django response; Set-Cookie lives in extra_headers)."""
    for name in rules.remove:
        if name == "set-cookie":
            response.extra_headers = []
        elif response.has_header(name):
            del response[name]
    for name, value in rules.set:
        if name.lower() == "set-cookie":
            response.extra_headers = [("Set-Cookie", value)]
        else:
            response[name] = value


def describe(rules: HeaderRules) -> str:
    """The rules in one line, for explain."""
    parts = [f"set {name}" for name, _ in rules.set]
    parts += [f"remove {name}" for name in sorted(rules.remove)]
    return ", ".join(parts)
