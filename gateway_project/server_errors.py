"""Answers to requests gunicorn refuses before Django sees them, as problem+json (RFC 9457).

gunicorn writes its own HTML page for a malformed request line, oversized headers and the like;
the gateway's contract is that every error body it writes is problem+json without exception
text. This module maps gunicorn's parser errors to a status and code and renders the answer.
It imports nothing from Django: it runs in the worker's connection handling, outside the app.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

from gunicorn.http import errors as parse_errors

from gateway_project import client_framing

# The same shape as gateway_project.errors.problem_body (which needs Django loaded).
_PROBLEM_TYPE_PREFIX = "urn:gateway:problem:"


class HeadTimeout(parse_errors.ParseException):
    """The request head did not arrive within GATEWAY_CLIENT_HEADER_TIMEOUT."""


@dataclass(frozen=True)
class ServerProblem:
    """One kind of refusal: status, reason phrase, code, title and a fixed detail."""

    status: int
    reason: str
    code: str
    title: str
    detail: str


BAD_REQUEST = ServerProblem(
    400, "Bad Request", "bad_request", "Bad request", "The request is malformed."
)
INTERNAL_ERROR = ServerProblem(
    500,
    "Internal Server Error",
    "internal_error",
    "Internal server error",
    "The gateway could not complete the request.",
)
_BY_ERROR: tuple[
    tuple[type[BaseException] | tuple[type[BaseException], ...], ServerProblem], ...
] = (
    # A header the application tried to send, or a server misconfiguration: not the client's.
    (parse_errors.InvalidResponseHeader, INTERNAL_ERROR),
    (parse_errors.InvalidResponseHeaderName, INTERNAL_ERROR),
    (parse_errors.ConfigurationProblem, INTERNAL_ERROR),
    (
        HeadTimeout,
        ServerProblem(
            408,
            "Request Timeout",
            "request_timeout",
            "Request timeout",
            "The request head did not arrive in time.",
        ),
    ),
    (
        client_framing.MissingHost,
        ServerProblem(
            400, "Bad Request", "missing_host", "Bad request", "An HTTP/1.1 request needs a Host."
        ),
    ),
    (
        client_framing.RepeatedHost,
        ServerProblem(
            400, "Bad Request", "repeated_host", "Bad request", "The request has several Hosts."
        ),
    ),
    (
        client_framing.InvalidAbsoluteTarget,
        ServerProblem(
            400,
            "Bad Request",
            "invalid_request_target",
            "Bad request",
            "An absolute request target must be an http(s) URL without user information.",
        ),
    ),
    (
        (
            parse_errors.InvalidChunkSize,
            parse_errors.ChunkMissingTerminator,
            parse_errors.InvalidChunkExtension,
        ),
        ServerProblem(
            400,
            "Bad Request",
            "malformed_body",
            "Bad request",
            "The request body's chunked framing is malformed.",
        ),
    ),
    (
        parse_errors.LimitRequestLine,
        ServerProblem(
            414,
            "URI Too Long",
            "uri_too_long",
            "URI too long",
            "The request line is longer than the gateway accepts.",
        ),
    ),
    (
        parse_errors.LimitRequestHeaders,
        ServerProblem(
            431,
            "Request Header Fields Too Large",
            "headers_too_large",
            "Request header fields too large",
            "The request has too many header fields, or one that is too large.",
        ),
    ),
    (
        parse_errors.InvalidHeaderName,
        ServerProblem(
            400,
            "Bad Request",
            "invalid_header_name",
            "Bad request",
            "A header name holds a character the gateway does not accept.",
        ),
    ),
    (
        parse_errors.InvalidHeader,
        ServerProblem(
            400,
            "Bad Request",
            "invalid_header",
            "Bad request",
            "A header is malformed, or the message framing "
            "(Content-Length, Transfer-Encoding) is ambiguous.",
        ),
    ),
    (
        parse_errors.UnsupportedTransferCoding,
        ServerProblem(
            501,
            "Not Implemented",
            "unsupported_transfer_coding",
            "Not implemented",
            "The request's Transfer-Encoding is not supported.",
        ),
    ),
    (
        parse_errors.ExpectationFailed,
        ServerProblem(
            417,
            "Expectation Failed",
            "expectation_failed",
            "Expectation failed",
            "The request's Expect header cannot be met.",
        ),
    ),
    (
        parse_errors.ForbiddenProxyRequest,
        ServerProblem(403, "Forbidden", "forbidden", "Forbidden", "The request is forbidden."),
    ),
    (parse_errors.ParseException, BAD_REQUEST),
)


def problem_for(error: BaseException) -> ServerProblem:
    """The answer to a request gunicorn failed on with `error`."""
    for error_class, problem in _BY_ERROR:
        if isinstance(error, error_class):
            return problem
    return INTERNAL_ERROR


def is_client_error(error: BaseException) -> bool:
    """Whether `error` is the client's fault (a parse error), not the server's."""
    return isinstance(error, parse_errors.ParseException) and problem_for(error).status < 500


def problem_bytes(problem: ServerProblem) -> bytes:
    """The whole HTTP/1.1 answer, closing the connection (its framing cannot be trusted)."""
    request_id = uuid.uuid4().hex
    body = json.dumps(
        {
            "type": _PROBLEM_TYPE_PREFIX + problem.code,
            "title": problem.title,
            "status": problem.status,
            "detail": problem.detail,
            "code": problem.code,
            "request_id": request_id,
        }
    ).encode()
    head = (
        f"HTTP/1.1 {problem.status} {problem.reason}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/problem+json\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"X-Request-ID: {request_id}\r\n"
        "\r\n"
    )
    return head.encode("latin-1") + body
