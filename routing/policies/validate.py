"""`validate`: the request checked against its operation in the service's OpenAPI document.

The document is the docs portal's (fetched, cached and refreshed by routing.upstream_docs), as
rewritten to the gateway's routes, so the paths checked are those clients call. openapi-core
does the checking; this module only adapts the request to it and its errors to `errors[]`.
"""

from __future__ import annotations

import copy
import json
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from django.conf import settings
from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_core.deserializing.exceptions import DeserializeError
from openapi_core.templating.media_types.exceptions import MediaTypeNotFound
from openapi_core.templating.paths.exceptions import PathError
from openapi_core.validation.request.exceptions import (
    InvalidRequestBody,
    MissingParameterError,
    MissingRequiredRequestBody,
    ParameterValidationError,
)
from openapi_core.validation.schemas.exceptions import InvalidSchemaValue
from werkzeug.datastructures import Headers, ImmutableMultiDict

from gateway_project.errors import (
    GatewayError,
    OperationNotFound,
    RequestInvalid,
    ServiceUnavailable,
)

logger = logging.getLogger("gateway.validate")

# The server the rewritten document names; requests are matched against it, never contacted.
_SERVER = "http://gateway.invalid"
_MAX_MESSAGE = 300
_MAX_ERRORS = 50
_OPERATIONS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# The keywords by which a document points at a schema; the libraries would fetch any URL or
# file they name (urllib, no address guard), so only references inside the document are kept.
_REFERENCE_KEYS = frozenset({"$ref", "$dynamicRef", "$recursiveRef"})
_TOO_DEEP = {"field": "body", "message": "The body is nested too deeply.", "type": "too_deep"}


class UnusableDocument(ValueError):
    """The document cannot be used to validate (it refers to another document)."""


class _DuplicateKey(ValueError):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


@dataclass
class _ValidatedRequest:
    """A request as openapi-core reads it (its Request protocol)."""

    path: str
    method: str
    parameters: RequestParameters
    content_type: str
    body: bytes | None
    host_url: str = _SERVER


def _without_security(document: dict[str, Any]) -> dict[str, Any]:
    """The document minus its security requirements: the gateway authenticated already."""
    out = copy.deepcopy(document)
    out.pop("security", None)
    for item in (out.get("paths") or {}).values():
        if isinstance(item, dict):
            for method in _OPERATIONS:
                if isinstance(item.get(method), dict):
                    item[method].pop("security", None)
    return out


def external_reference(document: Any) -> str | None:
    """The first reference that leaves the document (a URL, a file, a relative name), or None.

    Walked iteratively, each container once: a YAML document may share or nest itself.
    """
    seen: set[int] = set()
    stack = [document]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        children = node.values() if isinstance(node, dict) else node
        if isinstance(node, dict):
            for key, value in node.items():
                if key in _REFERENCE_KEYS and isinstance(value, str) and not value.startswith("#"):
                    return value
        stack.extend(child for child in children if isinstance(child, dict | list))
    return None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name, value in pairs:
        if name in found:
            raise _DuplicateKey(name)
        found[name] = value
    return found


def _is_json(content_type: str) -> bool:
    essence = content_type.split(";", 1)[0].strip().lower()
    return essence == "application/json" or essence.endswith("+json")


def json_body_errors(content_type: str, body: bytes | None) -> list[dict[str, str]]:
    """What makes a JSON body ambiguous or unreadable before any schema is applied.

    A key repeated in one object is refused: the schema checker reads the last copy, while
    an upstream's parser may keep the first, so the check would not hold for what it acts on.
    Nesting past the interpreter's recursion limit is refused rather than crashing. A body
    that is simply not JSON is left to openapi-core, which reports it.
    """
    if not body or not _is_json(content_type):
        return []
    try:
        json.loads(body, object_pairs_hook=_unique_keys)
    except _DuplicateKey as duplicate:
        name = duplicate.name[:60]
        return [
            {
                "field": f"body.{name}",
                "message": _message(f"The key {name!r} appears more than once in one object."),
                "type": "duplicate_key",
            }
        ]
    except RecursionError:
        return [dict(_TOO_DEEP)]
    except ValueError:
        return []
    return []


def _message(text: str) -> str:
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"


def _schema_errors(error: BaseException, prefix: str) -> list[dict[str, str]]:
    """jsonschema's errors under an InvalidSchemaValue, each placed at its field."""
    cause = error.__cause__
    if not isinstance(cause, InvalidSchemaValue):
        return []
    found = []
    for schema_error in cause.schema_errors:
        where = ".".join(str(part) for part in getattr(schema_error, "absolute_path", ()))
        found.append(
            {
                "field": f"{prefix}.{where}" if where else prefix,
                "message": _message(str(getattr(schema_error, "message", "invalid value"))),
                "type": str(getattr(schema_error, "validator", "invalid")),
            }
        )
    return found


def describe_error(error: BaseException) -> list[dict[str, str]]:
    """One openapi-core error as `{"field", "message", "type"}` items."""
    if isinstance(error, ParameterValidationError):
        where = f"{error.location}.{error.name}"
        if isinstance(error, MissingParameterError):
            return [{"field": where, "message": f"{where} is required.", "type": "required"}]
        return _schema_errors(error, where) or [
            {"field": where, "message": f"{where} is not valid here.", "type": "invalid"}
        ]
    if isinstance(error, MissingRequiredRequestBody):
        return [{"field": "body", "message": "A request body is required.", "type": "required"}]
    if isinstance(error, InvalidRequestBody):
        return _schema_errors(error, "body") or [
            {"field": "body", "message": "The body does not match its schema.", "type": "invalid"}
        ]
    cause = error.__cause__ or error
    if isinstance(cause, MediaTypeNotFound):
        return [
            {
                "field": "header.Content-Type",
                "message": "This operation does not accept that content type.",
                "type": "unsupported_media_type",
            }
        ]
    if isinstance(cause, DeserializeError):
        return [{"field": "body", "message": "The body cannot be parsed.", "type": "parse_error"}]
    return [{"field": "request", "message": "The request is not valid here.", "type": "invalid"}]


class OperationValidator:
    """Checks requests against one (rewritten) OpenAPI 3.0 or 3.1 document."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        reference = external_reference(document)
        if reference is not None:
            raise UnusableDocument(
                f"it refers to another document ({reference[:80]!r}); only references "
                "inside the document (#/...) are followed"
            )
        spec = _without_security(dict(document))
        spec["servers"] = [{"url": _SERVER}]
        self._openapi = OpenAPI.from_dict(spec)

    def check(
        self,
        *,
        method: str,
        path: str,
        query: str,
        headers: Mapping[str, str],
        content_type: str,
        body: bytes | None,
        check_body: bool = True,
    ) -> None:
        """Return if the request satisfies its operation; else RequestInvalid or
        OperationNotFound. Without `check_body` (explain) only the parameters are checked."""
        pairs = parse_qsl(query, keep_blank_values=True)

        def request_with(query_pairs: list[tuple[str, str]]) -> _ValidatedRequest:
            return _ValidatedRequest(
                path=path,
                method=method.lower(),
                parameters=RequestParameters(
                    query=ImmutableMultiDict(query_pairs),
                    header=Headers(list(headers.items())),
                    cookie=ImmutableMultiDict(),
                ),
                content_type=content_type.lower(),
                body=body,
            )

        errors = json_body_errors(content_type, body) if check_body else []
        if errors:
            raise RequestInvalid(errors)
        try:
            errors = self._errors(request_with(pairs), check_body=check_body)
            if not errors and len({name for name, _ in pairs}) < len(pairs):
                # A repeated parameter: openapi-core reads the first copy, many upstreams
                # (Django, Flask, PHP) the last; both must pass (HTTP parameter pollution).
                errors = self._errors(request_with(pairs[::-1]), check_body=check_body)
        except GatewayError:
            raise
        except RecursionError:
            raise RequestInvalid([dict(_TOO_DEEP)]) from None
        except Exception as error:
            # The document, not the request: a dangling #/ reference, an unknown dialect...
            logger.warning("validate: the document cannot check this request (%r)", error)
            raise ServiceUnavailable(
                "The service's API description cannot be used to validate this request."
            ) from None
        if errors:
            raise RequestInvalid(errors[:_MAX_ERRORS])

    def _errors(self, request: _ValidatedRequest, *, check_body: bool) -> list[dict[str, str]]:
        errors: list[dict[str, str]] = []
        for error in self._openapi.request_validator.iter_errors(request):
            if isinstance(error, PathError):
                raise OperationNotFound()
            found = describe_error(error)
            if not check_body:
                found = [
                    e for e in found if not e["field"].startswith(("body", "header.Content-Type"))
                ]
            errors.extend(found)
            if len(errors) >= _MAX_ERRORS:
                break
        return errors


@dataclass
class _Entry:
    validator: OperationValidator | None
    reason: str
    loaded_at: float = field(default_factory=time.monotonic)


class ValidatorCache:
    """Each service's validator, built from the portal's cached document, per config version."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, int], _Entry] = {}
        self._lock = threading.Lock()

    def validator(self, service: str, version: int) -> OperationValidator:
        """The service's validator; ServiceUnavailable (503) when its document is unavailable."""
        key = (service, version)
        entry = self._entries.get(key)
        ttl = settings.GATEWAY_DOCS_CACHE_TTL_MS / 1000
        if entry is None or time.monotonic() - entry.loaded_at > ttl:
            with self._lock:
                entry = self._entries.get(key)
                if entry is None or time.monotonic() - entry.loaded_at > ttl:
                    entry = _load(service)
                    self._entries = {k: v for k, v in self._entries.items() if k[1] == version}
                    self._entries[key] = entry
        if entry.validator is None:
            raise ServiceUnavailable(
                "The service's API description is unavailable, so the request cannot be "
                "validated; try again shortly."
            )
        return entry.validator

    def clear(self) -> None:
        """Forget every validator (tests; the next request loads afresh)."""
        with self._lock:
            self._entries = {}


def _load(service_name: str) -> _Entry:
    """Build a service's validator from the docs portal's fetch and rewrite (never raises)."""
    from routing.models import Service
    from routing.spec_rewrite import rewrite_spec
    from routing.table import route_tables
    from routing.upstream_docs import upstream_spec

    service = Service.objects.prefetch_related("targets").filter(name=service_name).first()
    if service is None:
        return _Entry(None, "the service no longer exists")
    docs = upstream_spec(service)
    if docs.spec is None:
        logger.warning("validate: no document for service %s: %s", service_name, docs.error)
        return _Entry(None, docs.error or "no document")
    document = rewrite_spec(
        docs.spec, service=service_name, table=route_tables.get(), server_url=_SERVER
    )
    try:
        return _Entry(OperationValidator(document), "")
    except UnusableDocument as error:
        logger.warning("validate: the document of service %s is refused: %s", service_name, error)
        return _Entry(None, str(error))
    except Exception as error:  # openapi-core's own check of the document, in any form
        logger.warning(
            "validate: the document of service %s is not valid OpenAPI (%s)",
            service_name,
            type(error).__name__,
        )
        return _Entry(None, "the document is not valid OpenAPI")


validators = ValidatorCache()
