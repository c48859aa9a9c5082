"""`request_headers` / `response_headers`: set and remove headers on the way up and down."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

from routing.forwarding import HOP_BY_HOP

# Names the gateway owns (CONTRACT section 5): a rule naming one is a validation error.
PROTECTED_NAMES = HOP_BY_HOP | {"host", "via", "x-request-id", "content-length"}
PROTECTED_PREFIXES = ("x-forwarded-", "x-consumer-")
_TOKEN = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,256}$")
# A field value: visible characters, spaces and tabs; no CR, LF or NUL (no header injection).
_VALUE = re.compile(r"^[\t\x20-\x7e\x80-\xff]{0,8192}$")


def header_rule_error(name: str, value: str | None = None) -> str | None:
    """Why `name` (with `value`, for `set`) cannot be in a header rule, or None if it can."""
    lowered = name.lower()
    if not _TOKEN.fullmatch(name):
        return f"{name!r} is not a valid header name"
    if lowered in PROTECTED_NAMES or lowered.startswith(PROTECTED_PREFIXES):
        return f"{name} is set by the gateway itself and cannot be changed by a route"
    if value is not None and not _VALUE.fullmatch(value):
        return f"the value of {name} holds a control character (CR, LF or NUL) or is too long"
    return None


@dataclass(frozen=True, slots=True)
class HeaderRules:
    """One direction's compiled rules: names removed first, then values set."""

    set: tuple[tuple[str, str], ...]
    remove: frozenset[str]  # lower-case

    @classmethod
    def compile(
        cls, *, set: Mapping[str, str] | None = None, remove: Iterable[str] = ()
    ) -> HeaderRules | None:
        """The rules; None when there are none. ValueError when a name or value is refused."""
        pairs = tuple((set or {}).items())
        removed = tuple(remove)
        for name, value in pairs:
            if error := header_rule_error(name, value):
                raise ValueError(error)
        for name in removed:
            if error := header_rule_error(name):
                raise ValueError(error)
        if not pairs and not removed:
            return None
        return cls(set=pairs, remove=frozenset(name.lower() for name in removed))

    def apply_to_request(self, headers: MutableMapping[str, str]) -> None:
        """Apply to the upstream request's headers (a dict keyed by lower-case name)."""
        for name in self.remove:
            headers.pop(name, None)
        for name, value in self.set:
            headers[name.lower()] = value

    def apply_to_response(self, response: Any) -> None:
        """Apply to a proxied answer (a Django response; Set-Cookie lives in extra_headers)."""
        for name in self.remove:
            if name == "set-cookie":
                response.extra_headers = []
            elif name in response:
                del response[name]
        for name, value in self.set:
            if name.lower() == "set-cookie":
                response.extra_headers = [("Set-Cookie", value)]
            else:
                response[name] = value

    def describe(self) -> str:
        """The rules in one line, for explain."""
        parts = [f"set {name}" for name, _ in self.set]
        parts += [f"remove {name}" for name in sorted(self.remove)]
        return ", ".join(parts)
