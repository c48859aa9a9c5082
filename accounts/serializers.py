"""Request and response shapes of the token endpoints and /users/me."""

from __future__ import annotations

from rest_framework import serializers


class LoginSerializer(serializers.Serializer[dict[str, str]]):
    """Username and password in; `otp` too for accounts with two-factor authentication."""

    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=1024, trim_whitespace=False)
    otp = serializers.CharField(
        max_length=64,
        required=False,
        allow_blank=True,
        help_text="The authenticator app's current code, or an unused recovery code; "
        "required for accounts with two-factor authentication.",
    )


class RefreshSerializer(serializers.Serializer[dict[str, str]]):
    """A refresh token in."""

    refresh = serializers.CharField(max_length=8192)


class TokenPairSerializer(serializers.Serializer[dict[str, str]]):
    """An access and a refresh token out."""

    access = serializers.CharField()
    refresh = serializers.CharField()


class MeSerializer(serializers.Serializer[dict[str, object]]):
    """The authenticated caller."""

    id = serializers.CharField()
    username = serializers.CharField()
    kind = serializers.ChoiceField(choices=["user", "client"])
    credential = serializers.CharField()
    roles = serializers.ListField(child=serializers.CharField())
    permissions = serializers.ListField(child=serializers.CharField())
