"""Who may manage the gateway: CONTRACT section 3's table, decided in this one place.

Every door that changes the gateway asks `authorize_change` (or `may`, its yes/no form):
the console's model pages, the management API, config import (console, API and the
`gateway import` command), history rollback and undo, and user and role edits.

Levels, strongest first:
- superuser: everything.
- manager (holds `manage:gateway`, as a user, API client, API key or token): everything
  except changing a superuser or a staff account, or making an account staff.
- operator (staff in gateway-operator): services, targets, routes, quotas; views the rest.
- viewer (staff in gateway-viewer): views everything, changes nothing.
- none: nothing.

A staff user's console role decides for them BEFORE any `manage:gateway` their roles hold:
the console role is what a superuser gave them; the gateway roles are data an operator or
an import could edit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db.models import Model

from audit.registry import section_of
from audit.roles import OPERATOR, OPERATOR_SECTIONS, SUPERUSER_SECTIONS, VIEWER
from gateway_project.errors import GatewayError

logger = logging.getLogger("gateway.authority")

MANAGE_PERMISSION = "manage:gateway"
# A `manage:*` grant holds manage:gateway too (Principal.has_permission's wildcard rule).
_MANAGE_NAMES = (MANAGE_PERMISSION, "manage:*")

SUPERUSER = "superuser"
MANAGER = "manager"
OPERATOR_LEVEL = "operator"
VIEWER_LEVEL = "viewer"
NONE = "none"
LEVELS = (SUPERUSER, MANAGER, OPERATOR_LEVEL, VIEWER_LEVEL, NONE)

ACTIONS = ("view", "add", "change", "delete")

# How long a token's user lookup is trusted; user, role and group changes drop it at once.
ACTOR_CACHE_SECONDS = 5


@dataclass(frozen=True)
class Actor:
    """Who is asking: a name for messages and the level of the table they hold."""

    name: str
    level: str
    # Why that level, for 403 messages (e.g. "console role gateway-viewer").
    basis: str = ""


SHELL_ACTOR = Actor("the command line", SUPERUSER, "shell access to the server")
NOBODY = Actor("anonymous", NONE, "no credentials")


class ChangeRefused(GatewayError):
    """The caller's level of the table does not allow this change; says what is missing."""

    status_code = 403
    default_code = "permission_denied"
    default_detail = "You may not make this change."
    title = "Forbidden"


def section_for_model(model: type[Model] | Model) -> str:
    """The table section of a model (or instance), as its app registered it; else `other`."""
    return section_of(model._meta.label_lower)


def _holds_manage(user: Any) -> bool:
    roles = getattr(user, "roles", None)
    if roles is None or not hasattr(roles, "filter"):
        return False
    return bool(roles.filter(permissions__name__in=_MANAGE_NAMES).exists())


def _user_level(user: Any) -> tuple[str, str]:
    """(level, basis) of a Django user, straight from the database row."""
    if user is None or not getattr(user, "is_authenticated", False):
        return NONE, "not signed in"
    if not user.is_active:
        return NONE, "the account is inactive"
    if user.is_superuser:
        return SUPERUSER, "superuser account"
    if user.is_staff:  # the console role first, whatever the gateway roles hold
        groups = set(user.groups.values_list("name", flat=True))
        if OPERATOR in groups:
            return OPERATOR_LEVEL, f"console role {OPERATOR}"
        if VIEWER in groups:
            return VIEWER_LEVEL, f"console role {VIEWER}"
        return NONE, "a staff account without a console role"
    if _holds_manage(user):
        return MANAGER, f"the {MANAGE_PERMISSION} permission"
    return NONE, f"no console role and no {MANAGE_PERMISSION} permission"


def actor_for_user(user: Any) -> Actor:
    """The actor of a Django user (console session), computed now."""
    level, basis = _user_level(user)
    name = user.get_username() if level != NONE or getattr(user, "pk", None) else "anonymous"
    return Actor(name, level, basis)


def console_actor(request: Any) -> Actor:
    """The actor of a console request's user, computed once per request."""
    actor = getattr(request, "_gateway_actor", None)
    if actor is None:
        actor = actor_for_user(getattr(request, "user", None))
        request._gateway_actor = actor
    return actor


def actor_cache_key(user_id: Any) -> str:
    """The cache key of a user's looked-up level."""
    return f"authority:user:{user_id}"


def forget_actors(*user_ids: Any) -> None:
    """Drop cached levels (a user, their roles or their console role changed)."""
    if not user_ids:
        return
    try:
        cache.delete_many([actor_cache_key(user_id) for user_id in user_ids])
    except Exception:  # an outage leaves at most ACTOR_CACHE_SECONDS of staleness
        logger.warning("could not drop cached management levels")


def actor_for_user_id(user_id: str) -> Actor:
    """The actor of the user behind a token's `sub`, cached for ACTOR_CACHE_SECONDS."""
    key = actor_cache_key(user_id)
    try:
        cached = cache.get(key)
    except Exception:
        cached = None
    if cached is not None:
        return Actor(*cached)
    user = None
    if user_id.isdigit():
        user = get_user_model().objects.filter(pk=int(user_id)).first()
    if user is None:
        actor = Actor(user_id, NONE, "the token's user does not exist")
    else:
        actor = actor_for_user(user)
    try:
        cache.set(key, (actor.name, actor.level, actor.basis), ACTOR_CACHE_SECONDS)
    except Exception:
        logger.warning("could not cache a management level")
    return actor


def actor_for_principal(principal: Any) -> Actor:
    """The actor behind a credential (accounts.identity.Principal).

    The gateway's own JWT (`jwt`) and a console session are the user: looked up, so a
    superuser's token is a superuser and a staff user's console role applies. An OAuth 2.0
    token on behalf of a staff user gets that user's console role; any other OAuth token,
    an API key or an external issuer's JWT manages the gateway only by holding
    manage:gateway in its (scope-narrowed) permissions, and never with superuser rights.
    """
    credential = getattr(principal, "credential", "")
    kind = getattr(principal, "kind", "")
    holds = bool(principal.has_permission(MANAGE_PERMISSION))
    if kind == "user" and credential in ("jwt", "session"):
        return actor_for_user_id(str(principal.id))
    if kind == "user" and credential == "oauth2":
        user_actor = actor_for_user_id(str(principal.id))
        if user_actor.level in (OPERATOR_LEVEL, VIEWER_LEVEL, NONE):
            return user_actor  # console role first; an inactive or role-less account: none
    if holds:
        return Actor(principal.username, MANAGER, f"the {MANAGE_PERMISSION} permission")
    return Actor(principal.username, NONE, f"no {MANAGE_PERMISSION} permission in this credential")


def _is_account(target: Any) -> bool:
    return target is not None and hasattr(target, "is_staff") and hasattr(target, "is_superuser")


def _refusal(actor: Actor, action: str, section: str, *, target: Any, sets_staff: bool) -> str:
    """Why `actor` may not: what is missing, in words."""
    held = f"you have {actor.basis}" if actor.basis else "you hold no management right"
    if actor.level == NONE:
        return (
            "Managing the gateway needs a superuser account, a staff account with a console "
            f"role (gateway-operator or gateway-viewer), or the {MANAGE_PERMISSION} "
            f"permission; {held}."
        )
    if sets_staff or (_is_account(target) and (target.is_staff or target.is_superuser)):
        return (
            "Changing a superuser or staff account, or making an account staff, needs a "
            f"superuser account; {held}."
        )
    if section in SUPERUSER_SECTIONS:
        return f"Changing {section} needs a superuser account; {held}."
    if actor.level == VIEWER_LEVEL:
        return f"Your console role only views; to {action} {section} you need more: {held}."
    return (
        f"To {action} {section} you need a superuser account (or, without a console role, "
        f"the {MANAGE_PERMISSION} permission); {held}, which changes only services, targets, "
        "routes and quotas."
    )


def may(
    actor: Actor, action: str, section: str, *, target: Any = None, sets_staff: bool = False
) -> bool:
    """Whether the table lets `actor` do `action` (view/add/change/delete) on `section`.

    `target` is the object changed (an account's staff and superuser flags matter);
    `sets_staff` says the change makes an account staff or superuser.
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    level = actor.level
    if level == SUPERUSER:
        return True
    if level == NONE:
        return False
    if action == "view":
        return True
    touches_staff = sets_staff or (
        _is_account(target) and bool(target.is_staff or target.is_superuser)
    )
    if level == MANAGER:
        return not touches_staff and section not in SUPERUSER_SECTIONS
    if level == OPERATOR_LEVEL:
        return section in OPERATOR_SECTIONS and not touches_staff
    return False


def authorize_change(
    actor: Actor, action: str, section: str, *, target: Any = None, sets_staff: bool = False
) -> None:
    """Raise ChangeRefused (403, saying what is missing) unless `may` allows it."""
    if not may(actor, action, section, target=target, sets_staff=sets_staff):
        raise ChangeRefused(_refusal(actor, action, section, target=target, sets_staff=sets_staff))
