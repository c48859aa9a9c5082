"""The identity endpoints: /auth/token/, /auth/token/refresh/, /auth/logout/ and /users/me."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import authenticate
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework.permissions import AllowAny, BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import CredentialAuthentication, PrincipalSessionAuthentication
from accounts.errors import CredentialsRequired, InvalidCredentials, TooManyLoginAttempts
from accounts.identity import Principal
from accounts.login_throttle import cooloff_seconds
from accounts.mfa import token_second_factor_check
from accounts.models import User
from accounts.serializers import (
    LoginSerializer,
    MeSerializer,
    RefreshSerializer,
    TokenPairSerializer,
)
from accounts.services import refresh_token_blacklist, token_pair_issue, token_pair_refresh


class IsAuthenticatedPrincipal(BasePermission):
    """Any authenticated caller; 401 with a Bearer challenge otherwise."""

    def has_permission(self, request: Request, view: Any) -> bool:
        """Raise 401 when the request carries no valid credential."""
        if not isinstance(request.user, Principal):
            raise CredentialsRequired("Send a Bearer token, an X-API-Key or log in.")
        return True


class TokenObtainView(APIView):
    """Exchange a username and password (and `otp` for accounts with two-factor authentication)
    for a JWT pair (login-throttled per account+address, wrong codes included)."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]

    @extend_schema(request=LoginSerializer, responses={200: TokenPairSerializer})
    def post(self, request: Request) -> Response:
        """Check the password and answer {"access", "refresh"}."""
        data = LoginSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        django_request = request._request
        user = authenticate(
            request=django_request,
            username=data.validated_data["username"],
            password=data.validated_data["password"],
        )
        if getattr(django_request, "axes_locked_out", False):
            raise TooManyLoginAttempts(headers={"Retry-After": str(cooloff_seconds())})
        if not isinstance(user, User) or not user.is_active:
            raise InvalidCredentials("Wrong username or password, or the account is inactive.")
        token_second_factor_check(
            request=django_request, user=user, code=data.validated_data.get("otp")
        )
        User.objects.filter(pk=user.pk).update(last_login=timezone.now())
        return Response(token_pair_issue(user=user))


class TokenRefreshView(APIView):
    """Exchange a refresh token for a new pair; the old refresh token is blacklisted."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]

    @extend_schema(request=RefreshSerializer, responses={200: TokenPairSerializer})
    def post(self, request: Request) -> Response:
        """Rotate the refresh token and answer {"access", "refresh"}."""
        data = RefreshSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(token_pair_refresh(raw_refresh=data.validated_data["refresh"]))


class LogoutView(APIView):
    """Blacklist a refresh token (access tokens expire on their own, within minutes)."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]

    @extend_schema(request=RefreshSerializer, responses={204: None})
    def post(self, request: Request) -> Response:
        """Blacklist the refresh token; 204."""
        data = RefreshSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        refresh_token_blacklist(raw_refresh=data.validated_data["refresh"])
        return Response(status=204)


class MeView(APIView):
    """The authenticated caller, whatever the credential."""

    authentication_classes = [CredentialAuthentication, PrincipalSessionAuthentication]
    permission_classes = [IsAuthenticatedPrincipal]

    @extend_schema(responses={200: MeSerializer})
    def get(self, request: Request) -> Response:
        """Who you are, your roles and your effective permissions."""
        principal: Principal = request.user  # type: ignore[assignment]
        return Response(
            MeSerializer(
                {
                    "id": principal.id,
                    "username": principal.username,
                    "kind": principal.kind,
                    "credential": principal.credential,
                    "roles": sorted(principal.roles),
                    "permissions": sorted(principal.permissions),
                }
            ).data
        )
