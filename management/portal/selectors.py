"""Reads for the developer portal: the documented services and each one's rewritten document."""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings

from routing.models import Service
from routing.spec_rewrite import rewrite_spec, service_policies
from routing.table import route_tables
from routing.upstream_docs import ServiceDocs, upstream_spec


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


def route_policies(service: Service, docs: ServiceDocs) -> list[dict[str, Any]]:
    """What callers of the service's routes must know (validation, CORS, cache, ...).

    From the rewritten document when it is available (it names the validated operations),
    else from the routes alone.
    """
    if docs.spec is not None:
        return list(docs.spec.get("x-gateway-route-policies", []))
    return service_policies(route_tables.get(), service.name)
