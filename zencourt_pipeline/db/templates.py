"""A workspace's own composition templates (`workspace_templates`, migration 0010).

`put_template` validates the JSON as a `media.templates.Template` before it writes it (unknown
merge fields, colours, transitions, files that are not bundled: refused, nothing written), under a
name that is not a bundled template's; writing a name again replaces it. `resolve_template` is
what a batch's `template` names: a bundled template, else its workspace's own.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError

from zencourt_pipeline.db.core import Db
from zencourt_pipeline.db.schema import workspace_templates
from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.media.errors import MediaError
from zencourt_pipeline.media.templates import Template, load_template, template_names

_t = workspace_templates.c


def validate_template(body: Mapping[str, Any] | str) -> Template:
    """The template `body` describes; MediaError(INVALID_INPUT) saying what is wrong otherwise."""
    try:
        data = json.loads(body) if isinstance(body, str) else dict(body)
        template = Template.model_validate(data)
    except (ValueError, TypeError) as exc:  # ValidationError is a ValueError
        detail = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        ) if isinstance(exc, ValidationError) else str(exc)  # fmt: skip
        raise MediaError(ErrorCode.INVALID_INPUT, f"invalid template: {detail}") from None
    if template.name in template_names():
        raise MediaError(ErrorCode.INVALID_INPUT, f"template name {template.name!r} is a bundled template's")
    return template


class TemplateRepository:
    """The workspaces' own templates (`workspace_templates`) and the template a batch uses."""

    def __init__(self, db: Db):
        self.db = db

    def put_template(self, workspace_id: str, body: Mapping[str, Any] | str) -> Template:
        """Validate `body` and store it as the workspace's template of its name (replacing one)."""
        template = validate_template(body)
        stored = template.model_dump_json(exclude_defaults=True)
        with self.db.transaction() as conn:
            conn.execute(sa.delete(workspace_templates).where(_t.workspace_id == workspace_id, _t.name == template.name))
            conn.execute(sa.insert(workspace_templates).values(workspace_id=workspace_id, name=template.name, body=stored))
        return template

    def workspace_template(self, workspace_id: str, name: str) -> Template | None:
        """The workspace's own template `name`, None when it has none of that name."""
        with self.db.engine.connect() as conn:
            body = conn.execute(
                sa.select(_t.body).where(_t.workspace_id == workspace_id, _t.name == name)
            ).scalar_one_or_none()
        return None if body is None else Template.model_validate_json(body)

    def workspace_template_names(self, workspace_id: str) -> list[str]:
        """The names of the workspace's own templates, sorted."""
        with self.db.engine.connect() as conn:
            return list(conn.execute(sa.select(_t.name).where(_t.workspace_id == workspace_id).order_by(_t.name)).scalars())

    def resolve_template(self, workspace_id: str | None, name: str | None) -> Template:
        """The template a batch names: bundled (None: default), else its workspace's own; MediaError
        (INVALID_INPUT) for a name neither knows."""
        if name is None or name in template_names() or workspace_id is None:
            return load_template(name)
        own = self.workspace_template(workspace_id, name)
        if own is None:
            known = [*template_names(), *self.workspace_template_names(workspace_id)]
            raise MediaError(ErrorCode.INVALID_INPUT, f"unknown template {name!r} (known: {', '.join(known)})")
        return own
