"""Per-workspace API keys of the HTTP service (`api_keys`, migration 0007).

A key is `zck_<12 hex>_<64 hex>`: 256 random bits after a prefix. Only the SHA-256 of the whole
key is stored, with the prefix (`zck_<12 hex>`, unique and not secret: the lookup, and what
`zencourt keys list` shows). The key itself is handed out once, by `create_key`. A presented key
is looked up by its prefix and its digest compared in constant time (`verify`).

`touch` records a use at most once per `TOUCH_INTERVAL` (one conditional UPDATE; the service also
skips it in-process within the interval), so `last_used_at` costs nothing per request.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta

import sqlalchemy as sa

from zencourt_pipeline.db.clock import utcnow
from zencourt_pipeline.db.core import Db
from zencourt_pipeline.db.records import ApiKey
from zencourt_pipeline.db.schema import api_keys
from zencourt_pipeline.domain import ID_RE, ApiScope

KEY_TAG = "zck_"
KEY_RE = re.compile(r"^(zck_[0-9a-f]{12})_[0-9a-f]{64}$")
PREFIX_RE = re.compile(r"^zck_[0-9a-f]{12}$")
TOUCH_INTERVAL = timedelta(minutes=1)

_k = api_keys.c


def key_digest(key: str) -> str:
    """The SHA-256 (hex) of a key, what the table stores instead of it."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def prefix_of(key: str) -> str | None:
    """The prefix of a key of this format, or None when the text is not one."""
    match = KEY_RE.match(key)
    return match.group(1) if match else None


def scopes_text(scopes: Iterable[ApiScope]) -> str:
    """Scopes as stored: the distinct values in `ApiScope` order, comma-separated."""
    wanted = {ApiScope(scope) for scope in scopes}
    return ",".join(scope.value for scope in ApiScope if scope in wanted)


def parse_scopes(text: str | None) -> tuple[ApiScope, ...]:
    """The stored scopes text as `ApiScope`s (unknown values are dropped)."""
    known = {scope.value for scope in ApiScope}
    return tuple(ApiScope(part) for part in (text or "").split(",") if part in known)


def _record(row) -> ApiKey:
    return ApiKey.from_row(row, scopes=parse_scopes(row.scopes))


class ApiKeyRepository:
    """The workspaces' API keys: created, verified, listed, revoked, touched."""

    def __init__(self, db: Db):
        self.db = db

    def create_key(
        self, workspace_id: str, scopes: Iterable[ApiScope], *, name: str | None = None
    ) -> tuple[ApiKey, str]:
        """Store a new key of the workspace with these scopes: (its record, the key, shown only now)."""
        if not ID_RE.match(workspace_id):
            raise ValueError("a workspace id is 1-64 characters of A-Z, a-z, 0-9, '_' and '-'")
        stored_scopes = scopes_text(scopes)
        if not stored_scopes:
            raise ValueError("a key needs at least one scope")
        while True:  # a prefix collision (48 random bits) is unlikely; draw again if it happens
            prefix = KEY_TAG + secrets.token_hex(6)
            key = f"{prefix}_{secrets.token_hex(32)}"
            values = {
                "id": uuid.uuid4().hex,
                "prefix": prefix,
                "key_sha256": key_digest(key),
                "workspace_id": workspace_id,
                "scopes": stored_scopes,
                "name": name,
                "created_at": utcnow(),
            }
            try:
                with self.db.transaction() as conn:
                    conn.execute(sa.insert(api_keys).values(**values))
            except sa.exc.IntegrityError:
                if self.find(prefix) is None:
                    raise
                continue
            record = self.find(prefix)
            assert record is not None
            return record, key

    def find(self, prefix_or_id: str) -> ApiKey | None:
        """The key with this prefix (or id), revoked or not; None when there is none."""
        column = _k.prefix if PREFIX_RE.match(prefix_or_id) else _k.id
        with self.db.engine.connect() as conn:
            row = conn.execute(sa.select(api_keys).where(column == prefix_or_id)).first()
        return _record(row) if row is not None else None

    def verify(self, presented: str) -> ApiKey | None:
        """The stored key a presented key is (revoked ones included), or None when it is none."""
        prefix = prefix_of(presented)
        if prefix is None:
            return None
        record = self.find(prefix)
        if record is None or not hmac.compare_digest(record.key_sha256, key_digest(presented)):
            return None
        return record

    def list_keys(self, *, workspace_id: str | None = None) -> list[ApiKey]:
        """Every key (of one workspace when given), oldest first, revoked ones included."""
        query = sa.select(api_keys).order_by(_k.created_at, _k.id)
        if workspace_id is not None:
            query = query.where(_k.workspace_id == workspace_id)
        with self.db.engine.connect() as conn:
            return [_record(row) for row in conn.execute(query)]

    def revoke(self, prefix_or_id: str, *, now: datetime | None = None) -> ApiKey | None:
        """Revoke the key with this prefix or id (a revoked key stays revoked, at its first time)."""
        record = self.find(prefix_or_id)
        if record is None:
            return None
        with self.db.transaction() as conn:
            conn.execute(
                sa.update(api_keys).where(_k.id == record.id, _k.revoked_at.is_(None)).values(revoked_at=now or utcnow())
            )
        return self.find(record.id)

    def touch(self, key_id: str, *, now: datetime | None = None) -> bool:
        """Set the key's `last_used_at` unless it was set within `TOUCH_INTERVAL`; True when written."""
        now = now or utcnow()
        statement = (
            sa.update(api_keys)
            .where(_k.id == key_id, sa.or_(_k.last_used_at.is_(None), _k.last_used_at < now - TOUCH_INTERVAL))
            .values(last_used_at=now)
        )
        with self.db.transaction() as conn:
            return conn.execute(statement).rowcount > 0

    def any_active(self) -> bool:
        """Whether any key is not revoked (the service then answers key calls without an admin key)."""
        with self.db.engine.connect() as conn:
            return conn.execute(sa.select(_k.id).where(_k.revoked_at.is_(None)).limit(1)).first() is not None
