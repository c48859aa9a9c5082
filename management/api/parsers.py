"""The management API's one input layer: body size, then JSON, then text every database stores.

Every management endpoint parses its body here, so no endpoint can forget a check: a body
over GATEWAY_MAX_API_BODY_SIZE is 413 before it is read whole, and a string (key or value,
at any depth) that PostgreSQL cannot store - a NUL, or a lone surrogate that is not UTF-8 -
is a 400 naming the field, instead of a DataError 500 deep in a save.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings
from rest_framework import exceptions
from rest_framework.parsers import BaseParser, JSONParser

from gateway_project.errors import PayloadTooLarge


def body_limit(view: Any) -> int:
    """The largest body `view` takes: its own `max_body_size()`, else GATEWAY_MAX_API_BODY_SIZE."""
    own = getattr(view, "max_body_size", None)
    return int(own()) if callable(own) else int(settings.GATEWAY_MAX_API_BODY_SIZE)


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The request body is larger than this endpoint takes ({limit} bytes; "
        "GATEWAY_MAX_API_BODY_SIZE, or GATEWAY_MAX_CONFIG_SIZE for a config import)."
    )


def _storable(text: str) -> str | None:
    """Why `text` cannot be stored, or None."""
    if "\x00" in text:
        return "must not contain NUL characters."
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode text (no lone surrogates)."
    return None


def unstorable_fields(data: Any, path: str = "") -> dict[str, list[str]]:
    """Each field (dotted path, `[i]` for list items) holding text no database can store."""
    problems: dict[str, list[str]] = {}
    if isinstance(data, str):
        reason = _storable(data)
        if reason:
            problems[path or "non_field_errors"] = [reason]
    elif isinstance(data, Mapping):
        for key, value in data.items():
            name = str(key)
            field = f"{path}.{name}" if path else name
            if _storable(name):
                problems[field.replace("\x00", "\\0")] = ["field names must be plain text."]
                continue
            problems.update(unstorable_fields(value, field))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            problems.update(unstorable_fields(value, f"{path}[{index}]"))
    return problems


class _LimitedStream:
    """Reads the body and fails with 413 once it passes the limit (chunked bodies too)."""

    def __init__(self, stream: Any, limit: int) -> None:
        self._stream = stream
        self._limit = limit
        self._left = limit

    def read(self, size: int = -1) -> bytes:
        """Up to `size` bytes (all when negative), never more than the limit plus one."""
        want = self._left + 1 if size is None or size < 0 else min(size, self._left + 1)
        data: bytes = self._stream.read(want)
        self._left -= len(data)
        if self._left < 0:
            raise _too_large(self._limit)
        return data


class ManagementJSONParser(BaseParser):
    """JSON within GATEWAY_MAX_API_BODY_SIZE, every string storable (else 413 / 400).

    Not a JSONParser subclass on purpose: DRF reads a JSONParser's body whole through
    Django's DATA_UPLOAD_MAX_MEMORY_SIZE first; this parser gets the stream and bounds it.
    """

    media_type = "application/json"
    _json = JSONParser()

    def parse(
        self,
        stream: Any,
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        """Refuse an oversize body before reading it, then parse and check every string."""
        context = parser_context or {}
        limit = body_limit(context.get("view"))
        request = context.get("request")
        length = request.META.get("CONTENT_LENGTH") if request is not None else None
        try:
            declared = int(length) if length else 0
        except ValueError:
            declared = 0
        if declared > limit:
            raise _too_large(limit)
        limited: Any = _LimitedStream(stream, limit)
        data = self._json.parse(limited, media_type, parser_context)
        problems = unstorable_fields(data)
        if problems:
            raise exceptions.ValidationError(problems)
        return data
