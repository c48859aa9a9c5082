"""Management API for API clients, their keys and OAuth applications (secrets shown once)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.db.models import Model, QuerySet
from drf_spectacular.utils import extend_schema_view
from oauth2_provider.generators import generate_client_secret
from oauth2_provider.models import get_application_model
from rest_framework import serializers

from accounts.models import ApiClient, ApiKey, ClientApplication, Role, role_name_validator
from accounts.services import api_key_create, api_key_revoke, oauth_application_create
from management.api import schema as docs
from management.api.services import saving
from management.api.views import SEARCH, ModelResourceViewSet, _search

Application = get_application_model()


class ApiClientSerializer(serializers.ModelSerializer):
    """A program that calls the gateway with API keys or OAuth client credentials."""

    roles = serializers.SlugRelatedField(
        slug_field="name", queryset=Role.objects.all(), many=True, required=False
    )
    owner = serializers.SlugRelatedField(
        slug_field="username",
        queryset=get_user_model().objects.all(),
        required=False,
        allow_null=True,
    )

    class Meta:
        model = ApiClient
        fields = ["id", "name", "description", "owner", "roles", "is_active", "created_at"]
        read_only_fields = ["created_at"]
        extra_kwargs = {"name": {"validators": [role_name_validator]}}


class ApiKeySerializer(serializers.ModelSerializer):
    """An API key; `key` is in the answer to the create only, never again."""

    client = serializers.SlugRelatedField(slug_field="name", queryset=ApiClient.objects.all())
    revoked = serializers.BooleanField(
        required=False, help_text="Set true to revoke the key; it is refused at once."
    )
    key = serializers.CharField(read_only=True, help_text="The key itself: shown only once.")

    class Meta:
        model = ApiKey
        fields = [
            "id",
            "client",
            "name",
            "prefix",
            "created_at",
            "expires_at",
            "last_used_at",
            "revoked",
            "key",
        ]
        read_only_fields = ["prefix", "created_at", "last_used_at"]

    def to_representation(self, instance: ApiKey) -> dict[str, Any]:
        """The key's fields, `revoked` as a flag and the raw key only right after creation."""
        data = super().to_representation(instance)
        data["revoked"] = instance.revoked_at is not None
        data["key"] = getattr(instance, "raw_key", None)
        if data["key"] is None:
            del data["key"]
        return data

    def create(self, validated_data: dict[str, Any]) -> ApiKey:
        """Generate the key (stored only as a hash)."""
        api_key, raw_key = api_key_create(
            client=validated_data["client"],
            name=validated_data["name"],
            expires_at=validated_data.get("expires_at"),
        )
        api_key.raw_key = raw_key  # type: ignore[attr-defined]
        return api_key

    def update(self, instance: ApiKey, validated_data: dict[str, Any]) -> ApiKey:
        """Rename, change the expiry, or revoke (a revoked key cannot be un-revoked)."""
        if validated_data.get("client", instance.client) != instance.client:
            raise serializers.ValidationError({"client": "A key cannot move to another client."})
        if validated_data.get("revoked") is False and instance.revoked_at is not None:
            raise serializers.ValidationError({"revoked": "A revoked key stays revoked."})
        instance.name = validated_data.get("name", instance.name)
        instance.expires_at = validated_data.get("expires_at", instance.expires_at)
        instance.save(update_fields=["name", "expires_at"])
        if validated_data.get("revoked"):
            api_key_revoke(api_key=instance)
        return instance


class OAuthApplicationSerializer(serializers.ModelSerializer):
    """An OAuth 2.0 application; `client_secret` is in the answer to the create only."""

    client = serializers.SlugRelatedField(
        slug_field="name",
        queryset=ApiClient.objects.all(),
        required=False,
        allow_null=True,
        help_text="The API client whose roles client-credentials tokens carry.",
    )
    client_secret = serializers.CharField(read_only=True, help_text="Shown only once.")

    class Meta:
        model = Application
        fields = [
            "id",
            "name",
            "client_id",
            "client_type",
            "authorization_grant_type",
            "redirect_uris",
            "client",
            "client_secret",
        ]
        read_only_fields = ["client_id"]

    def to_representation(self, instance: Any) -> dict[str, Any]:
        """The application, its linked client and the secret only right after creation."""
        data = super().to_representation(instance)
        link = ClientApplication.objects.filter(application=instance).first()
        data["client"] = link.client.name if link else None
        secret = getattr(instance, "raw_secret", None)
        if secret is None:
            del data["client_secret"]
        else:
            data["client_secret"] = secret
        return data

    def create(self, validated_data: dict[str, Any]) -> Any:
        """Register the application; its secret is hashed once saved."""
        try:
            application, secret = oauth_application_create(
                name=validated_data.get("name", ""),
                client_type=validated_data["client_type"],
                authorization_grant_type=validated_data["authorization_grant_type"],
                redirect_uris=validated_data.get("redirect_uris", ""),
                client=validated_data.get("client"),
            )
        except DjangoValidationError as error:
            raise serializers.ValidationError(error.message_dict) from None
        application.raw_secret = secret
        return application

    def update(self, instance: Any, validated_data: dict[str, Any]) -> Any:
        """Change the name, redirect URIs or linked client (not the secret or the grant)."""
        with transaction.atomic():
            was_public = instance.client_type == Application.CLIENT_PUBLIC
            for field in ("name", "redirect_uris", "client_type", "authorization_grant_type"):
                if field in validated_data:
                    setattr(instance, field, validated_data[field])
            if was_public and instance.client_type != Application.CLIENT_PUBLIC:
                # Public apps have no secret; a confidential one needs one, shown this once.
                instance.raw_secret = instance.client_secret = generate_client_secret()
                instance.hash_client_secret = True
            try:
                instance.full_clean(exclude=["client_secret"])
            except DjangoValidationError as error:
                raise serializers.ValidationError(error.message_dict) from None
            instance.save()
            if "client" in validated_data:
                ClientApplication.objects.filter(application=instance).delete()
                if validated_data["client"] is not None:
                    ClientApplication.objects.create(
                        application=instance, client=validated_data["client"]
                    )
        return instance


CLIENT_EXAMPLE = {
    "name": "billing-batch",
    "description": "Nightly billing export",
    "owner": "ada",
    "roles": ["developer"],
    "is_active": True,
}
KEY_EXAMPLE = {"client": "billing-batch", "name": "production", "expires_at": None}
APPLICATION_EXAMPLE = {
    "name": "billing-batch",
    "client_type": "confidential",
    "authorization_grant_type": "client-credentials",
    "redirect_uris": "",
    "client": "billing-batch",
}


@extend_schema_view(
    **docs.crud_schema(
        tag="clients",
        singular="API client",
        plural="API clients",
        serializer=ApiClientSerializer,
        request_example=CLIENT_EXAMPLE,
        response_example={"id": 1, **CLIENT_EXAMPLE, "created_at": "2026-11-26T20:00:00Z"},
        shape="as {name, description, owner, roles, is_active}",
        list_parameters=[SEARCH],
    )
)
class ApiClientViewSet(ModelResourceViewSet):
    """Programs that call the gateway; their roles apply to their keys and OAuth tokens."""

    queryset = ApiClient.objects.select_related("owner").prefetch_related("roles")
    serializer_class = ApiClientSerializer

    def filter_queryset(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        """`?search=` in the name."""
        text = _search(self.request)
        return queryset.filter(name__icontains=text) if text else queryset


@extend_schema_view(
    **docs.crud_schema(
        tag="api-keys",
        singular="API key",
        plural="API keys",
        serializer=ApiKeySerializer,
        request_example=KEY_EXAMPLE,
        response_example={
            "id": 1,
            **KEY_EXAMPLE,
            "prefix": "1a2b3c4d",
            "created_at": "2026-11-26T20:00:00Z",
            "last_used_at": None,
            "revoked": False,
            "key": "gwk_1a2b3c4d_<shown once>",
        },
        shape="as {client, name, expires_at, revoked}; the create answers the key once",
        list_parameters=[SEARCH],
    )
)
class ApiKeyViewSet(ModelResourceViewSet):
    """API keys: created with a secret shown once, revoked at once."""

    queryset = ApiKey.objects.select_related("client")
    serializer_class = ApiKeySerializer

    def filter_queryset(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        """`?search=` in the key's or its client's name."""
        text = _search(self.request)
        return queryset.filter(name__icontains=text) if text else queryset

    def perform_destroy(self, instance: Model) -> None:
        """Revoke, then delete, so no cached copy outlives the row."""
        assert isinstance(instance, ApiKey)
        with saving():
            api_key_revoke(api_key=instance)
            instance.delete()


@extend_schema_view(
    **docs.crud_schema(
        tag="oauth-applications",
        singular="OAuth application",
        plural="OAuth applications",
        serializer=OAuthApplicationSerializer,
        request_example=APPLICATION_EXAMPLE,
        response_example={
            "id": 1,
            **APPLICATION_EXAMPLE,
            "client_id": "Xk3…",
            "client_secret": "<shown once>",
        },
        shape="as {name, client_type, authorization_grant_type, redirect_uris, client}; the "
        "create answers client_id and, once, client_secret",
        list_parameters=[SEARCH],
    )
)
class OAuthApplicationViewSet(ModelResourceViewSet):
    """OAuth 2.0 applications (django-oauth-toolkit), linked to an API client's roles."""

    queryset = Application.objects.all().order_by("pk")
    serializer_class = OAuthApplicationSerializer

    def filter_queryset(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        """`?search=` in the name."""
        text = _search(self.request)
        return queryset.filter(name__icontains=text) if text else queryset
