"""The domain's types and rules, written once (issue 26): orientations, providers, storage
backends, clip durations, the batch and job rules (with `BatchRejected`, their refusal), and the
provider registry.

Intake (`pipeline/intake.py`), the HTTP models (`service/routes/batches.py`), the providers,
pricing (`providers/rates.py`), the resources and the canceller all read them from here. The
database columns stay text: a `StrEnum` member is its value (`Orientation.VERTICAL ==
"vertical"`), so rows, JSON answers and webhooks carry the same strings as before.

Bottom layer: imports nothing of the package but `errors` (pyproject's import-linter contract).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic.alias_generators import to_camel

from zencourt_pipeline.errors import CodedError, ErrorCode


class Orientation(StrEnum):
    """The frame of a batch's clips and video."""

    LANDSCAPE = "landscape"
    VERTICAL = "vertical"


class GenerationRatio(StrEnum):
    """The frames a provider generates at: Runway gen4_turbo's six `ratio` values (API 2024-11-06),
    each a 720p-class `width:height`. Kling on fal has no aspect input for image-to-video (its clip
    follows the photo), so the same ratio is reached there by cropping the photo to it first: one
    value names the generated frame whichever provider makes the clip."""

    LANDSCAPE = "1280:720"  # 16:9
    VERTICAL = "720:1280"  # 9:16
    LANDSCAPE_4_3 = "1104:832"  # ~4:3
    PORTRAIT_3_4 = "832:1104"  # ~3:4
    SQUARE = "960:960"  # 1:1
    WIDE = "1584:672"  # ~21:9

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        width, height = self.value.split(":")
        return int(width), int(height)


def generation_ratio(width: int, height: int) -> GenerationRatio:
    """The generation ratio nearest in aspect to a `width` x `height` frame (the batch's clip frame).

    Nearest on a log scale, so 2:1 is as far from 1:1 as 1:2 is; a frame of one of the six ratios
    maps to itself (1280x720 -> 1280:720, 1920x1080 -> 1280:720, 1080x1080 -> 960:960, 1080x1350 ->
    832:1104). ValueError for a frame without a positive width and height."""
    if not (isinstance(width, int) and isinstance(height, int)) or width <= 0 or height <= 0:
        raise ValueError(f"no generation ratio for a {width!r}x{height!r} frame")
    aspect = math.log(width / height)
    return min(GenerationRatio, key=lambda ratio: abs(math.log(ratio.size[0] / ratio.size[1]) - aspect))


class Provider(StrEnum):
    """A video generation provider (GENERATION_PROVIDERS names them)."""

    RUNWAY = "runway"
    FAL = "fal"
    LOCAL = "local"


class JobSource(StrEnum):
    """What a job starts from: a photo (a clip is generated from it) or a clip the web app already
    has (`video_gen_jobs.clip_url`: no provider task, nothing paid)."""

    PHOTO = "photo"
    CLIP = "clip"


class StorageBackend(StrEnum):
    """Where photos, clips and videos are stored (STORAGE_BACKEND)."""

    LOCAL = "local"
    B2 = "b2"


class Executor(StrEnum):
    """How a run executes its steps (ZENCOURT_EXECUTOR): in the run's own process, or on Celery
    workers (`zencourt worker --queue ...`) over a broker."""

    IN_PROCESS = "in_process"
    CELERY = "celery"


class WorkQueue(StrEnum):
    """The Celery queue a step goes to: `media` (normalize, compose: CPU-heavy, one or two per
    core) or `providers` (photos, submissions, downloads: waiting on the network, many per worker)."""

    MEDIA = "media"
    PROVIDERS = "providers"


class ApiScope(StrEnum):
    """What a workspace API key may do: read (GETs), write (create, generate, cancel), storage."""

    READ = "read"
    WRITE = "write"
    STORAGE = "storage"


def names(kind: type[StrEnum]) -> tuple[str, ...]:
    """The values of a `StrEnum`, in declaration order: `('landscape', 'vertical')`."""
    return tuple(member.value for member in kind)


# -- clip durations: what a job may ask for, and what the providers are sent -------------------------
CLIP_SECONDS_MIN = 2
CLIP_SECONDS_MAX = 10
CLIP_SECONDS_DEFAULT = 5


def clamp_clip_seconds(seconds: float) -> int:
    """`seconds` rounded into CLIP_SECONDS_MIN..CLIP_SECONDS_MAX (what a provider is asked for)."""
    return min(CLIP_SECONDS_MAX, max(CLIP_SECONDS_MIN, int(round(seconds))))


# -- batch and job rules (intake checks stored rows with them, the HTTP models request bodies) -------
ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
ID_RE = re.compile(ID_PATTERN)
MAX_PROMPT_CHARS = 1000
MAX_JOBS_PER_BATCH = 30

MAX_INSTRUCTIONS_CHARS = 500
# a given clip: the span it lasts in the video, and the longest source accepted (CLIP_TOO_LONG beyond)
GIVEN_CLIP_SECONDS_MIN = 1.0
GIVEN_CLIP_SECONDS_MAX = 30.0
GIVEN_CLIP_SOURCE_SECONDS_MAX = 600.0

EntityId = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
Instructions = Annotated[str, StringConstraints(min_length=1, max_length=MAX_INSTRUCTIONS_CHARS)]
Prompt = Annotated[str, StringConstraints(max_length=MAX_PROMPT_CHARS)]
ClipSeconds = Annotated[int, Field(ge=CLIP_SECONDS_MIN, le=CLIP_SECONDS_MAX)]


class BatchRejected(CodedError):
    """A batch refused before any download or provider call: its jobs and the batch fail with `code`."""


def batch_problem(batch_id: str, job_count: int, orientation: str) -> str | None:
    """Why a batch cannot be made (its id, job count or orientation), None when it can."""
    if not ID_RE.match(batch_id):
        return f"batch id {batch_id!r} must match [A-Za-z0-9_-]{{1,64}}"
    if not job_count:
        return "batch has no jobs"
    if job_count > MAX_JOBS_PER_BATCH:
        return f"batch has {job_count} jobs (at most {MAX_JOBS_PER_BATCH})"
    if orientation not in names(Orientation):
        return f"unknown orientation {orientation!r} (landscape or vertical)"
    return None


def job_problem(job_id: str, prompt: str | None, duration_seconds: float) -> str | None:
    """Why a job cannot be generated (its id, prompt length or duration), None when it can."""
    if not ID_RE.match(job_id):
        return f"job id {job_id!r} must match [A-Za-z0-9_-]{{1,64}}"
    if prompt is not None and len(prompt) > MAX_PROMPT_CHARS:
        return f"prompt has {len(prompt)} characters (at most {MAX_PROMPT_CHARS})"
    if not CLIP_SECONDS_MIN <= int(duration_seconds) <= CLIP_SECONDS_MAX:
        return f"duration_seconds {duration_seconds} is outside {CLIP_SECONDS_MIN}..{CLIP_SECONDS_MAX}"
    return None


def instructions_problem(instructions: str | None) -> str | None:
    """Why a batch's custom instructions cannot be used (too long, blank), None when they can."""
    if instructions is None:
        return None
    if not instructions.strip():
        return "instructions are blank"
    if len(instructions) > MAX_INSTRUCTIONS_CHARS:
        return f"instructions have {len(instructions)} characters (at most {MAX_INSTRUCTIONS_CHARS})"
    return None


def motion_prompt(base: str, instructions: str | None) -> str:
    """A job's motion prompt (its own, or the room's default) with the batch's instructions after it."""
    extra = (instructions or "").strip()
    if not extra:
        return base
    base = base.strip().rstrip(".")
    return f"{base}. {extra}" if base else extra


def prompt_problem(base: str, instructions: str | None) -> str | None:
    """Why the motion prompt with the batch's instructions would be too long for the providers."""
    size = len(motion_prompt(base, instructions))
    if size > MAX_PROMPT_CHARS:
        return f"the prompt with the batch's instructions has {size} characters (at most {MAX_PROMPT_CHARS})"
    return None


def given_clip_span(in_seconds: float | None, out_seconds: float | None, duration_seconds: float) -> float:
    """How long a given clip lasts in the video: out - in (out absent: in + duration_seconds)."""
    start = in_seconds or 0.0
    end = out_seconds if out_seconds is not None else start + float(duration_seconds)
    return round(end - start, 3)


def given_clip_problem(in_seconds: float | None, out_seconds: float | None, duration_seconds: float) -> str | None:
    """Why a given clip's in/out points cannot be used (negative, reversed, span out of bounds)."""
    start = in_seconds or 0.0
    if start < 0:
        return f"clip in point {start} s is negative"
    if out_seconds is not None and out_seconds <= start:
        return f"clip out point {out_seconds} s is not after its in point {start} s"
    span = given_clip_span(in_seconds, out_seconds, duration_seconds)
    if not GIVEN_CLIP_SECONDS_MIN <= span <= GIVEN_CLIP_SECONDS_MAX:
        return f"clip span {span:g} s is outside {GIVEN_CLIP_SECONDS_MIN:g}..{GIVEN_CLIP_SECONDS_MAX:g} s"
    return None


def focus_problem(x: float | None, y: float | None) -> str | None:
    """Why a job's focus point (0..1 of its clip's frame; None: the centre) cannot be used, None when it can."""
    for name, value in (("focus_x", x), ("focus_y", y)):
        if value is not None and not 0.0 <= value <= 1.0:
            return f"{name} {value} is outside 0..1"
    return None


# -- listing facts: the batch's data that templates merge into their text ({{price}}, ...) -----------
class ListingFacts(BaseModel):
    """`video_gen_batch.facts` (JSON; camelCase or snake_case keys): what a template's merge fields
    read. Every field is optional; an unknown one is an error."""

    model_config = ConfigDict(extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True)

    address: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    price: Annotated[float, Field(ge=0, le=1e12)] | Annotated[str, StringConstraints(min_length=1, max_length=40)] | None = None
    beds: Annotated[float, Field(ge=0, le=1000)] | None = None
    baths: Annotated[float, Field(ge=0, le=1000)] | None = None
    sqft: Annotated[int, Field(ge=0, le=100_000_000)] | None = None
    agent_name: Annotated[str, StringConstraints(min_length=1, max_length=120)] | None = None

    def to_json(self) -> str:
        """The stored form: snake_case keys, unset fields left out."""
        return self.model_dump_json(exclude_none=True)


def parse_facts(text: str | None) -> ListingFacts:
    """The facts of a stored `video_gen_batch.facts` (None: none); BatchRejected(INVALID_INPUT) naming
    the field otherwise."""
    if text is None or not text.strip():
        return ListingFacts()
    try:
        return ListingFacts.model_validate_json(text)
    except ValidationError as exc:
        where = ", ".join(".".join(["facts", *(str(p) for p in e["loc"])]) for e in exc.errors())
        raise BatchRejected(ErrorCode.INVALID_INPUT, f"invalid {where}: {exc.errors()[0]['msg']}") from None


def stored_facts(text: str | None) -> ListingFacts | None:
    """The stored facts as the status route shows them: None when there are none or they do not
    parse (intake fails such a batch and says why)."""
    try:
        return parse_facts(text) if text else None
    except BatchRejected:
        return None


# -- outputs: the renditions a batch asks for (issue 15 point 1) --------------------------------------
class OutputShape(StrEnum):
    """The frame of one output: 16:9, 9:16, 1:1 or 4:5. `landscape` and `vertical` are also the
    `Orientation`s of the generated clips; an output of another shape is reframed from them."""

    LANDSCAPE = "landscape"  # 16:9
    VERTICAL = "vertical"  # 9:16
    SQUARE = "square"  # 1:1
    PORTRAIT = "portrait"  # 4:5


# the sizes each shape may be rendered at, the first its default (1080p class; the 720p sizes of the
# single video before issue 15 stay available)
OUTPUT_SIZES: dict[OutputShape, tuple[tuple[int, int], ...]] = {
    OutputShape.LANDSCAPE: ((1920, 1080), (1280, 720)),
    OutputShape.VERTICAL: ((1080, 1920), (720, 1280)),
    OutputShape.SQUARE: ((1080, 1080),),
    OutputShape.PORTRAIT: ((1080, 1350),),
}
MAX_OUTPUTS = 16


class OutputSpec(BaseModel):
    """One output a batch asks for: its shape, its size (absent: the shape's default) and whether it
    is the branded cut (agent and brokerage texts, logo) or the MLS-unbranded one."""

    model_config = ConfigDict(extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True)

    shape: OutputShape
    width: int
    height: int
    branded: bool = True

    @model_validator(mode="before")
    @classmethod
    def _default_size(cls, data: object) -> object:
        if isinstance(data, dict) and data.get("width") is None and data.get("height") is None:
            sizes = OUTPUT_SIZES.get(data.get("shape"))  # type: ignore[call-overload]  # a StrEnum key matches its value
            width, height = sizes[0] if sizes else (0, 0)  # an unknown shape: only the shape is reported
            data = {**data, "width": width, "height": height}
        return data

    @model_validator(mode="after")
    def _known_size(self) -> OutputSpec:
        sizes = OUTPUT_SIZES[self.shape]
        if (self.width, self.height) not in sizes:
            known = ", ".join(f"{w}x{h}" for w, h in sizes)
            raise ValueError(f"a {self.shape} output is {known}, not {self.width}x{self.height}")
        return self

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return self.width, self.height

    @property
    def name(self) -> str:
        """`landscape-1920x1080-branded`: what the output's storage key and logs call it."""
        return f"{self.shape}-{self.width}x{self.height}-{'branded' if self.branded else 'unbranded'}"


DEFAULT_OUTPUTS: tuple[OutputSpec, ...] = tuple(
    OutputSpec(shape=shape, branded=branded) for shape in (OutputShape.LANDSCAPE, OutputShape.VERTICAL) for branded in (True, False)
)
_OUTPUT_LIST = TypeAdapter(list[OutputSpec])


def outputs_problem(specs: Sequence[OutputSpec]) -> str | None:
    """Why a set of outputs cannot be asked for (none, too many, one twice), None when it can."""
    if not specs:
        return "outputs must name at least one output"
    if len(specs) > MAX_OUTPUTS:
        return f"outputs names {len(specs)} outputs (at most {MAX_OUTPUTS})"
    seen = set()
    for spec in specs:
        if spec.name in seen:
            return f"outputs names {spec.name} twice"
        seen.add(spec.name)
    return None


def parse_outputs(text: str | None) -> tuple[OutputSpec, ...]:
    """The outputs a stored `video_gen_batch.outputs` asks for (None: `DEFAULT_OUTPUTS`);
    BatchRejected(INVALID_INPUT) naming what is wrong otherwise."""
    if text is None or not text.strip():
        return DEFAULT_OUTPUTS
    try:
        specs = tuple(_OUTPUT_LIST.validate_json(text))
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(["outputs", *(str(p) for p in error["loc"])])
        raise BatchRejected(ErrorCode.INVALID_INPUT, f"invalid {where}: {error['msg']}") from None
    problem = outputs_problem(specs)
    if problem:
        raise BatchRejected(ErrorCode.INVALID_INPUT, problem)
    return specs


def outputs_json(specs: Sequence[OutputSpec]) -> str:
    """The stored form of a set of outputs (camelCase keys, sizes written out)."""
    return _OUTPUT_LIST.dump_json(list(specs), by_alias=True).decode()


def primary_output(specs: Sequence[OutputSpec], shape: OutputShape, *, required: bool = False) -> tuple[OutputSpec, tuple[OutputSpec, ...]]:
    """The primary output (`video_gen_batch.video_url`) among `specs` and the outputs to render: the
    first branded output of `shape` (the batch's orientation), else the first of `shape`, else the
    first output; `required` (an operator's orientation override) adds a branded `shape` output at
    its default size, first, when none has that shape."""
    specs = tuple(specs)
    for wanted in (lambda s: s.shape == shape and s.branded, lambda s: s.shape == shape):
        found = next((s for s in specs if wanted(s)), None)
        if found is not None:
            return found, specs
    if required:
        added = OutputSpec(shape=shape)
        return added, (added, *specs)
    return specs[0], specs


# -- the provider registry ---------------------------------------------------------------------------
KLING_SECONDS = (5, 10)  # the durations fal's Kling takes (and bills)


def kling_seconds(seconds: float) -> int:
    """The Kling duration nearest to `seconds` (ties go to the shorter)."""
    return min(KLING_SECONDS, key=lambda allowed: (abs(allowed - seconds), allowed))


@dataclass(frozen=True)
class ProviderSpec:
    """One provider: its client class (`module:Class`, imported on use by
    `providers.chain.generator_class`), the Settings field of its base URL (the health probe;
    None = offline), the code of a cancel it could not do, and the seconds it bills for a job."""

    name: Provider
    client: str
    base_url_setting: str | None
    cancel_failed_code: ErrorCode
    billed_seconds: Callable[[float], float]


PROVIDERS: dict[Provider, ProviderSpec] = {
    spec.name: spec
    for spec in (
        ProviderSpec(
            Provider.RUNWAY, "zencourt_pipeline.providers.runway:RunwayGenerator", "runway_api_url",
            ErrorCode.RUNWAY_CANCEL_FAILED, lambda seconds: float(clamp_clip_seconds(seconds)),
        ),
        ProviderSpec(
            Provider.FAL, "zencourt_pipeline.providers.fal:FalGenerator", "fal_queue_url",
            ErrorCode.FAL_CANCEL_FAILED, lambda seconds: float(kling_seconds(seconds)),
        ),
        ProviderSpec(
            Provider.LOCAL, "zencourt_pipeline.providers.local:LocalGenerator", None,
            ErrorCode.GENERATION_FAILED, lambda seconds: max(0.0, seconds),
        ),
    )
}  # fmt: skip


def provider_spec(name: str) -> ProviderSpec | None:
    """The registry's entry of `name`, None for a name it does not know."""
    return PROVIDERS.get(name)  # type: ignore[call-overload]  # a StrEnum key matches its value
