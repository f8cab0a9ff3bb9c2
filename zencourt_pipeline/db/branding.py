"""A workspace's branding profile (`workspace_branding`, migration 0014) and a batch's override of
it (`video_gen_batch.branding`).

`put_branding` validates the JSON as a `media.branding.BrandingProfile` before it writes it
(unknown fields, an email, phone or website that is not one, colours, a logo that is not a PNG or
JPEG of at most 512 KB: refused, nothing written); writing again replaces the profile.
`batch_branding` is what a batch's branded cuts show: the batch's override, field by field, over
its workspace's profile.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError

from zencourt_pipeline.db.core import Db
from zencourt_pipeline.db.schema import workspace_branding
from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.media.branding import BrandingProfile
from zencourt_pipeline.media.errors import MediaError

_b = workspace_branding.c


def validate_branding(body: Mapping[str, Any] | str) -> BrandingProfile:
    """The profile `body` describes (camelCase or snake_case keys); MediaError(INVALID_INPUT)
    saying what is wrong otherwise."""
    try:
        data = json.loads(body) if isinstance(body, str) else dict(body)
        return BrandingProfile.model_validate(data)
    except (ValueError, TypeError) as exc:  # ValidationError is a ValueError
        detail = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        ) if isinstance(exc, ValidationError) else str(exc)  # fmt: skip
        raise MediaError(ErrorCode.INVALID_INPUT, f"invalid branding: {detail}") from None


def stored(profile: BrandingProfile) -> str:
    """The stored JSON text of a profile (snake_case keys, unset fields left out)."""
    return profile.model_dump_json(exclude_none=True)


class BrandingRepository:
    """The workspaces' branding profiles (`workspace_branding`)."""

    def __init__(self, db: Db):
        self.db = db

    def put_branding(self, workspace_id: str, body: Mapping[str, Any] | str) -> BrandingProfile:
        """Validate `body` and store it as the workspace's profile (replacing one)."""
        profile = validate_branding(body)
        with self.db.transaction() as conn:
            conn.execute(sa.delete(workspace_branding).where(_b.workspace_id == workspace_id))
            conn.execute(sa.insert(workspace_branding).values(workspace_id=workspace_id, body=stored(profile)))
        return profile

    def workspace_branding_profile(self, workspace_id: str) -> BrandingProfile | None:
        """The workspace's profile, None when it has none."""
        with self.db.engine.connect() as conn:
            body = conn.execute(sa.select(_b.body).where(_b.workspace_id == workspace_id)).scalar_one_or_none()
        return None if body is None else BrandingProfile.model_validate_json(body)

    def delete_branding(self, workspace_id: str) -> bool:
        """Remove the workspace's profile; whether it had one."""
        with self.db.transaction() as conn:
            return conn.execute(sa.delete(workspace_branding).where(_b.workspace_id == workspace_id)).rowcount > 0

    def batch_branding(self, workspace_id: str | None, override: str | None) -> BrandingProfile | None:
        """What a batch's branded cuts show: its override (`video_gen_batch.branding`, JSON text) over
        its workspace's profile, field by field; None when neither exists. MediaError(INVALID_INPUT)
        for an override that is not a valid profile."""
        base = self.workspace_branding_profile(workspace_id) if workspace_id is not None else None
        mine = validate_branding(override) if override is not None and override.strip() else None
        if mine is None:
            return base
        return mine.over(base)  # type: ignore[return-value]
