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


class ManagesGateway(BasePermission):
    """Active staff users, or callers holding the manage:gateway permission."""

    message = "Managing the gateway needs a staff account or the manage:gateway permission."

    def has_permission(self, request: Request, view: Any) -> bool:
        """Allow staff and manage:gateway holders; everyone else gets 401/403."""
        user = request.user
        if user is None or not getattr(user, "is_authenticated", False):
            return False
        if not getattr(user, "is_active", True):
            return False
        if getattr(user, "is_staff", False):
            return True
        return holds_manage_permission(user)
