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
        """Any application may ask for any scope; the roles still bound what it gets."""
        return list(self.get_all_scopes())

    def get_default_scopes(
        self, application: Any = None, request: Any = None, *args: Any, **kwargs: Any
    ) -> list[str]:
        """Without a `scope` parameter a token gets all its roles allow."""
        return [FULL_SCOPE]
