"""`GET /media/{key}?expires=&sig=`: stored objects of local storage by a signed, expiring URL.

The playable URLs of `storage.urls.MediaUrls` for storage without http URLs of its own (the
embedded demo's local files). No API key: the HMAC signature over key and expiry is the
credential (a `<video>` tag sends no headers). Range requests and `HEAD` are answered by
Starlette's `FileResponse`; the content type is the key's. A bad or expired signature is 403, a
missing object (or a storage that is not local) 404. Keys are validated (`validate_key` refuses
`..` segments) and the resolved path must stay under the storage root.
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse

from zencourt_pipeline.service.errors import ApiError, ApiErrorCode
from zencourt_pipeline.service.openapi import errors, parameters
from zencourt_pipeline.storage.base import StorageError, content_type_for, validate_key
from zencourt_pipeline.storage.local import LocalStorage
from zencourt_pipeline.storage.urls import MEDIA_ROUTE, verify_media_token

router = APIRouter(prefix=MEDIA_ROUTE)


def _forbidden() -> ApiError:
    return ApiError(403, ApiErrorCode.FORBIDDEN, "invalid or expired media URL")


MEDIA_RESPONSES: dict[int | str, dict] = {
    200: {"description": "the stored object (its key's content type)",
          "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}},
    206: {"description": "the requested byte range", "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}},
    **errors(403, 404),
    416: {"description": "a range outside the object"},
}


SIGNATURE = parameters(
    ("expires", "query", {"type": "integer"}, "when the URL stops working (unix seconds)"),
    ("sig", "query", {"type": "string"}, "the URL's HMAC signature (hex)"),
)


@router.get("/{key:path}", responses=MEDIA_RESPONSES, response_class=FileResponse, openapi_extra=SIGNATURE)
@router.head("/{key:path}", responses=MEDIA_RESPONSES, response_class=FileResponse, openapi_extra=SIGNATURE)
async def media(key: str, request: Request) -> FileResponse:
    """`GET /media/{key}`: a local stored object for a valid signed URL (403 if not, 404 if missing)."""
    try:
        validate_key(key)
        expires = int(request.query_params.get("expires", ""))
    except (StorageError, ValueError):
        raise _forbidden() from None
    signature = request.query_params.get("sig", "")
    media_urls = request.app.state.media_urls
    if not verify_media_token(media_urls.signing_key, key, expires, signature, time.time()):
        raise _forbidden()
    storage = request.app.state.storage
    if not isinstance(storage, LocalStorage):
        raise ApiError(404, ApiErrorCode.NOT_FOUND, "no such media")
    path = storage.path(key).resolve()
    if not path.is_relative_to(storage.root) or not path.is_file():
        raise ApiError(404, ApiErrorCode.NOT_FOUND, "no such media")
    return FileResponse(
        path,
        media_type=content_type_for(key),
        headers={"Cache-Control": f"private, max-age={max(0, expires - int(time.time()))}"},
    )
