"""A workspace's branding profile and a batch's override (db/branding.py, migration 0014) on SQLite
and PostgreSQL: validated on write (nothing written otherwise), replaced on a second write, and a
batch's override wins field by field over its workspace's profile."""

from __future__ import annotations

import base64
import io
import json

import pytest
import sqlalchemy as sa
from PIL import Image

from zencourt_pipeline.db import branding
from zencourt_pipeline.db.schema import workspace_branding
from zencourt_pipeline.media.errors import MediaError


def _png() -> str:
    buffer = io.BytesIO()
    Image.new("RGBA", (40, 20), (255, 0, 0, 255)).save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


PROFILE = {"agentName": "Jane Doe", "brokerage": "Acme Realty", "phone": "555-0100", "email": "jane@acme.example",
           "website": "acme.example", "primaryColor": "#0B4F4A"}  # fmt: skip


def _count(db) -> int:
    with db.db.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(workspace_branding)).scalar()


def test_migration_0014_downgrades_and_upgrades_again(app_db):
    from zencourt_pipeline.db.migrate import current_revision, downgrade, head_revision
    from zencourt_pipeline_tests.conftest import make_batch

    batch, jobs = make_batch("m13", branding='{"agent_name": "Sam Roe"}')
    app_db.batches.insert_batch(batch, jobs)
    assert app_db.batches.get_batch("m13").branding == '{"agent_name": "Sam Roe"}'
    app_db.branding.put_branding("ws-1", PROFILE)
    downgrade(app_db.db.engine, "0013")
    inspector = sa.inspect(app_db.db.engine)
    assert not inspector.has_table("workspace_branding")
    assert "branding" not in {c["name"] for c in inspector.get_columns("video_gen_batch")}
    app_db.db.upgrade()
    assert current_revision(app_db.db.engine) == head_revision() and app_db.batches.get_batch("m13").branding is None


def test_a_profile_is_validated_on_write_and_replaced_by_the_next(app_db):
    stored = app_db.branding.put_branding("ws-1", json.dumps({**PROFILE, "logo": _png()}))
    assert (stored.agent_name, stored.primary_color) == ("Jane Doe", "#0B4F4A") and stored.logo == _png()
    assert app_db.branding.workspace_branding_profile("ws-1") == stored
    assert app_db.branding.workspace_branding_profile("ws-2") is None
    bad = [
        ({**PROFILE, "email": "jane at acme"}, "email"),
        ({**PROFILE, "primaryColor": "green"}, "primaryColor|primary_color"),
        ({**PROFILE, "logo": base64.b64encode(b"GIF89a not a png").decode()}, "logo"),
        ({**PROFILE, "logo": "%%%"}, "logo"),
        ({**PROFILE, "slogan": "Best homes"}, "slogan"),
    ]
    for body, field in bad:
        with pytest.raises(MediaError, match=rf"invalid branding: ({field})"):
            app_db.branding.put_branding("ws-1", body)
    assert app_db.branding.workspace_branding_profile("ws-1") == stored and _count(app_db) == 1  # nothing written
    app_db.branding.put_branding("ws-1", {"agentName": "Sam Roe"})
    assert app_db.branding.workspace_branding_profile("ws-1").model_dump(exclude_none=True) == {"agent_name": "Sam Roe"}
    assert _count(app_db) == 1 and app_db.branding.delete_branding("ws-1") and _count(app_db) == 0


def test_a_batch_override_wins_over_the_workspace_profile_field_by_field(app_db):
    app_db.branding.put_branding("ws-1", {**PROFILE, "logo": _png()})
    override = json.dumps({"agentName": "Sam Roe", "phone": "555-0199"})
    merged = app_db.branding.batch_branding("ws-1", override)
    assert (merged.agent_name, merged.phone, merged.brokerage, merged.logo) == ("Sam Roe", "555-0199", "Acme Realty", _png())
    assert app_db.branding.batch_branding("ws-1", None).agent_name == "Jane Doe"
    assert app_db.branding.batch_branding("ws-2", override).model_dump(exclude_none=True) == {"agent_name": "Sam Roe", "phone": "555-0199"}
    assert app_db.branding.batch_branding(None, None) is None
    with pytest.raises(MediaError, match="invalid branding"):
        app_db.branding.batch_branding("ws-1", '{"phone": "call me"}')


def test_the_profile_is_applied_with_its_logo_written_to_a_file(tmp_path):
    profile = branding.validate_branding({**PROFILE, "logo": _png()})
    applied = profile.branding(tmp_path)
    assert applied.logo == tmp_path / "brand-logo.png" and applied.logo.read_bytes() == base64.b64decode(_png())
    assert applied.agent_name == "Jane Doe" and profile.model_copy(update={"logo": None}).branding(tmp_path).logo is None
