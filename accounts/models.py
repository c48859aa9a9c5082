"""Users, roles, permissions and API clients."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.core.validators import RegexValidator
from django.db import models
from oauth2_provider.settings import oauth2_settings

from audit.models import tracked

permission_name_validator = RegexValidator(
    r"^[a-z0-9_.-]+(:[a-z0-9_.*-]+)*$",
    "Use lower-case words joined by ':', like read:tasks or manage:integrations.",
)
role_name_validator = RegexValidator(
    r"^[a-z0-9][a-z0-9_.-]*$",
    "Use lower-case letters, digits, '-', '_' or '.', like developer or ops-admin.",
)


class Permission(models.Model):
    """A named capability routes can require, like `read:tasks`."""

    name = models.CharField(
        max_length=100,
        unique=True,
        validators=[permission_name_validator],
        help_text="What the holder may do, as action:resource, e.g. read:tasks.",
    )
    description = models.CharField(max_length=255, blank=True, help_text="Shown to admins only.")

    history = tracked()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Role(models.Model):
    """A named group of permissions given to users and API clients."""

    name = models.CharField(
        max_length=100,
        unique=True,
        validators=[role_name_validator],
        help_text="Short name used in tokens and route rules, e.g. developer.",
    )
    description = models.CharField(max_length=255, blank=True, help_text="Shown to admins only.")
    permissions = models.ManyToManyField(
        Permission,
        blank=True,
        related_name="roles",
        help_text="Everything a holder of this role may do.",
    )

    history = tracked(m2m_fields=("permissions",))

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class User(AbstractUser):
    """A person who calls the gateway or administers it."""

    roles = models.ManyToManyField(
        Role,
        blank=True,
        related_name="users",
        help_text="The user's roles; their permissions are the union of the roles' permissions.",
    )


def _role_membership_label(membership: Any) -> str:
    """'alice holds developer': how a user-role link reads on the role's page and in history."""
    return f"{membership.user} holds {membership.role}"


# The auto-created link table has Django's "User_roles object (1)" as its name; an explicit
# through model would need a table migration for a label.
User.roles.through.__str__ = _role_membership_label  # type: ignore[method-assign]


class ApiClient(models.Model):
    """A program that calls the gateway with API keys."""

    name = models.CharField(
        max_length=100,
        unique=True,
        validators=[role_name_validator],
        help_text="Short name of the calling program, e.g. billing-batch.",
    )
    description = models.CharField(max_length=255, blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="api_clients",
        help_text="The person responsible for this client.",
    )
    roles = models.ManyToManyField(Role, blank=True, related_name="api_clients")
    is_active = models.BooleanField(
        default=True, help_text="Inactive clients are refused at once, whatever key they send."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    history = tracked(m2m_fields=("roles",))

    class Meta:
        ordering = ["name"]
        verbose_name = "API client"

    def __str__(self) -> str:
        return self.name


class ApiKey(models.Model):
    """A secret an API client sends as X-API-Key; only its SHA-256 is stored."""

    client = models.ForeignKey(
        ApiClient,
        on_delete=models.CASCADE,
        related_name="keys",
        help_text="The program this key belongs to; the key has the client's roles.",
    )
    name = models.CharField(
        max_length=100, help_text="What this key is for, e.g. production or ci-runner."
    )
    prefix = models.CharField(
        max_length=16,
        unique=True,
        editable=False,
        help_text="The visible start of the key, to recognise it in logs and lists.",
    )
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(
        null=True, blank=True, help_text="After this moment the key is refused. Empty: never."
    )
    last_used_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="Updated at most once a minute."
    )
    revoked_at = models.DateTimeField(
        null=True, blank=True, help_text="Set to revoke the key; it is refused at once."
    )

    class Meta:
        ordering = ["client", "name"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.client.name}/{self.name} ({self.prefix}…)"


class ClientApplication(models.Model):
    """Links an OAuth2 application to the API client whose roles its tokens carry."""

    application = models.OneToOneField(
        oauth2_settings.APPLICATION_MODEL,
        on_delete=models.CASCADE,
        related_name="gateway_link",
    )
    client = models.ForeignKey(
        ApiClient,
        on_delete=models.CASCADE,
        related_name="applications",
        help_text="Client-credentials tokens of the application act as this API client.",
    )

    class Meta:
        verbose_name = "OAuth application's API client"

    def __str__(self) -> str:
        return f"{self.application} -> {self.client}"
