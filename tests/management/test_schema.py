"""The gateway's own OpenAPI document: valid OpenAPI 3, documented operations, security."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import validate
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

METHODS = ("get", "post", "put", "patch", "delete")


@pytest.fixture
def schema() -> dict[str, Any]:
    response = APIClient().get("/api/openapi.json")
    assert response.status_code == 200
    return response.json()


def _operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """The operations under /api/ (the management API and the portal)."""
    return [
        (path, method, op)
        for path, item in schema["paths"].items()
        for method, op in item.items()
        if method in METHODS and path.startswith("/api/")
    ]


def test_schema_validates_as_openapi_3(schema):
    validate(schema)
    assert schema["openapi"].startswith("3.")


def test_schema_covers_the_management_resources_and_not_the_proxy(schema):
    paths = set(schema["paths"])
    for resource in ("services", "routes", "roles", "permissions", "users", "quotas"):
        assert f"/api/gateway/{resource}/" in paths
        assert f"/api/gateway/{resource}/{{id}}/" in paths
    assert {"/api/gateway/config/export/", "/api/gateway/config/import/"} <= paths
    assert "/api/gateway/explain/" in paths
    assert "/" not in paths and "/{path}" not in paths


def test_every_operation_has_summary_description_tags_and_examples(schema):
    for path, method, op in _operations(schema):
        where = f"{method.upper()} {path}"
        assert op.get("summary") and op.get("description") and op.get("tags"), where
        success = [op["responses"][s] for s in op["responses"] if s.startswith("2")]
        assert success, where
        if any("content" in response for response in success):
            assert any(
                media.get("examples")
                for response in success
                for media in response.get("content", {}).values()
            ), f"{where} has no response example"
        body = op.get("requestBody", {}).get("content", {})
        if body:
            assert any(media.get("examples") for media in body.values()), where


def test_error_responses_are_problem_json_with_the_problem_component(schema):
    problem = schema["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "detail", "code", "request_id", "errors"} <= set(
        problem["properties"]
    )
    for path, method, op in _operations(schema):
        errors = {s: r for s, r in op["responses"].items() if s.startswith(("4", "5"))}
        if path.startswith("/api/gateway/"):
            assert "403" in errors, f"{method} {path}"
        for status, response in errors.items():
            media = response["content"]["application/problem+json"]
            assert media["schema"] == {"$ref": "#/components/schemas/Problem"}, (path, status)
            assert media["examples"], (path, status)


def test_security_schemes_declare_jwt_oauth2_and_api_key(schema):
    schemes = schema["components"]["securitySchemes"]
    assert schemes["jwtAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": schemes["jwtAuth"]["description"],
    }
    flows = schemes["oauth2"]["flows"]
    assert flows["clientCredentials"]["tokenUrl"] == "/o/token/"
    assert flows["authorizationCode"]["authorizationUrl"] == "/o/authorize/"
    assert schemes["apiKeyAuth"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": schemes["apiKeyAuth"]["description"],
    }
    routes_list = schema["paths"]["/api/gateway/routes/"]["get"]
    assert {"cookieAuth": []} in routes_list["security"]


def test_the_servers_entry_is_the_configured_public_url(tmp_path):
    # Settings are read once per process, so a fresh `manage.py spectacular` sees the variable.
    root = Path(__file__).resolve().parents[2]
    out = tmp_path / "schema.json"
    env = {**os.environ, "GATEWAY_PUBLIC_URL": "https://api.example.com"}
    subprocess.run(
        [
            sys.executable,
            "manage.py",
            "spectacular",
            "--format",
            "openapi-json",
            "--file",
            str(out),
        ],
        cwd=root,
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert json.loads(out.read_text())["servers"] == [{"url": "https://api.example.com"}]


@pytest.mark.parametrize(
    ("component", "field"), [("OAuthApplication", "client_secret"), ("ApiKey", "key")]
)
def test_a_field_shown_only_once_is_not_required_in_answers(schema, component, field):
    # A public application's create and every later read answer without it (schemathesis found
    # a 201 for a public application "violating" the schema).
    answer = schema["components"]["schemas"][component]
    assert field in answer["properties"]
    assert field not in answer["required"]
    assert "id" in answer["required"]  # the rest of the component is untouched
