"""The proxy's auth steps: authenticate as the route asks, then enforce its roles/permissions."""

from __future__ import annotations

from typing import Any

from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from accounts.authentication import authenticate_credential, read_credential
from accounts.errors import BEARER_CHALLENGE, AccessDenied, CredentialsRequired
from accounts.identity import CREDENTIAL_LABELS, Principal
from gateway_project.errors import GatewayError
from routing.proxy import Consumer, ProxyContext

NONE = "none"
OPTIONAL = "optional"
REQUIRED = "required"


def _names(values: frozenset[str]) -> str:
    return ", ".join(sorted(values)) or "-"


class RouteAuthentication(BaseAuthentication):
    """Reads a JWT, OAuth2 token or API key unless the route says `authentication: none`."""

    def authenticate(self, request: Request) -> tuple[Principal, str] | None:
        """The caller's principal; None when anonymous; 401 for an invalid credential."""
        context: ProxyContext = request.gateway  # type: ignore[attr-defined]
        if context.route.authentication == NONE:
            return None  # credentials are not even read
        credential = None
        try:
            credential = read_credential(request)
            if credential is None:
                return None
            kind, value = credential
            principal = authenticate_credential(kind, value, record_use=not context.dry_run)
        except GatewayError as error:
            if context.dry_run:
                label = CREDENTIAL_LABELS.get(credential[0], "") if credential else ""
                context.explain_steps.append(
                    f"auth: {label or 'credential'} rejected: {error.detail} -> 401"
                )
            raise
        context.consumer = Consumer(
            id=principal.id,
            username=principal.username,
            roles=principal.roles,
            permissions=principal.permissions,
            kind=principal.kind,
        )
        if context.dry_run:
            context.explain_steps.append(
                f"auth: {principal.credential_label} for {principal.username} "
                f"(roles: {_names(principal.roles)}; permissions: {_names(principal.permissions)})"
            )
        return principal, kind

    def authenticate_header(self, request: Request) -> str:
        """The challenge sent with a 401."""
        return BEARER_CHALLENGE


class RoutePermission(BasePermission):
    """Enforces the route's `authentication` mode, any one of its roles, all of its permissions."""

    def has_permission(self, request: Request, view: Any) -> bool:
        """True when the caller may pass; 401 or 403 (problem+json) otherwise."""
        context: ProxyContext = request.gateway  # type: ignore[attr-defined]
        route = context.route
        if route.authentication == NONE:
            if context.dry_run:
                context.explain_steps.append("auth: none (credentials ignored)")
            return True
        principal = request.user
        if not isinstance(principal, Principal):
            # A route that names roles or permissions cannot be satisfied by an anonymous caller.
            if route.authentication == REQUIRED or route.roles or route.permissions:
                if context.dry_run:
                    context.explain_steps.append("auth: no credentials -> 401")
                raise CredentialsRequired()
            if context.dry_run:
                context.explain_steps.append("auth: anonymous (authentication optional)")
            return True
        if route.roles and not (route.roles & principal.roles):
            if context.dry_run:
                context.explain_steps.append(f"roles: needs one of {_names(route.roles)} -> 403")
            raise AccessDenied(f"This route needs one of the roles: {_names(route.roles)}.")
        missing = frozenset(p for p in route.permissions if not principal.has_permission(p))
        if missing:
            if context.dry_run:
                context.explain_steps.append(f"permissions: missing {_names(missing)} -> 403")
            raise AccessDenied(f"This route needs the permissions: {_names(missing)}.")
        if context.dry_run and (route.roles or route.permissions):
            context.explain_steps.append("roles/permissions: satisfied")
        return True
