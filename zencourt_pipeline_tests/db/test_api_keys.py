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
    from zencourt_pipeline.db.migrate import current_revision, downgrade, head_revision

    app_db.api_keys.create_key("ws1", [ApiScope.READ])
    downgrade(app_db.db.engine, "0006")
    assert not sa.inspect(app_db.db.engine).has_table("api_keys")
    app_db.db.upgrade()
    assert current_revision(app_db.db.engine) == head_revision() and app_db.api_keys.list_keys() == []


def test_a_created_key_is_stored_hashed_and_verifies(app_db):
    record, key = app_db.api_keys.create_key("ws-a", [ApiScope.WRITE, ApiScope.READ, ApiScope.READ], name="web")
    assert api_keys.KEY_RE.match(key) and key.startswith(record.prefix + "_")
    assert record.workspace_id == "ws-a" and record.scopes == (ApiScope.READ, ApiScope.WRITE)
    assert record.name == "web" and record.created_at is not None and not record.revoked
    with app_db.db.engine.connect() as conn:
        stored = [tuple(row) for row in conn.execute(sa.select(api_keys_table))]
    assert key not in repr(stored) and record.key_sha256 == api_keys.key_digest(key)
    assert app_db.api_keys.verify(key) == record
    assert app_db.api_keys.verify(key[:-1] + ("0" if key[-1] != "0" else "1")) is None  # same prefix, wrong secret
    assert app_db.api_keys.verify("not-a-key") is None
    assert app_db.api_keys.find(record.prefix) == app_db.api_keys.find(record.id) == record


def test_keys_need_a_scope_and_a_plain_workspace_id(app_db):
    with pytest.raises(ValueError, match="scope"):
        app_db.api_keys.create_key("ws", [])
    for bad in ("", "a/b", "x" * 65, "ws a"):
        with pytest.raises(ValueError, match="workspace id"):
            app_db.api_keys.create_key(bad, [ApiScope.READ])
    assert app_db.api_keys.list_keys() == []


def test_list_revoke_and_any_active(app_db):
    assert not app_db.api_keys.any_active()
    first, _ = app_db.api_keys.create_key("ws-a", list(ApiScope))
    second, key = app_db.api_keys.create_key("ws-b", [ApiScope.STORAGE])
    assert [k.id for k in app_db.api_keys.list_keys()] == [first.id, second.id]
    assert [k.id for k in app_db.api_keys.list_keys(workspace_id="ws-b")] == [second.id]
    assert app_db.api_keys.any_active()
    revoked = app_db.api_keys.revoke(second.prefix)
    assert revoked is not None and revoked.revoked and app_db.api_keys.verify(key).revoked
    again = app_db.api_keys.revoke(second.id)  # stays revoked at its first time
    assert again.revoked_at == revoked.revoked_at
    assert app_db.api_keys.revoke("zck_000000000000") is None
    app_db.api_keys.revoke(first.id)
    assert not app_db.api_keys.any_active()


def test_touch_writes_at_most_once_a_minute(app_db):
    record, _ = app_db.api_keys.create_key("ws", [ApiScope.READ])
    now = utcnow()
    assert app_db.api_keys.touch(record.id, now=now)
    assert not app_db.api_keys.touch(record.id, now=now + timedelta(seconds=30))
    assert app_db.api_keys.touch(record.id, now=now + timedelta(seconds=61))
    touched = app_db.api_keys.find(record.id).last_used_at
    assert abs(touched - (now + timedelta(seconds=61))) < timedelta(seconds=1)
