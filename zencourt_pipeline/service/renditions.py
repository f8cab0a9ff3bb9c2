"""The outputs of a batch as the status API shows them (docs/contract.md section 4): each rendition
from `video_gen_outputs` with playable URLs resolved at the read, as the batch's own `videoUrl`."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from zencourt_pipeline.db.outputs import Output, OutputStatus
from zencourt_pipeline.domain import OutputShape
from zencourt_pipeline.storage.urls import MediaUrls


class OutputResponse(BaseModel):
    """One output of the batch: its shape and size, the branded or MLS-unbranded cut, whether it is
    the primary one (the batch's `videoUrl`), its status and files."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    shape: OutputShape  # landscape (16:9) | vertical (9:16) | square (1:1) | portrait (4:5)
    width: int
    height: int
    branded: bool  # false: the MLS-unbranded cut (no agent or brokerage text, no logo)
    primary: bool  # the output `videoUrl` of the batch is
    status: OutputStatus  # completed | failed
    template: str | None
    video_url: str | None  # playable (https), refreshed at each read
    thumbnail_url: str | None
    video_uri: str | None  # the canonical stored URI
    thumbnail_uri: str | None
    urls_expire_at: str | None
    duration_seconds: float | None
    bytes: int | None
    # the size (`WxH`) of the clips it was made from: the providers generate about 720p, so a 1080p
    # output is scaled up from them (None: not made, or written before migration 0015)
    source_resolution: str | None
    error: str | None  # why a failed output could not be made

    @classmethod
    def from_record(cls, output: Output, urls: MediaUrls) -> OutputResponse:
        """A `video_gen_outputs` row with playable URLs."""
        return cls(
            shape=output.shape, width=output.width, height=output.height, branded=output.branded,
            primary=output.is_primary, status=output.status, template=output.template,
            **urls.fields(output.video_url, output.thumbnail_url),
            duration_seconds=output.duration_seconds, bytes=output.size_bytes,
            source_resolution=output.source_resolution, error=output.error,
        )  # fmt: skip
