"""Who may use the management API: authentication classes (one list) and the permission.

The decision itself is audit.authority's table; this module only maps an HTTP call to
(actor, action, section).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from audit.authority import (
    MANAGE_PERMISSION,
    Actor,
    actor_for_principal,
    actor_for_user,
    authorize_change,
    section_for_model,
)

__all__ = ["MANAGE_PERMISSION", "ManagesGateway", "actor_for_request", "api_authentication_classes"]


def api_authentication_classes() -> list[type]:
    """The classes named in GATEWAY_API_AUTHENTICATION_CLASSES, in order."""
    return [import_string(path) for path in settings.GATEWAY_API_AUTHENTICATION_CLASSES]


def actor_for_request(request: Request | Any) -> Actor:
    """The actor of an authenticated management call: a console user or a credential."""
    user = request.user
    if hasattr(user, "credential"):  # a Principal from a token or key
        return actor_for_principal(user)
    return actor_for_user(user)


# The action of the table each HTTP method is, unless a view says otherwise.
_METHOD_ACTIONS = {
    "GET": "view",
    "HEAD": "view",
    "OPTIONS": "view",
    "POST": "add",
    "PUT": "change",
    "PATCH": "change",
    "DELETE": "delete",
}


def request_action(request: Request, view: Any) -> str:
    """The table's action for this call: the view's `method_actions`, else by method."""
    declared: dict[str, str] = getattr(view, "method_actions", None) or {}
    method = request.method or ""
    return declared.get(method) or _METHOD_ACTIONS.get(method, "change")


def view_section(view: Any) -> str:
    """The table section of a view: its `section`, else its model's."""
    section = getattr(view, "section", None)
    if section:
        return str(section)
    queryset = getattr(view, "queryset", None)
    return section_for_model(queryset.model) if queryset is not None else "other"


class ManagesGateway(BasePermission):
    """CONTRACT section 3's table for every management endpoint (401 when anonymous).

    Object-level rules (a staff or superuser account as the target) and config import's
    per-section rules are checked where the object or the diff is known, by the same table.
    """

    def has_permission(self, request: Request, view: Any) -> bool:
        """False for anonymous callers (DRF answers 401); 403 naming what is missing."""
        user = request.user
        if user is None or not getattr(user, "is_authenticated", False):
            return False
        authorize_change(
            actor_for_request(request), request_action(request, view), view_section(view)
        )
        return True
