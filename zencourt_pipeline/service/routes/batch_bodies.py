"""The request bodies of `POST /video/batches` and `POST /video/batches:bulk`, checked as intake
would check them (service/routes/batches.py creates the rows)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from zencourt_pipeline.domain import (
    CLIP_SECONDS_DEFAULT,
    DEFAULT_OUTPUTS,
    GIVEN_CLIP_SOURCE_SECONDS_MAX,
    MAX_JOBS_PER_BATCH,
    MAX_OUTPUTS,
    ClipSeconds,
    Instructions,
    ListingFacts,
    Orientation,
    OutputSpec,
    Prompt,
    given_clip_problem,
    given_clip_span,
    instructions_problem,
    outputs_problem,
    prompt_problem,
)
from zencourt_pipeline.media.branding import BrandingProfile
from zencourt_pipeline.media.transitions import TransitionKind
from zencourt_pipeline.net.fetch import check_callback_url
from zencourt_pipeline.net.policy import MAX_URL_LENGTH, FetchError, FetchPolicy, check_url
from zencourt_pipeline.service.routes.common import Id
from zencourt_pipeline.storage.base import Storage

if TYPE_CHECKING:
    from zencourt_pipeline.media.listing import ListingProblem
    from zencourt_pipeline.media.templates import Template

MAX_BULK_BATCHES = 100

Text255 = Annotated[str, StringConstraints(min_length=1, max_length=255)]


class CreateModel(BaseModel):
    # camelCase as the status route answers; an unknown (or snake_case) field is an error
    model_config = ConfigDict(alias_generator=to_camel, extra="forbid")


def _own_template(name: str, info: ValidationInfo, body_workspace: str | None) -> Template | None:
    """The workspace's own template `name`, through the context's `own_template(workspace_id, name)`
    (the workspace: the context's `workspace_id`, the key's, else the body's `workspaceId`)."""
    context = info.context or {}
    lookup = context.get("own_template")
    workspace = context.get("workspace_id") or body_workspace
    if lookup is None or workspace is None:
        return None
    from zencourt_pipeline.media.templates import template_names

    return None if name in template_names() else lookup(workspace, name)


def _photo_or_clip(schema: dict) -> None:
    """A job names a photo (`imageUrl`) or a given clip (`clipUrl`, then `imageUrl` may be left out)."""
    required = [name for name in schema.pop("required", []) if name != "imageUrl"]
    if required:
        schema["required"] = required
    schema["anyOf"] = [{"required": ["imageUrl"]}, {"required": ["clipUrl"]}]


Url = Annotated[str, StringConstraints(min_length=1, max_length=MAX_URL_LENGTH)]


def _fetchable(value: str | None, info: ValidationInfo) -> str | None:
    """A URL intake may fetch: a URI of the configured storage, or one the fetch policy allows
    (https; nothing is fetched here)."""
    if value is None:
        return None
    context = info.context or {}
    storage: Storage | None = context.get("storage")
    if storage is not None and storage.key_from_uri(value) is not None:
        return value
    try:
        check_url(value, context.get("policy") or FetchPolicy())
    except FetchError as exc:
        raise ValueError(exc.message) from None
    return value
ClipPoint = Annotated[float, Field(ge=0, le=GIVEN_CLIP_SOURCE_SECONDS_MAX)]


class JobCreate(CreateModel):
    model_config = ConfigDict(alias_generator=to_camel, extra="forbid", json_schema_extra=_photo_or_clip)

    id: Id | None = None  # generated when absent: `<batchId>-<index>`
    sort_order: Annotated[int, Field(ge=0, le=1_000_000)] | None = None  # default: the index
    room_name: Text255 | None = None
    image_url: Url  # a given clip's job may leave it out: then the clip's URL (the row's NOT NULL column)
    prompt: Prompt | None = None
    duration_seconds: ClipSeconds = CLIP_SECONDS_DEFAULT
    caption: Text255 | None = None  # over the clip ({{caption}}; merge fields allowed); null: the room name
    transition: TransitionKind | None = None  # into the next clip; null: the template's
    # a clip the web app already has (issue 14 point 5): no generation; stitched from in to out
    # (seconds; in default 0, out default in + durationSeconds or the clip's end when sooner)
    clip_url: Url | None = None
    clip_in_seconds: ClipPoint | None = None
    clip_out_seconds: ClipPoint | None = None

    # the point (0..1 of the clip's frame) a reframing crop keeps in view; null: the centre
    focus_x: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    focus_y: Annotated[float, Field(ge=0.0, le=1.0)] | None = None

    @property
    def focus(self) -> tuple[float, float] | None:
        """The focus point as `media.listing` takes it (None: the centre)."""
        if self.focus_x is None and self.focus_y is None:
            return None
        return (0.5 if self.focus_x is None else self.focus_x, 0.5 if self.focus_y is None else self.focus_y)

    @model_validator(mode="before")
    @classmethod
    def _clip_url_as_image_url(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("clipUrl") is not None and "imageUrl" not in data:
            data = {**data, "imageUrl": data["clipUrl"]}
        return data

    @field_validator("image_url", "clip_url")
    @classmethod
    def _fetchable(cls, value: str | None, info: ValidationInfo) -> str | None:
        return _fetchable(value, info)

    @model_validator(mode="after")
    def _clip_points(self) -> JobCreate:
        if self.clip_url is None:
            if self.clip_in_seconds is not None or self.clip_out_seconds is not None:
                raise ValueError("clipInSeconds and clipOutSeconds need a clipUrl")
            return self
        problem = given_clip_problem(self.clip_in_seconds, self.clip_out_seconds, self.duration_seconds)
        if problem:
            raise ValueError(problem.replace("clip in point", "clipInSeconds").replace("clip out point", "clipOutSeconds"))
        return self

    @property
    def seconds(self) -> float:
        """How long the job's clip lasts in the video (a given clip: its span)."""
        if self.clip_url is None:
            return float(self.duration_seconds)
        return given_clip_span(self.clip_in_seconds, self.clip_out_seconds, self.duration_seconds)


class BatchCreate(CreateModel):
    id: Id | None = None  # generated when absent
    listing_id: Text255
    workspace_id: Text255 | None = None
    orientation: Orientation = Orientation.LANDSCAPE
    template: Text255 | None = None  # a bundled template; null = default
    title: Annotated[str, StringConstraints(max_length=500)] | None = None
    jobs: Annotated[list[JobCreate], Field(min_length=1, max_length=MAX_JOBS_PER_BATCH)]
    facts: ListingFacts | None = None  # what the template's merge fields read ({{price}}, ...)
    instructions: Instructions | None = None  # added to every job's motion prompt (at most 500 characters)
    callback_url: Annotated[str, StringConstraints(min_length=1, max_length=MAX_URL_LENGTH)] | None = None
    # a voice-over (issue 14 point 4): an MP3, WAV, M4A or AAC file at an https URL or a storage URI,
    # fetched and checked at intake; whether it names the agent (null: it does: the MLS-unbranded cut leaves it out)
    narration_url: Url | None = None
    narration_identifies_agent: bool | None = None

    @field_validator("narration_url")
    @classmethod
    def _fetchable_narration(cls, value: str | None, info: ValidationInfo) -> str | None:
        return _fetchable(value, info)
    branding: BrandingProfile | None = None  # the batch's override of its workspace's branding profile, field by field

    @field_validator("instructions")
    @classmethod
    def _usable_instructions(cls, value: str | None) -> str | None:
        problem = instructions_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("callback_url")
    @classmethod
    def _safe_callback(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        try:
            return check_callback_url(value, (info.context or {}).get("policy") or FetchPolicy())
        except FetchError as exc:
            raise ValueError(exc.message) from None

    def prompt_problems(self) -> list[tuple[str, str]]:
        """(field, message) of each photo job whose motion prompt with the instructions is too long."""
        from zencourt_pipeline.providers.chain import default_prompt

        problems = []
        for i, job in enumerate(self.jobs):
            if job.clip_url is not None:
                continue  # a given clip is not generated: no prompt is sent
            problem = prompt_problem(job.prompt or default_prompt(job.room_name), self.instructions)
            if problem:
                problems.append((f"jobs.{i}.prompt", problem))
        return problems

    # the outputs to render (shape, size, branded); null: the default four (16:9 and 9:16, each branded and unbranded)
    outputs: Annotated[list[OutputSpec], Field(min_length=1, max_length=MAX_OUTPUTS)] | None = None

    @field_validator("outputs")
    @classmethod
    def _distinct_outputs(cls, outputs: list[OutputSpec] | None) -> list[OutputSpec] | None:
        problem = outputs_problem(outputs) if outputs is not None else None
        if problem:
            raise ValueError(problem)
        return outputs

    @field_validator("template")
    @classmethod
    def _known_template(cls, value: str | None, info: ValidationInfo) -> str | None:
        from zencourt_pipeline.media.templates import template_names

        if value is not None and value not in (known := template_names()) and _own_template(value, info, info.data.get("workspace_id")) is None:
            raise ValueError(f"unknown template (known: {', '.join(known)}, or the workspace's own)")
        return value

    @field_validator("jobs")
    @classmethod
    def _unique_job_ids(cls, jobs: list[JobCreate]) -> list[JobCreate]:
        seen: set[str] = set()
        for job in jobs:
            if job.id is not None:
                if job.id in seen:
                    raise ValueError(f"duplicate job id {job.id!r}")
                seen.add(job.id)
        return jobs

    def listing_problem(self, own_template: Template | None) -> ListingProblem | None:
        """The check intake makes (`media.listing`): merge fields known and filled, text that fits
        (`own_template`: the workspace's template the body names, None: a bundled one)."""
        from zencourt_pipeline.media.listing import ListingClip, listing_problem

        clips = [
            ListingClip(job.id or f"jobs[{i}]", job.seconds, job.room_name, job.caption, job.transition, job.focus)
            for i, job in enumerate(self.jobs)
        ]
        return listing_problem(
            template=own_template or self.template, orientation=self.orientation, title=self.title,
            facts=self.facts or ListingFacts(), clips=clips, outputs=self.outputs or DEFAULT_OUTPUTS,
        )  # fmt: skip


class BulkCreate(BaseModel):
    """`POST /video/batches:bulk`'s body (documentation: each batch is validated on its own)."""

    batches: Annotated[list[BatchCreate], Field(min_length=1, max_length=MAX_BULK_BATCHES)]
