"""Object storage behind one interface: local files (default) or Backblaze B2 (S3 API)."""

from __future__ import annotations

from typing import Any

from zencourt_pipeline.domain import StorageBackend
from zencourt_pipeline.storage.base import Storage, StorageError, content_type_for
from zencourt_pipeline.storage.local import LocalStorage

__all__ = ["LocalStorage", "Storage", "StorageError", "content_type_for", "storage_from_settings"]


def storage_from_settings(settings: Any) -> Storage:
    """The configured storage: `LocalStorage` under the data dir, or `B2Storage` from the `B2_*` settings."""
    if settings.storage_backend == StorageBackend.B2:
        from zencourt_pipeline.storage.b2 import B2Storage

        return B2Storage(
            endpoint=settings.b2_endpoint,
            key_id=settings.b2_key_id,
            application_key=settings.b2_application_key,
            bucket=settings.b2_bucket_name,
            region=settings.b2_region,
        )
    return LocalStorage(settings.local_storage_root)
