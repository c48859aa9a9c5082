"""OpenAPI description of the management API: security schemes, problems, examples, hooks."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema

from accounts.schema import SECURITY_SCHEMES, TOKEN_SCHEMES
from gateway_project.errors import PROBLEM_CONTENT_TYPE
from management.api.serializers import ProblemSerializer

# The credentials the gateway accepts (contract section 3), declared for "Authorize".


class CredentialAuthenticationScheme(OpenApiAuthenticationExtension):
    """The identity app's JWT / OAuth2 / API-key authentication: any one of the three."""

    target_class = "accounts.authentication.CredentialAuthentication"
    optional = True  # inert until that class exists
    name = list(TOKEN_SCHEMES)

    def get_security_requirement(self, auto_schema: Any) -> list[dict[str, list[Any]]]:
        """Any one of the schemes (OR), not all of them."""
        return [{name: []} for name in TOKEN_SCHEMES]

    def get_security_definition(self, auto_schema: Any) -> list[dict[str, Any]]:
        """The three schemes' definitions."""
        return [SECURITY_SCHEMES[name] for name in TOKEN_SCHEMES]


def _problem(status: int, code: str, title: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": f"urn:gateway:problem:{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "request_id": "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
        **extra,
    }


def problem(status: int, description: str, example: dict[str, Any]) -> OpenApiResponse:
    """A problem+json response with one example."""
    return OpenApiResponse(
        ProblemSerializer,
        description=description,
        examples=[
            OpenApiExample(
                f"{status} problem",
                value=example,
                response_only=True,
                status_codes=[str(status)],
                media_type=PROBLEM_CONTENT_TYPE,
            )
        ],
    )


PROBLEM_400 = problem(
    400,
    "Malformed request or path; for invalid fields `errors` lists every problem with its "
    "location (the config file's rules).",
    _problem(
        400,
        "validation_error",
        "Validation error",
        "The request has invalid fields; see errors.",
        errors=[
            {
                "field": "timeout",
                "message": "'30 seconds' is not a duration; use 500ms, 30s, 5m or 1h.",
                "type": "invalid",
            }
        ],
    ),
)
PROBLEM_401 = problem(
    401,
    "No valid credentials.",
    _problem(
        401, "not_authenticated", "Unauthorized", "Authentication credentials were not provided."
    ),
)
PROBLEM_403 = problem(
    403,
    "Authenticated, but neither staff nor holding manage:gateway (or a missing CSRF token).",
    _problem(
        403,
        "permission_denied",
        "Forbidden",
        "Managing the gateway needs a staff account or the manage:gateway permission.",
    ),
)
PROBLEM_404 = problem(
    404,
    "No such entry.",
    _problem(404, "not_found", "Not found", "No Route matches the given query."),
)
PROBLEM_409 = problem(
    409,
    "Conflicts with an existing entry (same name or path and methods), or still in use.",
    _problem(409, "conflict", "Conflict", "A service named 'rd-service' exists already."),
)


def errors(*statuses: int) -> dict[Any, OpenApiResponse]:
    """The problem+json responses for `statuses`, keyed for drf-spectacular."""
    known = {400: PROBLEM_400, 401: PROBLEM_401, 403: PROBLEM_403, 404: PROBLEM_404}
    known[409] = PROBLEM_409
    return {(status, PROBLEM_CONTENT_TYPE): known[status] for status in statuses}


def crud_schema(
    *,
    tag: str,
    singular: str,
    plural: str,
    serializer: Any,
    request_example: dict[str, Any],
    response_example: dict[str, Any],
    shape: str,
    list_parameters: list[Any] | None = None,
) -> dict[str, Any]:
    """extend_schema_view arguments for list/create/retrieve/update/partial_update/destroy."""
    auth = (401, 403)

    def req(name: str) -> OpenApiExample:
        return OpenApiExample(name, value=request_example, request_only=True)

    def resp(name: str, status: str) -> OpenApiExample:
        return OpenApiExample(
            name, value=response_example, response_only=True, status_codes=[status]
        )

    return {
        "list": extend_schema(
            tags=[tag],
            summary=f"List {plural}",
            description=f"Every {singular}, {shape}, paginated with `page` and `page_size`.",
            parameters=list_parameters or [],
            responses={200: serializer(many=True), **errors(400, *auth, 404)},
            examples=[
                OpenApiExample(f"A page of {plural}", value=response_example, response_only=True)
            ],
        ),
        "create": extend_schema(
            tags=[tag],
            summary=f"Create a {singular}",
            description=f"Create a {singular} from {shape}. The change is versioned: every "
            "gateway node serves it within GATEWAY_CONFIG_POLL.",
            responses={201: serializer, **errors(400, *auth, 409)},
            examples=[req(f"A new {singular}"), resp(f"The created {singular}", "201")],
        ),
        "retrieve": extend_schema(
            tags=[tag],
            summary=f"Get a {singular}",
            description=f"One {singular}, {shape}.",
            responses={200: serializer, **errors(400, *auth, 404)},
            examples=[resp(f"A {singular}", "200")],
        ),
        "update": extend_schema(
            tags=[tag],
            summary=f"Replace a {singular}",
            description=f"Replace the whole {singular} with {shape}; keys left out take "
            "their defaults.",
            responses={200: serializer, **errors(400, *auth, 404, 409)},
            examples=[req(f"The whole {singular}"), resp(f"The replaced {singular}", "200")],
        ),
        "partial_update": extend_schema(
            tags=[tag],
            summary=f"Change some fields of a {singular}",
            description=f"Merge the given keys into the {singular} ({shape}); a key set to "
            "null is removed (takes its default). The result is checked as a whole.",
            responses={200: serializer, **errors(400, *auth, 404, 409)},
            examples=[
                OpenApiExample(
                    "Change one field",
                    value={"description": "Changed through the API"},
                    request_only=True,
                ),
                resp(f"The changed {singular}", "200"),
            ],
        ),
        "destroy": extend_schema(
            tags=[tag],
            summary=f"Delete a {singular}",
            description=f"Delete the {singular}; the change is versioned like any other.",
            responses={204: None, **errors(400, *auth, 404, 409)},
        ),
    }


def exclude_proxy(endpoints: list[tuple[Any, ...]], **kwargs: Any) -> list[tuple[Any, ...]]:
    """drf-spectacular preprocessing hook: the proxy's catch-all is not part of the API."""
    from routing.views import ProxyView

    return [
        endpoint for endpoint in endpoints if getattr(endpoint[3], "cls", None) is not ProxyView
    ]


# Fields that only the create's answer holds (a secret shown once): every later answer, and a
# public OAuth application's create, leaves them out, so the answers' schema must not require
# them. drf-spectacular marks every read-only field required.
SHOWN_ONCE = {"OAuthApplication": ("client_secret",), "ApiKey": ("key",)}


def shown_once_not_required(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: a field shown only once is optional in answers."""
    schemas = result.get("components", {}).get("schemas", {})
    for component, fields in SHOWN_ONCE.items():
        schema = schemas.get(component, {})
        if "required" in schema:
            schema["required"] = [name for name in schema["required"] if name not in fields]
    return result


def add_security_schemes(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: declare every credential the gateway accepts."""
    schemes = result.setdefault("components", {}).setdefault("securitySchemes", {})
    for name, scheme in SECURITY_SCHEMES.items():
        schemes.setdefault(name, scheme)
    return result
