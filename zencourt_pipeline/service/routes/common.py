"""Helpers shared by the routes: JSON bodies into pydantic models, the app's collaborators."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from zencourt_pipeline.domain import ID_PATTERN, ID_RE, EntityId
from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.service.errors import ApiError, validation_error

Id = EntityId  # ids of batches and jobs: `domain.ID_PATTERN`

M = TypeVar("M", bound=BaseModel)


async def read_json(request: Request, model: type[M]) -> M:
    """Parse the body (already size-limited by the middleware) as a JSON object into `model`."""
    data = await read_object(request)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(list(exc.errors())) from None


async def read_object(request: Request) -> dict[str, Any]:
    """The body (already size-limited by the middleware) as a JSON object."""
    body = await request.body()
    if not body.strip():
        raise ApiError(400, ErrorCode.MISSING_REQUIRED_FIELD, "request body must be a JSON object")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, ErrorCode.INVALID_INPUT, "request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, ErrorCode.INVALID_INPUT, "request body must be a JSON object")
    return data


def check_id(value: str, name: str) -> str:
    """Return the id when it matches the id pattern, else raise a 400 INVALID_INPUT naming the field."""
    if not ID_RE.match(value):
        raise ApiError(400, ErrorCode.INVALID_INPUT, f"{name} must match {ID_PATTERN}", {"field": name})
    return value
