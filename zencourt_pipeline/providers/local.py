"""The offline `local` generator: smooth Ken Burns motion rendered from the photo.

It behaves like a provider that finishes instantly: `submit` renders the clip into its own
output folder and reports the completion through the same sink the real providers' webhooks
and polls use, so the completion path is exercised end to end without a network.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import unquote, urlparse

from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.media.errors import MediaError
from zencourt_pipeline.providers.base import (
    Completion,
    CompletionSink,
    GenerationError,
    GenerationRequest,
    SubmittedTask,
    TaskRef,
    TaskState,
    TaskStatus,
    VideoGenerator,
)


class LocalGenerator(VideoGenerator):
    name = "local"
    poll_interval_seconds = 0.0

    def __init__(self, output_dir: Path, sink: CompletionSink | None = None, fps: int = 30):
        self.output_dir = Path(output_dir)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.sink = sink
        self.fps = fps

    def _output(self, task_id: str) -> Path:
        return self.output_dir / f"{task_id}.mp4"

    def submit(self, request: GenerationRequest) -> SubmittedTask:
        from zencourt_pipeline.media.kenburns import choose_motion, render_ken_burns

        task_id = f"local-{request.job_id}-{request.seed % 100000:05d}"
        width, height = request.size
        output = self._output(task_id)
        try:
            render_ken_burns(
                request.photo_path,
                output,
                width=width,
                height=height,
                duration_s=float(request.duration_seconds),
                fps=self.fps,
                motion=choose_motion(request.seed, request.room_name),
            )
        except MediaError as exc:
            raise GenerationError(exc.code, exc.message, fallback=False) from exc
        if self.sink is not None:
            self.sink(
                Completion(
                    provider=self.name,
                    task_id=task_id,
                    status=TaskState.SUCCEEDED,
                    source="local",
                    output_url=output.as_uri(),
                )
            )
        return SubmittedTask(TaskRef(self.name, task_id), cost_credits=0.0)

    def poll(self, ref: TaskRef) -> TaskStatus:
        output = self._output(ref.task_id)
        if output.is_file():
            return TaskStatus(TaskState.SUCCEEDED, progress=1.0, output_url=output.as_uri())
        return TaskStatus(TaskState.FAILED, error_code=ErrorCode.LOCAL_OUTPUT_MISSING, error_message="no rendered clip")

    def cancel(self, ref: TaskRef) -> None:
        return None  # renders finish inside submit: nothing is ever in flight

    def _is_own_render(self, output_url: str, source: Path) -> bool:
        return urlparse(output_url).scheme == "file" and source.resolve().is_relative_to(self.output_dir.resolve())

    def fetch_result(self, ref: TaskRef, dest: Path, output_url: str | None = None) -> Path:
        source = Path(unquote(urlparse(output_url).path)) if output_url else self._output(ref.task_id)
        # Only this generator's own renders are ever copied (never an arbitrary file:// path).
        if output_url and not self._is_own_render(output_url, source):
            raise GenerationError(
                ErrorCode.LOCAL_OUTPUT_MISSING, "output URL is not a render of the local generator", fallback=False
            )
        if not source.is_file():
            raise GenerationError(ErrorCode.LOCAL_OUTPUT_MISSING, f"rendered clip {source.name} is missing", fallback=False)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, dest)
        return dest
