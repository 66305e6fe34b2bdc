"""The OpenAPI document, with FastAPI's default 422 body replaced by Baton's error shape."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

ERROR_REF = {"$ref": "#/components/schemas/ErrorResponse"}
FASTAPI_ERROR_SCHEMAS = ("HTTPValidationError", "ValidationError")


def install_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` describe validation errors as they are really answered."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            app.openapi_schema = _with_error_shape(document)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _with_error_shape(document: dict[str, Any]) -> dict[str, Any]:
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            response = operation.get("responses", {}).get("422")
            if response is not None:
                response["content"] = {"application/json": {"schema": dict(ERROR_REF)}}
                response["description"] = "invalid"
    schemas = document.get("components", {}).get("schemas", {})
    for name in FASTAPI_ERROR_SCHEMAS:
        schemas.pop(name, None)
    return document
