"""Local filesystem storage: the embedded default."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlparse

from zencourt_pipeline.domain import StorageBackend
from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.storage.base import Storage, StorageError, validate_key


class LocalStorage(Storage):
    name = StorageBackend.LOCAL

    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        return self.root / validate_key(key)

    def put_file(self, key: str, path: Path, content_type: str | None = None) -> str:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        _atomic_copy(Path(path), target)
        return self.uri(key)

    def get_file(self, key: str, dest: Path) -> Path:
        source = self.path(key)
        if not source.is_file():
            raise StorageError(ErrorCode.STORAGE_DOWNLOAD_FAILED, f"no object at {key!r}")
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        _atomic_copy(source, dest)
        return dest

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def url(self, key: str, expires_in: int = 3600) -> str:
        return self.uri(key)

    def delete(self, key: str) -> bool:
        try:
            self.path(key).unlink()
            return True
        except FileNotFoundError:
            return False

    def list_keys(self, prefix: str = "") -> list[str]:
        keys = (path.relative_to(self.root).as_posix() for path in self.root.rglob("*") if path.is_file())
        return sorted(key for key in keys if key.startswith(prefix) and not Path(key).name.startswith("."))

    def uri(self, key: str) -> str:
        return self.path(key).as_uri()

    def key_from_uri(self, uri: str) -> str | None:
        parsed = urlparse(uri)
        if parsed.scheme != "file":
            return None
        path = Path(unquote(parsed.path)).resolve()
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return None

    def ping(self) -> bool:
        return self.root.is_dir() and os.access(self.root, os.W_OK)


def _atomic_copy(source: Path, target: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
            shutil.copyfileobj(src, out, 1024 * 1024)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
