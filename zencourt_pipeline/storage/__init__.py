"""Object storage behind one interface: local files (default) or Backblaze B2 (S3 API)."""

from zencourt_pipeline.storage.base import Storage, StorageError, content_type_for
from zencourt_pipeline.storage.local import LocalStorage

__all__ = ["LocalStorage", "Storage", "StorageError", "content_type_for"]
