"""Strict parsing of an upstream answer's head: what a proxy must not pass on (RFC 9112).

http.client is lenient: it splits a header at a bare CR (so `Location: /x\\rSet-Cookie: a=b`
becomes two headers), keeps NUL and other control bytes, accepts both Transfer-Encoding and
Content-Length, and reads `Content-Length: +5` as 5. A proxy that relays such a head lets the
upstream inject headers or desynchronise the client's connection. StrictHTTPResponse records
the raw head lines while http.client parses them and refuses the head when any line is not
well-formed or the framing is ambiguous; the caller answers 502 upstream_invalid_response.
"""

from __future__ import annotations

import http.client
import logging
import re
from typing import Any

logger = logging.getLogger("gateway.upstream")

# A field value or reason phrase: HTAB, SP, VCHAR or obs-text (no CR, LF, NUL or other
# control byte).
_TEXT = rb"[\t\x20-\x7e\x80-\xff]*"
# field-name ":" field-value CRLF. A leading space (obs-fold) or a space before the colon does
# not match.
_HEADER_LINE = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+:" + _TEXT + rb"\r\n")
# The final status: 2xx-5xx (a 1xx other than 100 would leave the real answer unread on the
# pooled connection, and Django cannot send a status of 600 or more).
_FINAL_STATUS = re.compile(rb"HTTP/1\.[01] [2-5][0-9][0-9](?: " + _TEXT + rb")?\r\n")
_CONTINUE_STATUS = re.compile(rb"HTTP/1\.[01] 100(?: " + _TEXT + rb")?\r\n")
_END_OF_HEAD = b"\r\n"
# One head as head_error accepts it, matched in one call: a status line, header lines, the end.
_ONE_HEAD = re.compile(
    b"(?:%s|%s)(?:%s)*\r\n"
    % (_CONTINUE_STATUS.pattern, _FINAL_STATUS.pattern, _HEADER_LINE.pattern)
)


class InvalidUpstreamHead(http.client.HTTPException):
    """The upstream's answer head is malformed or its framing ambiguous (reason in args[0])."""


class _LineRecorder:
    """Wraps the response's file while the head is read, keeping every line read."""

    __slots__ = ("_fp", "lines")

    def __init__(self, fp: Any) -> None:
        self._fp = fp
        self.lines: list[bytes] = []

    def readline(self, limit: int = -1) -> bytes:
        """Read one line from the wrapped file and remember it."""
        line: bytes = self._fp.readline(limit)
        self.lines.append(line)
        return line

    def close(self) -> None:
        """Close the wrapped file (http.client does on a bad status line)."""
        self._fp.close()


def head_error(lines: list[bytes]) -> str | None:
    """Why the raw head `lines` (status lines, header lines, blank lines) are refused, or None."""
    expect_status = True
    for line in lines:
        if expect_status:
            if _CONTINUE_STATUS.fullmatch(line):
                expect_status = False
                continue
            if not _FINAL_STATUS.fullmatch(line):
                return "malformed or unsupported status line"
            expect_status = False
        elif line == _END_OF_HEAD:
            expect_status = True
        elif not _HEADER_LINE.fullmatch(line):
            return "malformed header line (bare CR or LF, NUL, control byte or invalid name)"
    return None


def well_formed_head(head: bytes) -> bool:
    """True when one head (ending in its blank line) is well-formed: head_error finds nothing in
    its lines. One regular-expression match instead of one per line: the common answer's path."""
    return _ONE_HEAD.fullmatch(head) is not None


def head_lines(head: bytes) -> list[bytes]:
    """A raw head (ending in its blank line) split as http.client's readline would: at LF."""
    lines = head.split(b"\n")
    lines.pop()  # the empty remainder after the final LF
    return [line + b"\n" for line in lines]


def framing_error(message: http.client.HTTPMessage) -> str | None:
    """Why the head's body framing is refused: ambiguous or unusable lengths, or None."""
    return framing_error_of(
        message.get_all("content-length") or [], message.get_all("transfer-encoding") or []
    )


def framing_error_of(lengths: list[str], codings: list[str]) -> str | None:
    """Why a head with these Content-Length and Transfer-Encoding values is refused, or None."""
    if lengths and codings:
        return "both Transfer-Encoding and Content-Length"
    if codings and ",".join(codings).strip().lower() != "chunked":
        return "a Transfer-Encoding other than chunked"
    values = {value.strip() for joined in lengths for value in joined.split(",")}
    if values and (len(values) > 1 or not next(iter(values)).isdigit()):
        return "an invalid or conflicting Content-Length"
    return None


class StrictHTTPResponse(http.client.HTTPResponse):
    """http.client's response, refusing a malformed head with InvalidUpstreamHead."""

    def begin(self) -> None:
        """Read the head as http.client does, then check the raw lines and the framing."""
        if self.headers is not None:
            return
        real = self.fp
        recorder = _LineRecorder(real)
        self.fp = recorder
        try:
            super().begin()
        finally:
            if self.fp is recorder:  # http.client sets it to None when it closes the connection
                self.fp = real
        reason = head_error(recorder.lines) or framing_error(self.msg)
        if reason is not None:
            self.close()
            # The reason is fixed text: none of the upstream's bytes reach the log.
            logger.warning("upstream answer refused: %s", reason)
            raise InvalidUpstreamHead(reason)
