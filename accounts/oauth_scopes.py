"""OAuth2 scopes: `gateway` (everything the roles grant) plus one scope per permission."""

from __future__ import annotations

from typing import Any

from oauth2_provider.scopes import BaseScopes

FULL_SCOPE = "gateway"
INTROSPECTION_SCOPE = "introspection"
_FIXED = {
    FULL_SCOPE: "Everything your roles allow on the gateway",
    INTROSPECTION_SCOPE: "Inspect other tokens (for resource servers)",
}


class PermissionScopes(BaseScopes):
    """Scopes from the permission table, so a token can be narrowed to e.g. `read:tasks`."""

    def get_all_scopes(self) -> dict[str, str]:
        """Every scope: the fixed ones and each permission's name."""
        from accounts.models import Permission

        scopes = dict(_FIXED)
        for name, description in Permission.objects.values_list("name", "description"):
            scopes[name] = description or name
        return scopes

    def get_available_scopes(
        self, application: Any = None, request: Any = None, *args: Any, **kwargs: Any
    ) -> list[str]:
        """Every scope, except `introspection` for clients not allowed to introspect.

        The roles still bound what a token gets (see narrowed_roles_and_permissions).
        """
        from accounts.oauth_views import may_introspect

        scopes = list(self.get_all_scopes())
        if not may_introspect(getattr(application, "client_id", None)):
            scopes.remove(INTROSPECTION_SCOPE)
        return scopes

    def get_default_scopes(
        self, application: Any = None, request: Any = None, *args: Any, **kwargs: Any
    ) -> list[str]:
        """Without a `scope` parameter a token gets all its roles allow."""
        return [FULL_SCOPE]


def narrowed_roles_and_permissions(
    role_permissions: dict[str, frozenset[str]], scopes: set[str]
) -> tuple[frozenset[str], frozenset[str]]:
    """The roles and permissions a token with `scopes` carries, from its owner's roles.

    With the `gateway` scope: every role and permission. Otherwise the permissions are those
    of the roles that the scope names, and a role is kept only when the scope grants every
    permission it has (a role without permissions is never kept): a route that requires a
    role must not accept a token narrowed away from what that role stands for.
    """
    if FULL_SCOPE in scopes:
        roles = frozenset(role_permissions)
        return roles, frozenset(p for held in role_permissions.values() for p in held)
    permissions = frozenset(p for held in role_permissions.values() for p in held if p in scopes)
    roles = frozenset(
        name for name, held in role_permissions.items() if held and held <= permissions
    )
    return roles, permissions
