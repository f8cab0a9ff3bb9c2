"""A workspace's own templates (db/templates.py, migration 0010) on SQLite and PostgreSQL: validated
on write, replaced by name, resolved for the workspace's batches only."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from zencourt_pipeline.db.schema import workspace_templates
from zencourt_pipeline.media.errors import MediaError
from zencourt_pipeline.media.layout import TextPosition, TextRole

OWN = {
    "name": "brand-a",
    "description": "Brand A: navy, the price at the lower right",
    "background_color": "#112244",
    "caption_position": "upper-left",
    "texts": [{"role": "lower_third", "text": "{{price}} · {{sqft}} sq ft", "position": "lower-right"}],
}


def _count(db) -> int:
    with db.db.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(workspace_templates)).scalar()


def test_migration_0010_downgrades_and_upgrades_again(app_db):
    from zencourt_pipeline.db.migrate import current_revision, downgrade, head_revision
    from zencourt_pipeline_tests.conftest import make_batch

    batch, jobs = make_batch("m10", facts='{"price": 1}')
    for job in jobs:
        job.update(caption="c", transition="fade")
    app_db.batches.insert_batch(batch, jobs)
    app_db.templates.put_template("ws-1", OWN)
    downgrade(app_db.db.engine, "0009")
    inspector = sa.inspect(app_db.db.engine)
    assert not inspector.has_table("workspace_templates")
    assert "facts" not in {c["name"] for c in inspector.get_columns("video_gen_batch")}
    assert not {"caption", "transition"} & {c["name"] for c in inspector.get_columns("video_gen_jobs")}
    app_db.db.upgrade()
    assert current_revision(app_db.db.engine) == head_revision() and app_db.batches.get_batch("m10").facts is None


def test_a_template_is_validated_stored_and_resolved_for_its_workspace(app_db):
    stored = app_db.templates.put_template("ws-1", json.dumps(OWN))
    assert stored.texts[0].role == TextRole.LOWER_THIRD and stored.caption_position == TextPosition.UPPER_LEFT
    assert app_db.templates.workspace_template("ws-1", "brand-a") == stored
    assert app_db.templates.resolve_template("ws-1", "brand-a") == stored
    assert app_db.templates.resolve_template("ws-1", None).name == "default"
    assert app_db.templates.resolve_template("ws-2", "showcase").name == "showcase"
    with pytest.raises(MediaError, match=r"unknown template 'brand-a'"):
        app_db.templates.resolve_template("ws-2", "brand-a")  # another workspace's
    # written again: replaced
    app_db.templates.put_template("ws-1", {**OWN, "background_color": "#000000"})
    assert app_db.templates.workspace_template("ws-1", "brand-a").background_color == "#000000"
    assert app_db.templates.workspace_template_names("ws-1") == ["brand-a"] and _count(app_db) == 1


BAD = [
    ({**OWN, "texts": [{"role": "outro", "text": "{{agent_phone}}", "position": "center-box"}]}, "unknown merge field {{agent_phone}}"),
    ({**OWN, "background_color": "navy"}, "colour must look like #RRGGBB"),
    ({**OWN, "transition": "spin"}, "unknown xfade transition 'spin'"),
    ({**OWN, "music": "../../etc/passwd"}, "bare file name"),
    ({**OWN, "name": "showcase"}, "bundled template's"),
    ({**OWN, "unknown": 1}, "unknown: Extra inputs are not permitted"),
    ("{not json", "invalid template"),
]


@pytest.mark.parametrize(("body", "message"), BAD)
def test_an_invalid_template_is_refused_and_nothing_is_written(app_db, body, message):
    with pytest.raises(MediaError) as err:
        app_db.templates.put_template("ws-1", body)
    assert err.value.code == "INVALID_INPUT" and message in err.value.message
    assert _count(app_db) == 0
