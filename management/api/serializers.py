"""Serializers: the config-entry shapes (for the schema only) and the plain model resources."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model, password_validation
from rest_framework import serializers

from accounts.models import Permission, Role, permission_name_validator
from audit.authority import authorize_change
from routing.configfile.spec import (
    HTTP_METHODS,
    Key,
    QuotaSpec,
    RoleSpec,
    RouteSpec,
    ServiceSpec,
    Spec,
)

# The entry serializers only DESCRIBE the config-file shape for the OpenAPI schema; requests
# are checked by routing.configfile.validate. Both derive from the specs' KEYS, so the schema
# lists exactly the keys the checker accepts.


def _key_field(key: Key) -> serializers.Field:
    """The serializer field describing one config-file key."""
    common: dict[str, Any] = {"help_text": key.help, "required": key.required}
    if key.kind == "text":
        return serializers.CharField(max_length=key.max_length, **common)
    if key.kind == "duration":
        return serializers.CharField(**common)
    if key.kind == "bool":
        return serializers.BooleanField(**common)
    if key.kind == "int":
        return serializers.IntegerField(min_value=key.minimum, **common)
    if key.kind == "choice":
        return serializers.ChoiceField(choices=key.choices, **common)
    if key.kind == "list":
        child = serializers.ChoiceField(key.choices) if key.choices else serializers.CharField()
        return serializers.ListField(child=child, max_length=key.max_items, **common)
    if key.kind == "map":
        return serializers.DictField(child=serializers.CharField(), **common)
    if key.entry is None:
        raise TypeError(f"key {key.name} of kind {key.kind} names no entry spec")
    nested = entry_serializer(key.entry, top_level=False)
    return nested(many=key.kind == "entries", **common)


_ENTRY_SERIALIZERS: dict[type[Spec], type[serializers.Serializer]] = {}


def entry_serializer(spec: type[Spec], *, top_level: bool = True) -> type[serializers.Serializer]:
    """A Serializer describing `spec`'s config-file entry; a top-level entry adds `id`."""
    if spec in _ENTRY_SERIALIZERS:
        return _ENTRY_SERIALIZERS[spec]
    fields: dict[str, Any] = {}
    if top_level:
        fields["id"] = serializers.IntegerField(read_only=True)
    for key in spec.KEYS:
        fields[key.name] = _key_field(key)
    name = spec.__name__.removesuffix("Spec") + "EntrySerializer"
    doc = (spec.__doc__ or "").strip()
    if top_level:
        doc = f"{doc} Exactly as in the config file (plus `id`)."
    # The metaclass takes the fields out of the attributes: a key named `validate` does not
    # hide Serializer.validate.
    serializer = type(name, (serializers.Serializer,), {**fields, "__doc__": doc})
    _ENTRY_SERIALIZERS[spec] = serializer
    return serializer


ServiceEntrySerializer = entry_serializer(ServiceSpec)
RouteEntrySerializer = entry_serializer(RouteSpec)
RoleEntrySerializer = entry_serializer(RoleSpec)
QuotaEntrySerializer = entry_serializer(QuotaSpec)


class PermissionSerializer(serializers.ModelSerializer):
    """A permission (not part of the config file: roles and routes create them by name)."""

    class Meta:
        model = Permission
        fields = ["id", "name", "description"]
        # Uniqueness is answered as 409 by the view, not as a 400 field error.
        extra_kwargs = {"name": {"validators": [permission_name_validator]}}


class UserSerializer(serializers.ModelSerializer):
    """A user; `password` is write-only and checked by Django's password validators."""

    roles = serializers.SlugRelatedField(
        slug_field="name", queryset=Role.objects.all(), many=True, required=False
    )
    password = serializers.CharField(
        write_only=True,
        required=False,
        style={"input_type": "password"},
        help_text="Set or change the password; omitted on create, the user cannot log in.",
    )

    class Meta:
        model = get_user_model()
        fields = ["id", "username", "email", "is_active", "is_staff", "roles", "password"]
        # Uniqueness is answered as 409 by the view, not as a 400 field error.
        extra_kwargs = {"username": {"validators": [get_user_model().username_validator]}}

    def validate_is_staff(self, value: bool) -> bool:
        """Only a superuser makes an account staff (the table in audit.authority)."""
        from management.api.access import actor_for_request

        request = self.context.get("request")
        changing = value and not (self.instance is not None and self.instance.is_staff)
        if changing and request is not None:
            authorize_change(actor_for_request(request), "change", "users", sets_staff=True)
        return value

    def validate_password(self, value: str) -> str:
        """Django's password validators, as the console applies them."""
        password_validation.validate_password(value, self.instance)
        return value

    def create(self, validated_data: dict[str, Any]) -> Any:
        """Create the user, hashing the password (or making it unusable)."""
        roles = validated_data.pop("roles", [])
        password = validated_data.pop("password", None)
        user = get_user_model()(**validated_data)
        if password:
            user.set_password(password)
        else:
            user.set_unusable_password()
        user.save()
        user.roles.set(roles)
        return user

    def update(self, instance: Any, validated_data: dict[str, Any]) -> Any:
        """Update the user; a given password is hashed."""
        password = validated_data.pop("password", None)
        user = super().update(instance, validated_data)
        if password:
            user.set_password(password)
            user.save(update_fields=["password"])
        return user


class ConfigImportSerializer(serializers.Serializer):
    """A config file to import."""

    # No max_length: GATEWAY_MAX_CONFIG_SIZE bounds the document (413, not a 400 here).
    text = serializers.CharField(trim_whitespace=False, help_text="The YAML config file's text.")
    dry_run = serializers.BooleanField(default=False, help_text="Report the diff, change nothing.")
    prune = serializers.BooleanField(
        default=False, help_text="Delete services and routes that are not in the file."
    )


class ConfigImportResultSerializer(serializers.Serializer):
    """What an import changed (or would change)."""

    changes = serializers.ListField(
        child=serializers.CharField(), help_text="`+ added`, `~ changed: ...`, `- removed`."
    )
    applied = serializers.BooleanField()


class ConfigExportSerializer(serializers.Serializer):
    """The live config as the YAML file and as the same document in JSON."""

    yaml = serializers.CharField()
    config = serializers.DictField()


class ExplainRequestSerializer(serializers.Serializer):
    """A request to run through the proxy's checks without forwarding it."""

    method = serializers.ChoiceField(choices=HTTP_METHODS)
    path = serializers.RegexField(r"^/[^\x00-\x1f\x7f]*$", max_length=2000)
    headers = serializers.DictField(
        child=serializers.CharField(allow_blank=True, max_length=8192), required=False
    )

    def validate_headers(self, value: dict[str, str]) -> dict[str, str]:
        """Header names are tokens; values stay on one line."""
        for name, header in value.items():
            if not name or not all(c.isalnum() or c in "-_" for c in name) or not name.isascii():
                raise serializers.ValidationError(f"'{name}' is not a header name.")
            if any(ord(c) < 0x20 and c != "\t" for c in header):
                raise serializers.ValidationError(f"the value of {name} has control characters.")
        return value


class ExplainRouteSerializer(serializers.Serializer):
    """The route that matched."""

    id = serializers.IntegerField()
    path = serializers.CharField()
    methods = serializers.ListField(child=serializers.CharField())
    service = serializers.CharField()
    authentication = serializers.CharField()
    roles = serializers.ListField(child=serializers.CharField())
    permissions = serializers.ListField(child=serializers.CharField())


class ExplainReportSerializer(serializers.Serializer):
    """What the gateway would do with the request."""

    method = serializers.CharField()
    path = serializers.CharField()
    normalized_path = serializers.CharField(allow_null=True)
    route = ExplainRouteSerializer(allow_null=True)
    upstream = serializers.CharField(allow_null=True)
    consumer = serializers.CharField(allow_null=True)
    status = serializers.IntegerField()
    allowed = serializers.BooleanField()
    verdict = serializers.CharField()
    steps = serializers.ListField(child=serializers.CharField())
    lines = serializers.ListField(child=serializers.CharField(), help_text="The report as text.")


class ProblemFieldErrorSerializer(serializers.Serializer):
    """One invalid field."""

    field = serializers.CharField(help_text="Where, e.g. `timeout` or `routes[0].timeout`.")
    message = serializers.CharField()
    type = serializers.CharField()


class ProblemSerializer(serializers.Serializer):
    """An RFC 9457 problem document, as every gateway error is answered."""

    type = serializers.CharField()
    title = serializers.CharField()
    status = serializers.IntegerField()
    detail = serializers.CharField()
    code = serializers.CharField()
    request_id = serializers.CharField(allow_null=True)

    def get_fields(self) -> dict[str, Any]:
        """The fields, plus `errors` (a class attribute would hide Serializer.errors)."""
        fields = super().get_fields()
        fields["errors"] = ProblemFieldErrorSerializer(
            many=True, required=False, help_text="Validation errors only."
        )
        return fields
