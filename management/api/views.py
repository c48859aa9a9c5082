"""Management API views: thin, validating through the config file's checker, writing via services."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import RequestDataTooBig
from django.db.models import Model, Q, QuerySet
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    extend_schema,
    extend_schema_view,
)
from rest_framework import exceptions, status, viewsets
from rest_framework.permissions import SAFE_METHODS
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer
from rest_framework.views import APIView

from accounts.models import Permission, Role
from audit.authority import authorize_change
from management.api import schema as docs
from management.api.access import (
    ManagesGateway,
    actor_for_request,
    api_authentication_classes,
    request_action,
)
from management.api.errors import ConfigDocumentTooLarge, config_errors
from management.api.pagination import ManagementPagination
from management.api.parsers import ManagementJSONParser
from management.api.serializers import (
    ConfigExportSerializer,
    ConfigImportResultSerializer,
    ConfigImportSerializer,
    ExplainReportSerializer,
    ExplainRequestSerializer,
    PermissionSerializer,
    QuotaEntrySerializer,
    RoleEntrySerializer,
    RouteEntrySerializer,
    ServiceEntrySerializer,
    UserSerializer,
)
from management.api.services import (
    entry_delete,
    entry_of,
    merged_entry,
    quota_save,
    role_save,
    route_save,
    saving,
    service_save,
)
from quotas.models import Quota
from routing.configfile.export import export_document, export_yaml
from routing.configfile.live import live_spec
from routing.configfile.service import config_import
from routing.configfile.validate import ConfigInvalid, ConfigTooLarge
from routing.models import Route, Service

_ID = r"[0-9]{1,18}"
_TRUE, _FALSE = {"true", "1", "yes"}, {"false", "0", "no"}


def _flag(request: Request, name: str) -> bool | None:
    """A true/false query parameter, None when absent; 400 when it is neither."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise exceptions.ValidationError({name: [f"must be true or false, not {raw[:40]!r}."]})


def _param(request: Request, name: str) -> str | None:
    """A text query parameter, None when absent; 400 for a NUL (no database stores one)."""
    value = request.query_params.get(name)
    if value and "\x00" in value:
        raise exceptions.ValidationError({name: ["must not contain NUL characters."]})
    return value or None


def _search(request: Request) -> str | None:
    return _param(request, "search")


SEARCH = OpenApiParameter("search", str, description="Case-insensitive text to look for.")


def _flag_param(name: str, description: str) -> OpenApiParameter:
    return OpenApiParameter(name, bool, description=description)


class ManagementView(APIView):
    """What every management endpoint shares: who may call it, its input layer, paging."""

    authentication_classes = api_authentication_classes()
    permission_classes = [ManagesGateway]
    parser_classes = [ManagementJSONParser]
    pagination_class = ManagementPagination


class EntryViewSet(ManagementView, viewsets.GenericViewSet):  # type: ignore[misc]
    """CRUD for one config-file section: bodies are config entries, answered with their `id`."""

    lookup_value_regex = _ID
    save_entry: ClassVar[Callable[..., Model]]
    instance_name: ClassVar[str]

    def _save(self, data: Any, obj: Model | None) -> Model:
        saved = type(self).save_entry(data=data, **{self.instance_name: obj})
        return self.get_queryset().get(pk=saved.pk)  # fresh: no stale prefetched relations

    def list(self, request: Request) -> Response:
        """A page of entries."""
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response([entry_of(obj) for obj in page or []])

    def create(self, request: Request) -> Response:
        """Check the entry with the config file's rules, then create it."""
        obj = self._save(request.data, None)
        return Response(entry_of(obj), status=status.HTTP_201_CREATED)

    def retrieve(self, request: Request, pk: str) -> Response:
        """One entry."""
        return Response(entry_of(self.get_object()))

    def update(self, request: Request, pk: str) -> Response:
        """Replace the entry."""
        obj = self._save(request.data, self.get_object())
        return Response(entry_of(obj))

    def partial_update(self, request: Request, pk: str) -> Response:
        """Merge the given keys into the entry and check the result whole."""
        obj = self.get_object()
        current = {k: v for k, v in entry_of(obj).items() if k != "id"}
        obj = self._save(merged_entry(current, request.data), obj)
        return Response(entry_of(obj))

    def destroy(self, request: Request, pk: str) -> Response:
        """Delete the entry."""
        entry_delete(obj=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


SERVICE_EXAMPLE = {
    "name": "rd-service",
    "url": "http://127.0.0.1:9001",
    "openapi": "/openapi.json",
    "health_check": {"path": "/health", "interval": "10s"},
}
ROUTE_EXAMPLE = {
    "path": "/api/v1/rd/**",
    "service": "rd-service",
    "methods": ["GET", "POST"],
    "timeout": "30s",
    "rate_limit": {"requests_per_minute": 100, "burst": 20},
    "authentication": "required",
    "permissions": ["read:tasks"],
}
ROLE_EXAMPLE = {"name": "developer", "permissions": ["read:tasks", "write:tasks"]}
QUOTA_EXAMPLE = {"role": "developer", "requests_per_day": 10000}


@extend_schema_view(
    **docs.crud_schema(
        tag="services",
        singular="service",
        plural="services",
        serializer=ServiceEntrySerializer,
        request_example=SERVICE_EXAMPLE,
        response_example={"id": 1, **SERVICE_EXAMPLE},
        shape="in the config file's `services:` entry shape (`url` or weighted `targets`)",
        list_parameters=[SEARCH],
    )
)
class ServiceViewSet(EntryViewSet):
    """Services and their targets."""

    queryset = Service.objects.prefetch_related("targets")
    serializer_class = ServiceEntrySerializer
    save_entry = staticmethod(service_save)
    instance_name = "service"

    def filter_queryset(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        """`?search=` in the name, URL, targets or description."""
        text = _search(self.request)
        if text:
            queryset = queryset.filter(
                Q(name__icontains=text)
                | Q(url__icontains=text)
                | Q(description__icontains=text)
                | Q(targets__url__icontains=text)
            ).distinct()
        return queryset


@extend_schema_view(
    **docs.crud_schema(
        tag="routes",
        singular="route",
        plural="routes",
        serializer=RouteEntrySerializer,
        request_example=ROUTE_EXAMPLE,
        response_example={"id": 1, **ROUTE_EXAMPLE},
        shape="in the config file's `routes:` entry shape",
        list_parameters=[
            OpenApiParameter("service", str, description="Only routes to this service (name)."),
            _flag_param("enabled", "Only enabled (true) or disabled (false) routes."),
            OpenApiParameter(
                "authentication",
                str,
                enum=["required", "optional", "none"],
                description="Only routes with this authentication mode.",
            ),
            SEARCH,
        ],
    )
)
class RouteViewSet(EntryViewSet):
    """Routes: path patterns leading to services, with their policies."""

    queryset = Route.objects.select_related("service").prefetch_related("permissions", "roles")
    serializer_class = RouteEntrySerializer
    save_entry = staticmethod(route_save)
    instance_name = "route"

    def filter_queryset(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        """`?service=`, `?enabled=`, `?authentication=`, `?search=` (path, description)."""
        service = _param(self.request, "service")
        if service:
            queryset = queryset.filter(service__name=service)
        enabled = _flag(self.request, "enabled")
        if enabled is not None:
            queryset = queryset.filter(enabled=enabled)
        authentication = _param(self.request, "authentication")
        if authentication:
            queryset = queryset.filter(authentication=authentication)
        text = _search(self.request)
        if text:
            queryset = queryset.filter(Q(path__icontains=text) | Q(description__icontains=text))
        return queryset


@extend_schema_view(
    **docs.crud_schema(
        tag="roles",
        singular="role",
        plural="roles",
        serializer=RoleEntrySerializer,
        request_example=ROLE_EXAMPLE,
        response_example={"id": 1, **ROLE_EXAMPLE},
        shape="in the config file's `roles:` entry shape",
        list_parameters=[SEARCH],
    )
)
class RoleViewSet(EntryViewSet):
    """Roles and the permissions they grant."""

    queryset = Role.objects.prefetch_related("permissions")
    serializer_class = RoleEntrySerializer
    save_entry = staticmethod(role_save)
    instance_name = "role"

    def filter_queryset(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        """`?search=` in the name or description."""
        text = _search(self.request)
        if text:
            queryset = queryset.filter(Q(name__icontains=text) | Q(description__icontains=text))
        return queryset


@extend_schema_view(
    **docs.crud_schema(
        tag="quotas",
        singular="quota",
        plural="quotas",
        serializer=QuotaEntrySerializer,
        request_example=QUOTA_EXAMPLE,
        response_example={"id": 1, **QUOTA_EXAMPLE},
        shape="in the config file's `quotas:` entry shape (one of role, user or client)",
        list_parameters=[
            OpenApiParameter("role", str, description="Only the quota of this role."),
            OpenApiParameter("user", str, description="Only the quota of this user."),
            OpenApiParameter("client", str, description="Only the quota of this API client."),
        ],
    )
)
class QuotaViewSet(EntryViewSet):
    """Daily and monthly request allowances per role, user or API client."""

    queryset = Quota.objects.select_related("role", "user", "client").order_by("pk")
    serializer_class = QuotaEntrySerializer
    save_entry = staticmethod(quota_save)
    instance_name = "quota"

    def filter_queryset(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        """`?role=`, `?user=`, `?client=` by name."""
        lookups = (("role", "role__name"), ("user", "user__username"), ("client", "client__name"))
        for param, lookup in lookups:
            value = _param(self.request, param)
            if value:
                queryset = queryset.filter(**{lookup: value})
        return queryset


class ModelResourceViewSet(ManagementView, viewsets.ModelViewSet):  # type: ignore[misc]
    """CRUD through a model serializer; a duplicate answers 409."""

    lookup_value_regex = _ID

    def perform_create(self, serializer: BaseSerializer[Any]) -> None:
        """Save in a transaction where a unique-constraint clash becomes 409."""
        with saving():
            serializer.save()

    def perform_update(self, serializer: BaseSerializer[Any]) -> None:
        """Save in a transaction where a unique-constraint clash becomes 409."""
        with saving():
            serializer.save()

    def perform_destroy(self, instance: Model) -> None:
        """Delete; 409 when something still refers to it."""
        entry_delete(obj=instance)


PERMISSION_EXAMPLE = {"name": "manage:integrations", "description": "Run integrations"}


@extend_schema_view(
    **docs.crud_schema(
        tag="permissions",
        singular="permission",
        plural="permissions",
        serializer=PermissionSerializer,
        request_example=PERMISSION_EXAMPLE,
        response_example={"id": 1, **PERMISSION_EXAMPLE},
        shape="as {name, description}",
        list_parameters=[SEARCH],
    )
)
class PermissionViewSet(ModelResourceViewSet):
    """Named capabilities (`read:tasks`) that roles grant and routes require."""

    queryset = Permission.objects.all()
    serializer_class = PermissionSerializer

    def filter_queryset(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        """`?search=` in the name or description."""
        text = _search(self.request)
        if text:
            queryset = queryset.filter(Q(name__icontains=text) | Q(description__icontains=text))
        return queryset


USER_EXAMPLE = {
    "username": "ada",
    "email": "ada@example.com",
    "is_active": True,
    "is_staff": False,
    "roles": ["developer"],
}


@extend_schema_view(
    **docs.crud_schema(
        tag="users",
        singular="user",
        plural="users",
        serializer=UserSerializer,
        request_example={**USER_EXAMPLE, "password": "a long passphrase 42"},
        response_example={"id": 2, **USER_EXAMPLE},
        shape="as {username, email, is_active, is_staff, roles, password (write-only)}",
        list_parameters=[
            SEARCH,
            OpenApiParameter("role", str, description="Only users holding this role."),
            _flag_param("is_active", "Only active (true) or inactive (false) users."),
            _flag_param("is_staff", "Only staff (true) or non-staff (false) users."),
        ],
    )
)
class UserViewSet(ModelResourceViewSet):
    """People who call or administer the gateway."""

    queryset = get_user_model().objects.prefetch_related("roles").order_by("pk")
    serializer_class = UserSerializer

    def get_object(self) -> Any:
        """The user; changing a staff or superuser account needs a superuser (the table)."""
        user = super().get_object()
        if self.request.method not in SAFE_METHODS:
            action = request_action(self.request, self)
            authorize_change(actor_for_request(self.request), action, "users", target=user)
        return user

    def filter_queryset(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        """`?search=` (username, email), `?role=`, `?is_active=`, `?is_staff=`."""
        text = _search(self.request)
        if text:
            queryset = queryset.filter(Q(username__icontains=text) | Q(email__icontains=text))
        role = _param(self.request, "role")
        if role:
            queryset = queryset.filter(roles__name=role)
        for name in ("is_active", "is_staff"):
            value = _flag(self.request, name)
            if value is not None:
                queryset = queryset.filter(**{name: value})
        return queryset


EXAMPLE_YAML = (
    "services:\n- name: rd-service\n  url: http://127.0.0.1:9001\n"
    "routes:\n- path: /api/v1/rd/**\n  service: rd-service\n  timeout: 30s\n"
    "  authentication: required\nroles: []\nquotas: []\n"
)


class ConfigExportView(ManagementView):
    """The live config as the config file."""

    section = "config"

    @extend_schema(
        tags=["config"],
        summary="Export the live config",
        description="The live config as the YAML config file (`yaml`) and the same document as "
        "JSON (`config`). With `?output=yaml` the answer is the YAML file itself. Importing it "
        "back is a no-op.",
        parameters=[
            OpenApiParameter(
                "output", str, enum=["json", "yaml"], description="`yaml` for the bare file."
            )
        ],
        responses={
            (200, "application/json"): ConfigExportSerializer,
            (200, "application/yaml"): OpenApiTypes.OBJECT,
            **docs.errors(401, 403),
        },
        examples=[
            OpenApiExample(
                "The live config",
                value={
                    "yaml": EXAMPLE_YAML,
                    "config": {
                        "services": [{"name": "rd-service", "url": "http://127.0.0.1:9001"}],
                        "routes": [
                            {
                                "path": "/api/v1/rd/**",
                                "service": "rd-service",
                                "timeout": "30s",
                                "authentication": "required",
                            }
                        ],
                        "roles": [],
                        "quotas": [],
                    },
                },
                response_only=True,
                media_type="application/json",
            )
        ],
    )
    def get(self, request: Request) -> Response | HttpResponse:
        """YAML and JSON, or the bare YAML file."""
        spec = live_spec()
        text = export_yaml(spec)
        if request.query_params.get("output") == "yaml":
            return HttpResponse(text, content_type="application/yaml; charset=utf-8")
        return Response({"yaml": text, "config": export_document(spec)})


class ConfigImportView(ManagementView):
    """Load a config file, as `manage.py gateway import` does."""

    # Reading the file is a view; applying it is checked per changed section by config_import.
    section = "config"
    method_actions: ClassVar[dict[str, str]] = {"POST": "view"}

    def max_body_size(self) -> int:
        """A document up to GATEWAY_MAX_CONFIG_SIZE fits, with room for its JSON wrapping,
        so an oversize document is refused by the config check, naming its own setting."""
        config_room = settings.GATEWAY_MAX_CONFIG_SIZE + 64 * 1024
        return max(settings.GATEWAY_MAX_API_BODY_SIZE, config_room)

    @extend_schema(
        tags=["config"],
        summary="Import a config file",
        description="Validates the whole file first: an invalid file changes nothing and "
        "answers 400 with every error and its location (`routes[0].timeout`). `dry_run` "
        "answers the diff and changes nothing; `prune` deletes services and routes not in the "
        "file. Re-importing the same file is a no-op (no changes). A document over "
        "GATEWAY_MAX_CONFIG_SIZE is 413; YAML aliases and nesting deeper than 50 levels are "
        "400, with the line and column.",
        request=ConfigImportSerializer,
        responses={200: ConfigImportResultSerializer, **docs.errors(400, 401, 403)},
        examples=[
            OpenApiExample(
                "Dry run", value={"text": EXAMPLE_YAML, "dry_run": True}, request_only=True
            ),
            OpenApiExample(
                "The diff",
                value={
                    "changes": ["+ service rd-service", "+ route ANY /api/v1/rd/**"],
                    "applied": False,
                },
                response_only=True,
            ),
        ],
    )
    def post(self, request: Request) -> Response:
        """Validate and apply (or only diff) the file."""
        try:
            data = request.data
        except RequestDataTooBig:
            # Django refuses a body over DATA_UPLOAD_MAX_MEMORY_SIZE (the config limit plus
            # room for the JSON around it) before reading it: the document is too large.
            raise ConfigDocumentTooLarge() from None
        body = ConfigImportSerializer(data=data)
        body.is_valid(raise_exception=True)
        try:
            result = config_import(
                **body.validated_data,
                by=request.user,
                via="the management API",
                actor=actor_for_request(request),
            )
        except ConfigTooLarge as too_large:
            (error,) = too_large.errors
            where = f"{error.place}: " if error.line else ""
            raise ConfigDocumentTooLarge(where + error.message) from None
        except ConfigInvalid as invalid:
            raise config_errors(invalid.errors) from None
        return Response({"changes": result.changes, "applied": result.applied})


class ExplainView(ManagementView):
    """Explain: what the proxy would do with a request, without forwarding it."""

    section = "explain"
    method_actions: ClassVar[dict[str, str]] = {"POST": "view"}

    @extend_schema(
        tags=["explain"],
        summary="Explain how a request would be handled",
        description="Runs the request through route matching, authentication, permissions "
        "and limits as a dry run: no upstream is called and no quota is used. Send the "
        "caller's credentials in `headers` to see their verdict.",
        request=ExplainRequestSerializer,
        responses={200: ExplainReportSerializer, **docs.errors(400, 401, 403)},
        examples=[
            OpenApiExample(
                "An anonymous GET",
                value={"method": "GET", "path": "/api/v1/rd/tasks", "headers": {}},
                request_only=True,
            ),
            OpenApiExample(
                "Refused for lack of credentials",
                value={
                    "method": "GET",
                    "path": "/api/v1/rd/tasks",
                    "normalized_path": "/api/v1/rd/tasks",
                    "route": {
                        "id": 1,
                        "path": "/api/v1/rd/**",
                        "methods": ["GET", "HEAD", "POST"],
                        "service": "rd-service",
                        "authentication": "required",
                        "roles": [],
                        "permissions": ["read:tasks"],
                    },
                    "upstream": "http://127.0.0.1:9001/api/v1/rd/tasks",
                    "consumer": None,
                    "status": 401,
                    "allowed": False,
                    "verdict": "401 Authentication credentials were not provided.",
                    "steps": [],
                    "lines": ["request:    GET /api/v1/rd/tasks", "..."],
                },
                response_only=True,
            ),
        ],
    )
    def post(self, request: Request) -> Response:
        """The report for the request."""
        from routing.explain import explain_request
        from routing.table import route_tables

        body = ExplainRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        route_tables.invalidate()  # answer for the config as committed now
        report = explain_request(
            method=data["method"], path=data["path"], headers=data.get("headers", {})
        )
        route = report.route
        return Response(
            {
                "method": report.method,
                "path": report.path,
                "normalized_path": report.normalized_path,
                "route": None
                if route is None
                else {
                    "id": route.id,
                    "path": route.pattern.pattern,
                    "methods": sorted(route.methods or ()),
                    "service": route.service.name,
                    "authentication": route.authentication,
                    "roles": sorted(route.roles),
                    "permissions": sorted(route.permissions),
                },
                "upstream": report.upstream,
                "consumer": report.consumer,
                "status": report.status,
                "allowed": report.allowed,
                "verdict": report.verdict,
                "steps": report.steps,
                "lines": report.lines(),
            }
        )
