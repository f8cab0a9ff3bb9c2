"""The API key repository (db/api_keys.py, migration 0007) on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from zencourt_pipeline.db import api_keys
from zencourt_pipeline.db.clock import utcnow
from zencourt_pipeline.db.schema import api_keys as api_keys_table
from zencourt_pipeline.domain import ApiScope


def test_migration_0007_downgrades_and_upgrades_again(app_db):
    from zencourt_pipeline.db.migrate import current_revision, downgrade

    api_keys.create_key(app_db, "ws1", [ApiScope.READ])
    downgrade(app_db.engine, "0006")
    assert not sa.inspect(app_db.engine).has_table("api_keys")
    app_db.upgrade()
    assert current_revision(app_db.engine) == "0013" and api_keys.list_keys(app_db) == []


def test_a_created_key_is_stored_hashed_and_verifies(app_db):
    record, key = api_keys.create_key(app_db, "ws-a", [ApiScope.WRITE, ApiScope.READ, ApiScope.READ], name="web")
    assert api_keys.KEY_RE.match(key) and key.startswith(record.prefix + "_")
    assert record.workspace_id == "ws-a" and record.scopes == (ApiScope.READ, ApiScope.WRITE)
    assert record.name == "web" and record.created_at is not None and not record.revoked
    with app_db.engine.connect() as conn:
        stored = [tuple(row) for row in conn.execute(sa.select(api_keys_table))]
    assert key not in repr(stored) and record.key_sha256 == api_keys.key_digest(key)
    assert api_keys.verify(app_db, key) == record
    assert api_keys.verify(app_db, key[:-1] + ("0" if key[-1] != "0" else "1")) is None  # same prefix, wrong secret
    assert api_keys.verify(app_db, "not-a-key") is None
    assert api_keys.find(app_db, record.prefix) == api_keys.find(app_db, record.id) == record


def test_keys_need_a_scope_and_a_plain_workspace_id(app_db):
    with pytest.raises(ValueError, match="scope"):
        api_keys.create_key(app_db, "ws", [])
    for bad in ("", "a/b", "x" * 65, "ws a"):
        with pytest.raises(ValueError, match="workspace id"):
            api_keys.create_key(app_db, bad, [ApiScope.READ])
    assert api_keys.list_keys(app_db) == []


def test_list_revoke_and_any_active(app_db):
    assert not api_keys.any_active(app_db)
    first, _ = api_keys.create_key(app_db, "ws-a", list(ApiScope))
    second, key = api_keys.create_key(app_db, "ws-b", [ApiScope.STORAGE])
    assert [k.id for k in api_keys.list_keys(app_db)] == [first.id, second.id]
    assert [k.id for k in api_keys.list_keys(app_db, workspace_id="ws-b")] == [second.id]
    assert api_keys.any_active(app_db)
    revoked = api_keys.revoke(app_db, second.prefix)
    assert revoked is not None and revoked.revoked and api_keys.verify(app_db, key).revoked
    again = api_keys.revoke(app_db, second.id)  # stays revoked at its first time
    assert again.revoked_at == revoked.revoked_at
    assert api_keys.revoke(app_db, "zck_000000000000") is None
    api_keys.revoke(app_db, first.id)
    assert not api_keys.any_active(app_db)


def test_touch_writes_at_most_once_a_minute(app_db):
    record, _ = api_keys.create_key(app_db, "ws", [ApiScope.READ])
    now = utcnow()
    assert api_keys.touch(app_db, record.id, now=now)
    assert not api_keys.touch(app_db, record.id, now=now + timedelta(seconds=30))
    assert api_keys.touch(app_db, record.id, now=now + timedelta(seconds=61))
    touched = api_keys.find(app_db, record.id).last_used_at
    assert abs(touched - (now + timedelta(seconds=61))) < timedelta(seconds=1)
