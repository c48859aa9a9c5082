"""Who may use the management API: authentication classes (one list) and the permission."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

MANAGE_PERMISSION = "manage:gateway"


def api_authentication_classes() -> list[type]:
    """The classes named in GATEWAY_API_AUTHENTICATION_CLASSES, in order."""
    return [import_string(path) for path in settings.GATEWAY_API_AUTHENTICATION_CLASSES]


def holds_manage_permission(user: Any) -> bool:
    """Whether `user` holds manage:gateway: from token claims, or from a user's roles."""
    held = getattr(user, "permissions", None)
    if isinstance(held, set | frozenset):  # a token principal carries its claims
        checker = getattr(user, "has_permission", None)
        return bool(checker(MANAGE_PERMISSION)) if callable(checker) else MANAGE_PERMISSION in held
    roles = getattr(user, "roles", None)
    if roles is None or not hasattr(roles, "filter"):
        return False
    return bool(roles.filter(permissions__name=MANAGE_PERMISSION).exists())


# The console's model permission each HTTP method needs, as Django's admin names them.
_METHOD_ACTIONS = {
    "GET": "view",
    "HEAD": "view",
    "OPTIONS": "view",
    "POST": "add",
    "PUT": "change",
    "PATCH": "change",
    "DELETE": "delete",
}


def required_model_permissions(request: Request, view: Any) -> list[str]:
    """The Django model permissions a staff user needs for this call.

    A view may name them per method in `model_permissions` (config import, explain);
    otherwise they follow from the view's model: reads need view_*, writes add/change/delete_*.
    """
    declared: dict[str, tuple[str, ...]] | None = getattr(view, "model_permissions", None)
    if declared is not None:
        return list(declared.get(request.method or "", declared.get("*", ())))
    queryset = getattr(view, "queryset", None)
    if queryset is None:
        return []
    meta = queryset.model._meta
    action = _METHOD_ACTIONS.get(request.method or "", "change")
    return [f"{meta.app_label}.{action}_{meta.model_name}"]


class ManagesGateway(BasePermission):
    """Staff users with the matching console permissions, or manage:gateway holders.

    Staff are held to their admin role (the gateway-operator / gateway-viewer groups, or
    superuser): the same model permissions the console enforces. A token or user holding the
    manage:gateway permission claim has full access, as before.
    """

    message = (
        "Managing the gateway needs a staff account whose admin role allows this action, "
        "or the manage:gateway permission."
    )

    def has_permission(self, request: Request, view: Any) -> bool:
        """Allow staff with the model permissions and manage:gateway holders; else 401/403."""
        user = request.user
        if user is None or not getattr(user, "is_authenticated", False):
            return False
        if not getattr(user, "is_active", True):
            return False
        if holds_manage_permission(user):
            return True
        if getattr(user, "is_staff", False):
            return bool(user.has_perms(required_model_permissions(request, view)))
        return False
