"""The OpenAPI document (`GET /openapi.json`, checked in as docs/openapi.json): exact about what
FastAPI cannot see by itself.

* Request bodies: the routes read their bodies themselves (size limits, the one 400 shape), so
  each route names its body model with `openapi_extra=body_of(Model)`; `openapi(app)` puts those
  models (validation mode, by alias) into `components.schemas`.
* Errors: `responses=errors(400, 404, ...)` documents the error body (`ApiErrorBody`) for each
  status a route answers.
* Auth: the `x-api-key` header and `Authorization: Bearer` security schemes come from the auth
  dependency (service/auth.py, FastAPI `Security`), on exactly the protected routes.

`zencourt openapi > docs/openapi.json` writes the document; a test keeps the file equal.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from zencourt_pipeline.domain import ID_PATTERN
from zencourt_pipeline.service.errors import ERROR_TYPES
from zencourt_pipeline.service.models import ApiErrorBody

REF = "#/components/schemas/{model}"
# path parameters a route checks itself (`check_id`: 400 otherwise), documented with their pattern
PATH_PATTERNS = {"batch_id": ID_PATTERN}
BODY_MODELS: dict[str, type[BaseModel]] = {}  # component name -> request body model


# what the auth dependency answers (service/auth.py): no key or a wrong one, a missing scope, the
# workspace key's rate limit, no key configured (or the key store unreadable)
AUTH_ERRORS = (401, 403, 429, 503)
JSON_BODY_ERRORS = (400, 413)  # a body that is not the route's JSON; one over the 1 MiB limit


# headers an error status carries (service/auth.py)
ERROR_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"description": "`Bearer` (an API key is expected)", "schema": {"type": "string"}}},
    429: {"Retry-After": {"description": "seconds until the key has a request again", "required": True,
                          "schema": {"type": "integer", "minimum": 0}}},
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` documenting the error body (and headers) for each of these statuses."""
    documented: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        documented[status] = {"model": ApiErrorBody, "description": ERROR_TYPES.get(status, "Error")}
        if status in ERROR_HEADERS:
            documented[status]["headers"] = ERROR_HEADERS[status]
    return documented


def body_of(model: type[BaseModel], *, required: bool = True) -> dict[str, Any]:
    """`openapi_extra=` naming a JSON request body the route reads itself."""
    BODY_MODELS[model.__name__] = model
    return {
        "requestBody": {
            "required": required,
            "content": {"application/json": {"schema": {"$ref": REF.format(model=model.__name__)}}},
        }
    }


def multipart_body(schema: dict[str, Any]) -> dict[str, Any]:
    """`openapi_extra=` for a multipart/form-data body (its JSON schema inline)."""
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": schema}}}}


def openapi(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document with the request-body models added to its components (cached)."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    document = get_openapi(title=app.title, version=app.version, routes=app.routes, description=app.description)
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    _drop_fastapi_validation_errors(document)
    for item in document.get("paths", {}).values():
        for operation in item.values():
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path" and parameter["name"] in PATH_PATTERNS:
                    parameter["schema"]["pattern"] = PATH_PATTERNS[parameter["name"]]
    for name, model in sorted(BODY_MODELS.items()):
        schema = model.model_json_schema(by_alias=True, ref_template=REF, mode="validation")
        for def_name, definition in schema.pop("$defs", {}).items():
            schemas.setdefault(def_name, definition)
        schemas[name] = schema
    document["components"]["schemas"] = dict(sorted(schemas.items()))
    app.openapi_schema = document
    return document


def _drop_fastapi_validation_errors(document: dict[str, Any]) -> None:
    """FastAPI documents 422 `HTTPValidationError` for routes with parameters; this service answers
    a bad parameter with 400 and its own error body (service/errors.py), which the routes document."""
    for item in document.get("paths", {}).values():
        for operation in item.values():
            response = operation.get("responses", {}).get("422", {})
            schema = response.get("content", {}).get("application/json", {}).get("schema", {})
            if schema.get("$ref", "").endswith("/HTTPValidationError"):
                del operation["responses"]["422"]
    schemas = document.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)


def parameters(*specs: tuple[str, str, dict[str, Any], str]) -> dict[str, Any]:
    """`openapi_extra=` documenting parameters a route reads itself: (name, in, schema, description)."""
    return {"parameters": [
        {"name": name, "in": where, "required": where == "path", "schema": schema, "description": description}
        for name, where, schema, description in specs
    ]}


def optional_query(*specs: tuple[str, dict[str, Any], str]) -> dict[str, Any]:
    """`openapi_extra=` for optional query parameters where an empty value (`?x=`) means absent."""
    extra = parameters(*((name, "query", schema, description) for name, schema, description in specs))
    for parameter in extra["parameters"]:
        parameter["allowEmptyValue"] = True
    return extra


def install_openapi(app: FastAPI) -> None:
    """Serve `openapi(app)` at the app's openapi_url."""
    app.openapi = lambda: openapi(app)  # type: ignore[method-assign]


def openapi_json(app: FastAPI) -> str:
    """The document as the checked-in file holds it: indented, keys in FastAPI's order, a final newline."""
    return json.dumps(openapi(app), indent=2, ensure_ascii=False) + "\n"
