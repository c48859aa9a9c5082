"""Real OpenAPI 3.0 and 3.1 documents for the validate policy's tests."""

from __future__ import annotations

import copy
from typing import Any

_ITEM_SCHEMA = {
    "type": "object",
    "required": ["name", "quantity"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 40},
        "quantity": {"type": "integer", "minimum": 1},
    },
}

OPENAPI_30: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "Inventory", "version": "1.0"},
    "paths": {
        "/items/{item_id}": {
            "parameters": [
                {"name": "item_id", "in": "path", "required": True, "schema": {"type": "integer"}}
            ],
            "get": {
                "operationId": "getItem",
                "parameters": [
                    {
                        "name": "X-Tenant",
                        "in": "header",
                        "required": True,
                        "schema": {"type": "string", "pattern": "^[a-z]+$"},
                    },
                    {
                        "name": "verbose",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "boolean"},
                    },
                ],
                "responses": {"200": {"description": "the item"}},
            },
        },
        "/items": {
            "post": {
                "operationId": "createItem",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ITEM_SCHEMA}},
                },
                "responses": {"201": {"description": "created"}},
            },
            "get": {
                "operationId": "listItems",
                "parameters": [
                    {
                        "name": "limit",
                        "in": "query",
                        "required": True,
                        "schema": {"type": "integer", "minimum": 1, "maximum": 100},
                    }
                ],
                "security": [{"bearer": []}],
                "responses": {"200": {"description": "items"}},
            },
        },
    },
    "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
}


def openapi_31() -> dict[str, Any]:
    """The same API described in OpenAPI 3.1 (JSON Schema 2020-12: type lists, `const`)."""
    document = copy.deepcopy(OPENAPI_30)
    document["openapi"] = "3.1.0"
    schema = document["paths"]["/items"]["post"]["requestBody"]["content"]["application/json"]
    schema["schema"]["properties"]["note"] = {"type": ["string", "null"]}
    schema["schema"]["properties"]["kind"] = {"const": "item"}
    return document
