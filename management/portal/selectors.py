"""Reads for the developer portal: each service's rewritten document, cached, and its status."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache

from management.portal.rewrite import rewrite_spec
from routing.models import Service
from routing.table import route_tables
from routing.upstream_docs import SpecUnavailable, fetch_spec

logger = logging.getLogger("gateway.docs")

# A failed fetch is retried sooner than a good document is refreshed.
_FAILURE_TTL_SECONDS = 30


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


def documented_services() -> list[Service]:
    """Services that declare an OpenAPI document, by name."""
    return list(Service.objects.exclude(openapi="").prefetch_related("targets").order_by("name"))


def service_document(service: Service, *, server_url: str) -> ServiceDocs:
    """The service's document as a gateway client sees it (spec None when unavailable)."""
    docs = upstream_spec(service)
    if docs.spec is None:
        return docs
    table = route_tables.get()
    return ServiceDocs(
        docs.name,
        rewrite_spec(docs.spec, service=service.name, table=table, server_url=server_url),
        None,
    )


def public_base_url() -> str:
    """The gateway's URL for documents made offline: GATEWAY_PUBLIC_URL, else the bind address."""
    configured: str | None = settings.GATEWAY_PUBLIC_URL
    if configured:
        return configured
    bind = os.environ.get("GATEWAY_BIND", "127.0.0.1:8000")
    host, _, port = bind.rpartition(":")
    if host in ("", "0.0.0.0", "[::]", "::"):  # noqa: S104 - listens everywhere: use loopback
        host = "127.0.0.1"
    return f"http://{host}:{port}"
