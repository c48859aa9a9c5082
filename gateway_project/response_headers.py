"""The gateway's own headers on an answer, set without Django's per-header conversion when they
need none.

Django's `response[name] = value` converts and checks the name and the value on every call (two
calls into its charset conversion, an encode each, a search for CR and LF); a proxied answer
gets six of the gateway's own headers (the request id, the rate-limit headers), all ASCII text
the gateway formatted itself. For such a value Django's conversion changes nothing, so it is
stored as Django would store it; anything else (non-ASCII, CR or LF, not a str) takes Django's
path and gets its conversion or its error.
"""

from __future__ import annotations

from collections.abc import Mapping

from django.http.response import HttpResponseBase


def set_header(response: HttpResponseBase, name: str, value: str) -> None:
    """`response[name] = value`, exactly as Django would set it (`name` is a constant)."""
    if type(value) is str and value.isascii() and "\n" not in value and "\r" not in value:
        # Django's header store: (name as set, value) by lower-cased name.
        response.headers._store[name.lower()] = (name, value)
    else:
        response[name] = value


def set_headers_if_absent(response: HttpResponseBase, headers: Mapping[str, str]) -> None:
    """`if name not in response: response[name] = value` for each header, without raising and
    catching a KeyError for each absent one."""
    store = response.headers._store
    for name, value in headers.items():
        if name.lower() not in store:
            set_header(response, name, value)


def stored_headers(response: HttpResponseBase) -> list[tuple[str, str]]:
    """The response's headers as Django's `items()` yields them (name as set, value), without
    a lookup per header."""
    return list(response.headers._store.values())
