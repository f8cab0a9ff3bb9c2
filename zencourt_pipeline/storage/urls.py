"""Playable media URLs: the one place a stored URI becomes a URL a `<video>` tag can load.

The database keeps the canonical URI (`s3://bucket/key`, `file:///...`); the web app gets, at
each status read and each webhook delivery, one of (in this order):

1. `PUBLIC_MEDIA_BASE_URL` + key, when set (a public B2 bucket, or a CDN in front of it): never
   expires;
2. the storage's own unsigned https URL (`Storage.public_https_url`), when it has one;
3. the storage's presigned https URL (`Storage.url`), living `MEDIA_URL_EXPIRES_SECONDS`;
4. for a storage without http URLs (local files: the embedded demo), the HTTP service's
   `GET /media/{key}?expires=&sig=` under `VIDEO_SERVER_URL`, signed with a key derived from
   `VIDEO_SERVER_API_KEY` (HMAC-SHA256 over key and expiry; rotating the API key voids them).

A URI outside the configured storage (or a local one while no API key is set) is returned as
stored: there is nothing better to give. Expiring URLs state their expiry (`expires_at`).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from zencourt_pipeline.storage.base import Storage, StorageError, validate_key

MEDIA_ROUTE = "/media"
_KEY_CONTEXT = b"zencourt-media-url-v1"


@dataclass(frozen=True, slots=True)
class PlayableUrl:
    """A URL a browser can GET, and when it stops working (None: never)."""

    url: str
    expires_at: datetime | None = None


def media_signing_key(api_key: str | None) -> bytes | None:
    """The HMAC key of service media URLs, derived from VIDEO_SERVER_API_KEY (None when unset)."""
    return hmac.new(api_key.encode(), _KEY_CONTEXT, hashlib.sha256).digest() if api_key else None


def media_signature(signing_key: bytes, key: str, expires: int) -> str:
    """Hex HMAC-SHA256 of `<key>\\n<expires>`."""
    return hmac.new(signing_key, f"{key}\n{int(expires)}".encode(), hashlib.sha256).hexdigest()


def verify_media_token(signing_key: bytes | None, key: str, expires: int, signature: str, now: float) -> bool:
    """True when `signature` was made for (key, expires) with `signing_key` and `expires` is in the future."""
    if signing_key is None or expires <= now:
        return False
    return hmac.compare_digest(media_signature(signing_key, key, expires), signature)


class MediaUrls:
    """Resolves stored URIs into `PlayableUrl`s (see the module docstring)."""

    def __init__(
        self,
        storage: Storage,
        *,
        public_base_url: str | None = None,
        expires_seconds: int = 86_400,
        service_url: str | None = None,
        signing_key: bytes | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.storage = storage
        self.public_base_url = public_base_url.rstrip("/") if public_base_url else None
        self.expires_seconds = expires_seconds
        self.service_url = service_url.rstrip("/") if service_url else None
        self.signing_key = signing_key
        self.clock = clock

    @classmethod
    def from_settings(cls, settings: Any, storage: Storage) -> MediaUrls:
        """PUBLIC_MEDIA_BASE_URL, MEDIA_URL_EXPIRES_SECONDS, VIDEO_SERVER_URL, VIDEO_SERVER_API_KEY."""
        return cls(
            storage,
            public_base_url=settings.public_media_base_url,
            expires_seconds=settings.media_url_expires_seconds,
            service_url=settings.video_server_url,
            signing_key=media_signing_key(settings.video_server_api_key),
        )

    def resolve(self, uri: str | None) -> PlayableUrl | None:
        """The playable URL of a stored URI (None for None)."""
        if not uri:
            return None
        key = self.storage.key_from_uri(uri)
        if key is None:
            return PlayableUrl(uri)
        if self.public_base_url:
            return PlayableUrl(f"{self.public_base_url}/{quote(key, safe='/')}")
        public = self.storage.public_https_url(key)
        if public:
            return PlayableUrl(public)
        now = self.clock()
        expires = int(now) + self.expires_seconds
        try:
            signed = self.storage.url(key, self.expires_seconds)
        except StorageError:
            return PlayableUrl(uri)
        if signed.startswith(("https://", "http://")):
            return PlayableUrl(signed, _utc(expires))
        if self.signing_key is None or self.service_url is None:
            return PlayableUrl(uri)
        query = urlencode({"expires": expires, "sig": media_signature(self.signing_key, key, expires)})
        return PlayableUrl(
            f"{self.service_url}{MEDIA_ROUTE}/{quote(validate_key(key), safe='/')}?{query}", _utc(expires)
        )

    def fields(self, video_uri: str | None, thumbnail_uri: str | None) -> dict[str, Any]:
        """`video_url`, `video_uri`, `thumbnail_url`, `thumbnail_uri`, `urls_expire_at` (ISO 8601 or None)."""
        video, thumbnail = self.resolve(video_uri), self.resolve(thumbnail_uri)
        expiries = [u.expires_at for u in (video, thumbnail) if u is not None and u.expires_at is not None]
        return {
            "video_url": video.url if video else None,
            "video_uri": video_uri,
            "thumbnail_url": thumbnail.url if thumbnail else None,
            "thumbnail_uri": thumbnail_uri,
            "urls_expire_at": iso_z(min(expiries)) if expiries else None,
        }


def _utc(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def iso_z(value: datetime) -> str:
    """ISO 8601 in UTC with a `Z`, as the API writes times."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
