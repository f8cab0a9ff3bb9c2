"""The generator interface shared by Runway, fal (Kling) and the offline `local` generator.

A generator never touches the database. What it learns about a finished task reaches the
database through one path, a `CompletionSink` (`CompletionRepository.record_completion`), whether it was
a fal webhook, a Runway poll result or the local renderer finishing.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zencourt_pipeline.domain import GenerationRatio, Orientation, generation_ratio
from zencourt_pipeline.errors import CodedError, ErrorCode
from zencourt_pipeline.media.frames import ORIENTATION_SIZES


class TaskState(enum.StrEnum):
    PENDING = "pending"  # queued / throttled at the provider
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def terminal(self) -> bool:
        return self in (TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELED)


@dataclass(frozen=True)
class GenerationRequest:
    job_id: str
    batch_id: str
    photo_path: Path  # the prepared photo: EXIF-oriented RGB JPEG, bounded size
    prompt: str
    duration_seconds: int
    orientation: Orientation
    seed: int  # derived from the job id: reproducible runs
    room_name: str | None = None
    photo_https_url: str | None = None  # a public HTTPS URL of the photo, when storage has one
    ratio: GenerationRatio | None = None  # None: the ratio of the orientation's frame

    @property
    def generation_ratio(self) -> GenerationRatio:
        """The frame the clip is generated at: Runway's `ratio`, Kling's photo crop, the local
        render's size. The pipeline always sets it (`pipeline/generation.py:batch_generation_ratio`:
        the batch's clip frame, from its primary output); without it, the orientation's frame."""
        if self.ratio is not None:
            return GenerationRatio(self.ratio)
        return generation_ratio(*ORIENTATION_SIZES[Orientation(self.orientation)])

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the generated clip."""
        return self.generation_ratio.size


@dataclass(frozen=True)
class TaskRef:
    """What is persisted about a submitted task (generation_tasks.task_id / provider_meta)."""

    provider: str
    task_id: str
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SubmittedTask:
    ref: TaskRef
    cost_credits: float | None = None


@dataclass(frozen=True)
class TaskStatus:
    state: TaskState
    progress: float | None = None
    output_url: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    raw: dict[str, Any] | None = None
    cost_credits: float | None = None  # the provider's cost figure, when its answer carries one


@dataclass(frozen=True)
class Completion:
    provider: str
    task_id: str
    status: TaskState  # SUCCEEDED | FAILED | CANCELED
    source: str  # "webhook" | "poll" | "local"
    output_url: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    payload: Any = None


CompletionSink = Callable[[Completion], bool]


PROVIDER_ANSWER_LOST = ErrorCode.PROVIDER_ANSWER_LOST
OUTPUT_DOWNLOAD_FAILED = ErrorCode.OUTPUT_DOWNLOAD_FAILED


class GenerationError(CodedError):
    """A generation request failed.

    `fallback`: another provider may succeed (limits, outages, provider-internal failures).
    Not `fallback`: the input itself is the problem (safety, validation): fail the job.
    `ambiguous` (AnswerLost): the request may have created a paid task: never re-sent, never
    fallen back. `download_failed` (DownloadFailed): a paid output could not be fetched (yet):
    keep the task and download it again later, never generate it again.
    """

    ambiguous: bool = False
    download_failed: bool = False

    def __init__(self, code: ErrorCode | str, message: str, *, fallback: bool = False, retryable: bool = False):
        super().__init__(code, message)
        self.fallback = fallback
        self.retryable = retryable


class AnswerLost(GenerationError):
    """A create request reached the provider and its answer was lost (a read timeout, a dropped
    connection after the request was sent, a 5xx answer, a 2xx without a task id): the task may
    exist and be paid. Not fallback-eligible: another provider would be a second payment."""

    ambiguous = True

    def __init__(self, message: str, *, model: str | None = None):
        super().__init__(ErrorCode.PROVIDER_ANSWER_LOST, message, fallback=False, retryable=False)
        self.model = model


class DownloadFailed(GenerationError):
    """The output of a finished (paid) task could not be downloaded: expired URL, 5xx, timeout,
    truncated transfer. Not fallback-eligible: fetch a fresh URL and download it again.
    `downloads`: how many downloads (URLs tried) this failure stands for."""

    download_failed = True

    def __init__(self, message: str, *, code: ErrorCode = ErrorCode.OUTPUT_DOWNLOAD_FAILED, downloads: int = 1):
        super().__init__(code, message, fallback=False, retryable=True)
        self.downloads = downloads


class VideoGenerator(ABC):
    name: str
    poll_interval_seconds: float = 5.0

    @abstractmethod
    def submit(self, request: GenerationRequest) -> SubmittedTask:
        """Create one (paid) task. Must not retry in a way that can create a second task."""

    @abstractmethod
    def poll(self, ref: TaskRef) -> TaskStatus: ...

    @abstractmethod
    def cancel(self, ref: TaskRef) -> None:
        """Cancel a live task; unknown or finished tasks are not an error."""

    @abstractmethod
    def fetch_result(self, ref: TaskRef, dest: Path, output_url: str | None = None) -> Path:
        """Download the finished clip to `dest` (fetching fresh URLs if the given one expired)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        pass
