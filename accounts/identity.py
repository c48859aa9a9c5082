"""Who a credential belongs to: the result of every authentication path."""

from __future__ import annotations

from dataclasses import dataclass

# Where a principal came from, as shown in explain output and /users/me.
CREDENTIAL_LABELS = {
    "jwt": "JWT",
    "external_jwt": "JWT (external issuer)",
    "oauth2": "OAuth2 token",
    "api_key": "API key",
    "session": "console session",
}


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: a user or an API client, with roles and permissions."""

    id: str
    username: str
    roles: frozenset[str]
    permissions: frozenset[str]
    kind: str  # user | client
    credential: str  # jwt | external_jwt | oauth2 | api_key | session
    # The DRF contract: an authenticated request.user says so.
    is_authenticated: bool = True

    @property
    def credential_label(self) -> str:
        """A readable name of the credential type."""
        return CREDENTIAL_LABELS.get(self.credential, self.credential)

    def has_permission(self, permission: str) -> bool:
        """Whether the principal holds `permission`, directly or through a `prefix:*` grant."""
        if permission in self.permissions:
            return True
        return any(
            held.endswith(":*") and permission.startswith(held[:-1]) for held in self.permissions
        )

    def as_tuple(self) -> tuple[str, str, tuple[str, ...], tuple[str, ...], str, str]:
        """A plain, picklable form for shared caches."""
        return (
            self.id,
            self.username,
            tuple(sorted(self.roles)),
            tuple(sorted(self.permissions)),
            self.kind,
            self.credential,
        )

    @classmethod
    def from_tuple(
        cls, data: tuple[str, str, tuple[str, ...], tuple[str, ...], str, str]
    ) -> Principal:
        """The inverse of as_tuple."""
        id_, username, roles, permissions, kind, credential = data
        return cls(id_, username, frozenset(roles), frozenset(permissions), kind, credential)
