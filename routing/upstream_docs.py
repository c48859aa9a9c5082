"""A service's own OpenAPI document, fetched from its upstream (bounded in time and size) and cached.

The developer portal (management/portal/) rewrites and serves it; the service's console page
shows whether it could be fetched.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import requests
import yaml
from django.conf import settings
from django.core.cache import cache

from gateway_project.outbound_guard import BlockedUpstreamAddress, guarded_session
from routing.configfile.document import DocumentRefused, load_document
from routing.models import Service
from routing.table import route_tables, service_url_override

logger = logging.getLogger("gateway.docs")

# A failed fetch is retried sooner than a good document is refreshed.
_FAILURE_TTL_SECONDS = 30


class SpecUnavailable(Exception):
    """The service's document could not be fetched or is not OpenAPI 3; the reason says why."""


def spec_base_url(service: Service) -> str | None:
    """The address the document is fetched from: the override, the URL, or the first target."""
    override = service_url_override(service.name) or service.url
    if override:
        return override
    targets = sorted(service.targets.all(), key=lambda t: (-t.weight, t.url))
    return targets[0].url if targets else None


def _read_bounded(response: requests.Response, limit: int) -> bytes:
    body = bytearray()
    for chunk in response.iter_content(64 * 1024):
        body += chunk
        if len(body) > limit:
            raise SpecUnavailable(f"the document is larger than GATEWAY_DOCS_MAX_SIZE ({limit} B)")
    return bytes(body)


def _blocked(error: requests.ConnectionError) -> bool:
    """Whether the connection was refused by the address guard (requests wraps its error)."""
    reason = getattr(error.args[0] if error.args else None, "reason", None)
    return isinstance(reason, BlockedUpstreamAddress)


def parse_spec(body: bytes) -> dict[str, Any]:
    """A JSON or YAML OpenAPI 3 document as data; SpecUnavailable when it is not one.

    YAML is read like a config file (routing.configfile.document): no aliases or anchors, whose
    expansion turns a kilobyte into millions of nodes for the portal and validate to walk, and
    bounded nesting; JSON nested past the parser's limit is refused too.
    """
    try:
        document = json.loads(body)
    except RecursionError:
        raise SpecUnavailable("the document nests too deeply") from None
    except ValueError:
        try:
            _, document = load_document(body.decode("utf-8", errors="replace"))
        except DocumentRefused as refused:
            raise SpecUnavailable(f"the document is refused: {refused.problem}") from None
        except yaml.YAMLError:
            raise SpecUnavailable("the document is neither JSON nor YAML") from None
    if not isinstance(document, dict) or not str(document.get("openapi", "")).startswith("3."):
        raise SpecUnavailable("the document is not OpenAPI 3 (no `openapi: 3.x` key)")
    if not isinstance(document.get("paths", {}), dict):
        raise SpecUnavailable("the document's `paths` is not a mapping")
    return document


def spec_url(service: Service) -> str | None:
    """Where the service's document is fetched from, or None without an address."""
    base = spec_base_url(service)
    return base.rstrip("/") + service.openapi if base and service.openapi else None


def fetch_spec(service: Service) -> dict[str, Any]:
    """The service's upstream OpenAPI document; SpecUnavailable with a readable reason.

    Reasons never name the upstream's address: the portal shows them to anyone.
    """
    if not service.openapi:
        raise SpecUnavailable("the service declares no openapi path")
    url = spec_url(service)
    if not url:
        raise SpecUnavailable("the service has no URL and no targets")
    timeout = settings.GATEWAY_DOCS_FETCH_TIMEOUT_MS / 1000
    try:
        # The address guard: the document is shown to anyone, so no fetch from a blocked address.
        with guarded_session().get(
            url,
            timeout=(timeout, timeout),
            stream=True,
            allow_redirects=False,
            headers={"Accept": "application/json, application/yaml;q=0.9, */*;q=0.1"},
        ) as response:
            if response.status_code != 200:
                raise SpecUnavailable(f"the upstream answered {response.status_code}")
            body = _read_bounded(response, settings.GATEWAY_DOCS_MAX_SIZE)
    except requests.Timeout:
        raise SpecUnavailable(f"the upstream did not answer within {timeout:g}s") from None
    except requests.ConnectionError as error:
        if _blocked(error):
            raise SpecUnavailable(
                "the upstream's address is blocked for outbound fetches"
            ) from None
        raise SpecUnavailable("the upstream could not be reached") from None
    except requests.RequestException as error:
        raise SpecUnavailable(f"the request failed ({type(error).__name__})") from None
    return parse_spec(body)


@dataclass(frozen=True)
class ServiceDocs:
    """A service's upstream document (None when unavailable) and why it is missing."""

    name: str
    spec: dict[str, Any] | None
    error: str | None


def _cache_key(service: Service, version: int) -> str:
    # The config version and the service's last change are in the key: a change fetches afresh.
    changed = service.updated_at.timestamp() if service.updated_at else 0
    return f"gateway:docs:{version}:{service.name}:{changed}"


def upstream_spec(service: Service) -> ServiceDocs:
    """The service's upstream document, from the cache or fetched; failures are cached too."""
    version = route_tables.get().version
    key = _cache_key(service, version)
    cached = cache.get(key)
    if cached is None:
        ttl = settings.GATEWAY_DOCS_CACHE_TTL_MS / 1000
        try:
            cached = {"spec": fetch_spec(service), "error": None}
        except SpecUnavailable as problem:
            logger.warning("docs for service %s unavailable: %s", service.name, problem)
            cached = {"spec": None, "error": str(problem)}
            ttl = min(ttl, _FAILURE_TTL_SECONDS)
        cache.set(key, cached, ttl)
    return ServiceDocs(service.name, cached["spec"], cached["error"])
