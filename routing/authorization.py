"""The proxy's auth rules: authenticate as the route asks, then enforce its roles/permissions."""

from __future__ import annotations

from typing import TYPE_CHECKING

from accounts.authentication import authenticate_credential, credential_in
from accounts.errors import AccessDenied, CredentialsRequired
from accounts.identity import CREDENTIAL_LABELS
from gateway_project.errors import GatewayError

if TYPE_CHECKING:
    from routing.pipeline import RequestContext
    from routing.table import CompiledRoute

NONE = "none"
OPTIONAL = "optional"
REQUIRED = "required"


def _names(values: frozenset[str]) -> str:
    return ", ".join(sorted(values)) or "-"


def _route(ctx: RequestContext) -> CompiledRoute:
    if ctx.route is None:
        raise RuntimeError("an auth step ran before match")
    return ctx.route


def authenticate(ctx: RequestContext) -> None:
    """Set `ctx.principal` from a JWT, OAuth2 token or API key; 401 for an invalid credential.

    A route with `authentication: none` does not even read credentials.
    """
    if _route(ctx).authentication == NONE:
        return
    credential = None
    try:
        credential = credential_in(ctx.meta)
        if credential is None:
            return
        kind, value = credential
        principal = authenticate_credential(kind, value, record_use=not ctx.dry_run)
    except GatewayError as error:
        label = CREDENTIAL_LABELS.get(credential[0], "") if credential else ""
        ctx.note(f"auth: {label or 'credential'} rejected: {error.detail} -> 401")
        raise
    ctx.principal = principal
    if ctx.dry_run:  # the hot path builds no explain text
        ctx.note(
            f"auth: {principal.credential_label} for {principal.username} "
            f"(roles: {_names(principal.roles)}; permissions: {_names(principal.permissions)})"
        )


def authorize(ctx: RequestContext) -> None:
    """Enforce the route's `authentication` mode, any one of its roles, all of its permissions.

    Returns when the caller may pass; raises 401 or 403 otherwise.
    """
    route = _route(ctx)
    if route.authentication == NONE:
        ctx.note("auth: none (credentials ignored)")
        return
    principal = ctx.principal
    if principal is None:
        # A route that names roles or permissions cannot be satisfied by an anonymous caller.
        if route.authentication == REQUIRED or route.roles or route.permissions:
            ctx.note("auth: no credentials -> 401")
            raise CredentialsRequired()
        ctx.note("auth: anonymous (authentication optional)")
        return
    if route.roles and not (route.roles & principal.roles):
        ctx.note(f"roles: needs one of {_names(route.roles)} -> 403")
        raise AccessDenied(f"This route needs one of the roles: {_names(route.roles)}.")
    missing = frozenset(p for p in route.permissions if not principal.has_permission(p))
    if missing:
        ctx.note(f"permissions: missing {_names(missing)} -> 403")
        raise AccessDenied(f"This route needs the permissions: {_names(missing)}.")
    if route.roles or route.permissions:
        ctx.note("roles/permissions: satisfied")
