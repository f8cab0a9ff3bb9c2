"""Storage routes (API key, `storage` scope): signed download URL, multipart upload, delete.

A workspace key may only name keys under `workspaces/<its workspace id>/` (403
`STORAGE_KEY_OUTSIDE_WORKSPACE`, service/auth.py); the admin key any key.

Keys are checked with `storage.base.validate_key` (400 INVALID_INPUT when invalid). Signed
URLs live 1..604800 s (the B2/S3 presigned ceiling). An upload is stored with the part's
content type (or one derived from the key when the client sent none or a generic one) and
answers the object's stored URI (`s3://bucket/key` or `file://...`) as `url`.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, StrictInt, StrictStr, field_validator
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.service.auth import principal_of, require_storage_key
from zencourt_pipeline.service.errors import ApiError
from zencourt_pipeline.service.models import DeleteResponse, SignedUrlResponse, UploadResponse
from zencourt_pipeline.service.routes.common import read_json
from zencourt_pipeline.storage.base import MAX_SIGNED_URL_SECONDS, content_type_for, validate_key

logger = logging.getLogger("zencourt_pipeline.service.storage")
router = APIRouter(prefix="/storage", dependencies=[Depends(require_storage_key)])

DEFAULT_EXPIRES_IN = 3600
CONTENT_TYPE_RE = re.compile(
    r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$"
)
GENERIC_CONTENT_TYPES = {"application/octet-stream", "binary/octet-stream"}


class KeyRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    key: StrictStr

    @field_validator("key")
    @classmethod
    def _valid_key(cls, value: str) -> str:
        if not value:
            raise ValueError("key must not be empty")
        return value


class SignedUrlRequest(KeyRequest):
    expiresIn: StrictInt = DEFAULT_EXPIRES_IN

    @field_validator("expiresIn")
    @classmethod
    def _valid_expiry(cls, value: int) -> int:
        if not 1 <= value <= MAX_SIGNED_URL_SECONDS:
            raise ValueError(
                f"expiresIn must be between 1 and {MAX_SIGNED_URL_SECONDS} seconds (7 days), got {value}"
            )
        return value


@router.post("/signed-url", response_model=SignedUrlResponse, response_model_by_alias=True)
async def signed_url(request: Request) -> SignedUrlResponse:
    """`POST /storage/signed-url`: a URL to a stored object, valid for the requested time."""
    body = await read_json(request, SignedUrlRequest)
    key = validate_key(body.key)
    principal_of(request).check_storage_key(key)
    url = await run_in_threadpool(request.app.state.storage.url, key, body.expiresIn)
    return SignedUrlResponse(key=key, url=url, expires_in=body.expiresIn)


def _content_type(upload: UploadFile, key: str) -> str:
    declared = (upload.content_type or "").split(";")[0].strip().lower()
    if declared and declared not in GENERIC_CONTENT_TYPES:
        if not CONTENT_TYPE_RE.match(declared):
            raise ApiError(
                400, ErrorCode.INVALID_INPUT, "invalid content type of the uploaded file", {"field": "file"}
            )
        return declared
    return content_type_for(key)


def _store(storage, key: str, upload: UploadFile, content_type: str) -> tuple[str, int]:
    fd, tmp = tempfile.mkstemp(prefix="zencourt-upload-", suffix=Path(key).suffix)
    try:
        with os.fdopen(fd, "wb") as out:
            upload.file.seek(0)
            shutil.copyfileobj(upload.file, out, 1024 * 1024)
            size = out.tell()
        return storage.put_file(key, Path(tmp), content_type), size
    finally:
        Path(tmp).unlink(missing_ok=True)


@router.post("/upload", response_model=UploadResponse, response_model_by_alias=True)
async def upload(request: Request) -> UploadResponse:
    """`POST /storage/upload`: store a multipart file under the given key."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "multipart/form-data":
        raise ApiError(400, ErrorCode.INVALID_INPUT, "send multipart/form-data with the fields 'file' and 'key'")
    form = await request.form(max_files=1, max_fields=8)
    try:
        missing = [name for name in ("file", "key") if form.get(name) in (None, "")]
        if missing:
            raise ApiError(
                400,
                ErrorCode.MISSING_REQUIRED_FIELD,
                f"missing required field(s): {', '.join(missing)}",
                {"fields": missing},
            )
        file: Any = form.get("file")
        key: Any = form.get("key")
        if not isinstance(file, UploadFile):
            raise ApiError(400, ErrorCode.INVALID_INPUT, "'file' must be a file part", {"field": "file"})
        if not isinstance(key, str):
            raise ApiError(400, ErrorCode.INVALID_INPUT, "'key' must be a text field", {"field": "key"})
        key = validate_key(key)
        principal_of(request).check_storage_key(key)
        content_type = _content_type(file, key)
        uri, size = await run_in_threadpool(_store, request.app.state.storage, key, file, content_type)
    finally:
        await form.close()
    logger.info("file uploaded", extra={"key": key, "bytes": size, "contentType": content_type})
    return UploadResponse(key=key, url=uri, content_type=content_type, size=size)


@router.delete("/delete", response_model=DeleteResponse, response_model_by_alias=True)
async def delete(request: Request) -> DeleteResponse:
    """`DELETE /storage/delete`: remove a stored object and say whether it existed."""
    body = await read_json(request, KeyRequest)
    key = validate_key(body.key)
    principal_of(request).check_storage_key(key)
    deleted = await run_in_threadpool(request.app.state.storage.delete, key)
    logger.info("file deleted", extra={"key": key, "deleted": deleted})
    return DeleteResponse(key=key, deleted=deleted)
