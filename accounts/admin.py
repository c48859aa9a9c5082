"""The console's pages for users, roles, permissions, API clients and keys, OAuth2 applications."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from oauth2_provider import admin as oauth2_admin
from oauth2_provider.models import get_application_model

from accounts.models import ApiClient, ApiKey, ClientApplication, Permission, Role, User
from accounts.selectors import effective_permissions
from accounts.services import api_key_create
from audit.views import HistoryAdminMixin


@admin.register(Permission)
class PermissionAdmin(HistoryAdminMixin, admin.ModelAdmin):
    """Permissions routes can require."""

    empty_state_hint = "A permission (e.g. read:orders) is what a route requires and a role grants."

    list_display = ["name", "description"]
    search_fields = ["name", "description"]
    list_filter = ["roles"]


class RoleMemberInline(admin.TabularInline):
    """The people holding a role, assigned from the role's page."""

    model = User.roles.through
    extra = 0
    autocomplete_fields = ["user"]
    verbose_name = "person with this role"
    verbose_name_plural = "people with this role"


@admin.register(Role)
class RoleAdmin(HistoryAdminMixin, admin.ModelAdmin):
    """Roles and the permissions they grant."""

    empty_state_hint = "A role bundles permissions; give it to users and API clients."

    list_display = ["name", "description", "permission_list"]
    search_fields = ["name", "description", "permissions__name"]
    list_filter = ["permissions"]
    filter_horizontal = ["permissions"]
    inlines = [RoleMemberInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Role]:
        """Permissions fetched with the roles, for the list column."""
        return super().get_queryset(request).prefetch_related("permissions")

    @admin.display(description="permissions")
    def permission_list(self, role: Role) -> str:
        """The role's permissions, comma-separated."""
        return ", ".join(p.name for p in role.permissions.all()) or "-"


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    """People: their roles, and what those roles let them do."""

    # Gateway roles first: what the person may call. Django's groups are the console roles;
    # Django's per-user model permissions are not consulted (audit.authority decides), so
    # they sit in a collapsed Advanced section with the login dates.
    fieldsets = (
        (None, {"fields": ("username", "password")}),
        (
            "Gateway access",
            {
                "fields": ("roles", "effective_permissions"),
                "description": "What this person may call through the gateway. Unticking "
                "'Active' below signs them out of OAuth2 and refresh tokens at once; their "
                "current access tokens expire within JWT_ACCESS_TOKEN_LIFETIME.",
            },
        ),
        ("Personal info", {"fields": ("first_name", "last_name", "email")}),
        ("Console access", {"fields": ("is_active", "is_staff", "is_superuser", "groups")}),
        (
            "Advanced",
            {
                "classes": ("collapse",),
                "fields": ("user_permissions", "last_login", "date_joined"),
                "description": "Django's per-user model permissions: the gateway's console "
                "follows the console role above instead.",
            },
        ),
    )
    readonly_fields = ["effective_permissions"]
    filter_horizontal = ["roles", "groups", "user_permissions"]
    list_display = ["username", "email", "is_active", "is_staff", "admin_role", "role_list"]
    list_filter = ["is_active", "is_staff", "is_superuser", "groups", "roles"]
    search_fields = ["username", "email", "first_name", "last_name"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[User]:
        """Roles fetched with the users, for the list column."""
        return super().get_queryset(request).prefetch_related("roles", "groups")

    def formfield_for_manytomany(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        """Explain the console roles where a superuser assigns them."""
        if db_field.name == "groups":
            kwargs["label"] = "Console role"
            kwargs["help_text"] = (
                "The person's console role (needs 'Staff status'): gateway-operator may add, "
                "change and delete services, targets, routes and quotas and import config, and "
                "may look at people and roles; gateway-viewer may only look. 'Superuser status' "
                "is the admin role: everything."
            )
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    @admin.display(description="console role")
    def admin_role(self, user: User) -> str:
        """Superuser (admin), the console groups, or '-' when the person cannot sign in."""
        if user.is_superuser:
            return "admin"
        if not user.is_staff:
            return "-"
        return ", ".join(g.name for g in user.groups.all()) or "staff, no role"

    @admin.display(description="roles")
    def role_list(self, user: User) -> str:
        """The user's roles, comma-separated."""
        return ", ".join(r.name for r in user.roles.all()) or "-"

    @admin.display(description="effective permissions")
    def effective_permissions(self, user: User) -> str:
        """Everything the user's roles grant together."""
        if user.pk is None:
            return "-"
        return ", ".join(effective_permissions(user=user)) or "none"


class ApiKeyInline(admin.TabularInline):
    """A client's keys, read-only here: create keys on the API key page."""

    model = ApiKey
    extra = 0
    can_delete = False
    fields = ("name", "prefix", "created_at", "expires_at", "last_used_at", "revoked_at")
    readonly_fields = fields
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Keys are created on their own page, which shows the secret once."""
        return False


@admin.register(ApiClient)
class ApiClientAdmin(HistoryAdminMixin, admin.ModelAdmin):
    """Programs calling the gateway with API keys or OAuth2 client credentials."""

    empty_state_hint = (
        "An API client is a program calling the gateway with API keys or OAuth2 tokens."
    )

    list_display = ["name", "owner", "is_active", "created_at"]
    list_filter = ["is_active", "roles"]
    search_fields = ["name", "description", "owner__username"]
    filter_horizontal = ["roles"]
    inlines = [ApiKeyInline]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """API keys: the key is shown once, right after it is created."""

    empty_state_hint = "A key lets an API client call the gateway (X-API-Key); it is shown once."

    list_display = [
        "prefix",
        "name",
        "client",
        "created_at",
        "expires_at",
        "last_used_at",
        "revoked_at",
    ]
    list_filter = ["client", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix", "client__name"]
    readonly_fields = ["prefix", "created_at", "last_used_at"]
    actions = ["revoke"]

    def get_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> Any:
        """Creating asks only what the key is for; the secret is generated."""
        if obj is None:
            return ["client", "name", "expires_at"]
        return [
            "client",
            "name",
            "prefix",
            "created_at",
            "expires_at",
            "last_used_at",
            "revoked_at",
        ]

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        """Generate the key on creation and show it to the admin this one time."""
        if change:
            super().save_model(request, obj, form, change)
            return
        api_key, raw_key = api_key_create(
            client=obj.client, name=obj.name, expires_at=obj.expires_at
        )
        obj.pk = api_key.pk
        obj.prefix, obj.key_hash = api_key.prefix, api_key.key_hash
        messages.warning(
            request,
            f"The new API key is {raw_key} — copy it now: it is not stored and cannot be "
            "shown again. Clients send it as the X-API-Key header.",
        )

    @admin.action(description="Revoke the selected keys (refused from the next request on)")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        """Revoke keys one by one, so each drops its cache entry."""
        count = 0
        for api_key in queryset.filter(revoked_at__isnull=True):
            api_key.revoked_at = timezone.now()
            api_key.save(update_fields=["revoked_at"])
            count += 1
        messages.success(request, f"Revoked {count} key(s).")


class ClientApplicationInline(admin.StackedInline):
    """The API client (and so the roles) an application's client-credentials tokens act as."""

    model = ClientApplication
    extra = 0
    max_num = 1
    verbose_name = "API client (roles for client-credentials tokens)"


application_model = get_application_model()
admin.site.unregister(application_model)


@admin.register(application_model)
class ApplicationAdmin(oauth2_admin.ApplicationAdmin):
    """OAuth2 applications, with the API client whose roles their tokens carry."""

    inlines = [ClientApplicationInline]
    # django-oauth-toolkit's own application pages (get_absolute_url) are not served here.
    view_on_site = False
