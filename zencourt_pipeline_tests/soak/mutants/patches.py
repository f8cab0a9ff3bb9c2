"""The mutants themselves: each a patch applied to one product module right after it is imported
(before anything imports names from it), in the soak's child processes only."""

from __future__ import annotations

import importlib.abc
import itertools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

Patch = Callable[[str, ModuleType], None]


def bite(name: str, detail: str) -> None:
    """Say that the mutant changed behaviour: on stderr and in the harness's bite log."""
    print(f"MUTANT {name} bit: {detail}", file=sys.stderr, flush=True)
    log = os.environ.get("ZENCOURT_SOAK_MUTANT_LOG")
    if log:
        with open(log, "a") as out:
            out.write(f"{name} pid={os.getpid()} {detail}\n")


def _state(suffix: str) -> Path:
    return Path(os.environ.get("ZENCOURT_SOAK_MUTANT_LOG", "/tmp/zencourt-mutant.log") + suffix)


# -- the six mutants -------------------------------------------------------------------------
def resend_ambiguous_create(name: str, http: ModuleType) -> None:
    original = http.HttpVideoGenerator._create

    def _create(self, url, **kwargs):
        try:
            return original(self, url, **kwargs)
        except Exception as exc:
            if not getattr(exc, "ambiguous", False):
                raise
            bite(name, f"{self.label} create answer lost ({exc}): sending it again")
            return original(self, url, **kwargs)

    http.HttpVideoGenerator._create = _create


def skip_provider_cancel(name: str, cancel: ModuleType) -> None:
    def cancel_tasks(liveness, chain, tasks):
        report = cancel.CancelReport()
        for task in tasks:
            bite(name, f"{task.provider} task {task.task_id} marked canceled, provider not called")
            liveness.mark_task_canceled(task.id)
            report.stopped.append(task)
        return report

    cancel.cancel_tasks = cancel_tasks


def drop_completions(name: str, completions: ModuleType) -> None:
    original = completions.CompletionRepository.record_completion
    calls = itertools.count(1)
    lost_file = _state(".lost")

    def record_completion(self, *, provider, task_id, **kwargs):
        key = f"{provider} {task_id}"
        lost = set(lost_file.read_text().splitlines()) if lost_file.exists() else set()
        if key in lost or next(calls) % 4 == 0:
            if key not in lost:
                with open(lost_file, "a") as out:
                    out.write(key + "\n")
            bite(name, f"completion of {key} acknowledged and dropped")
            return True
        return original(self, provider=provider, task_id=task_id, **kwargs)

    completions.CompletionRepository.record_completion = record_completion


def second_terminal_webhook(name: str, core: ModuleType) -> None:
    original = core.Db.emit

    def emit(self, conn, event, batch_id, *, job_id=None, **fields):
        original(self, conn, event, batch_id, job_id=job_id, **fields)
        if job_id is None and event in ("batch.completed", "batch.failed", "batch.canceled"):
            bite(name, f"second {event} for {batch_id}")
            original(self, conn, event, batch_id, job_id=job_id, **fields)

    core.Db.emit = emit


def fallback_after_download_failure(name: str, http: ModuleType) -> None:
    from zencourt_pipeline.errors import ErrorCode
    from zencourt_pipeline.providers.base import GenerationError

    original = http.HttpVideoGenerator.fetch_result

    def fetch_result(self, ref, dest, output_url=None):
        try:
            return original(self, ref, dest, output_url)
        except GenerationError as exc:
            if not exc.download_failed:
                raise
            bite(name, f"{ref.provider} task {ref.task_id}: download failed, falling back")
            raise GenerationError(ErrorCode.INVALID_OUTPUT, exc.message, fallback=True) from exc

    http.HttpVideoGenerator.fetch_result = fetch_result


def stuck_batch(name: str, batches: ModuleType) -> None:
    original = batches.BatchRepository.finish_batch
    chosen_file = _state(".stuck")

    def finish_batch(self, batch_id, status, **kwargs):
        try:  # the first batch any process finishes is the one that never ends
            fd = os.open(chosen_file, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            os.write(fd, batch_id.encode())
            os.close(fd)
        except FileExistsError:
            pass
        if chosen_file.read_text() == batch_id:
            bite(name, f"batch {batch_id} not moved to {status}")
            return False
        return original(self, batch_id, status, **kwargs)

    batches.BatchRepository.finish_batch = finish_batch


PATCHES: dict[str, tuple[str, Patch]] = {
    "resend_ambiguous_create": ("zencourt_pipeline.providers.http", resend_ambiguous_create),
    "skip_provider_cancel": ("zencourt_pipeline.pipeline.cancel", skip_provider_cancel),
    "drop_completions": ("zencourt_pipeline.db.completions", drop_completions),
    "second_terminal_webhook": ("zencourt_pipeline.db.core", second_terminal_webhook),
    "fallback_after_download_failure": ("zencourt_pipeline.providers.http", fallback_after_download_failure),
    "stuck_batch": ("zencourt_pipeline.db.batches", stuck_batch),
}


class _PatchAfterImport(importlib.abc.MetaPathFinder):
    """Finds `module` with the other finders and runs `patch` right after the module executed."""

    def __init__(self, name: str, module: str, patch: Patch):
        self.name, self.module, self.patch = name, module, patch

    def find_spec(self, fullname, path, target=None):
        if fullname != self.module:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        loader, name, patch = spec.loader, self.name, self.patch
        execute = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            execute(module)
            patch(name, module)

        loader.exec_module = exec_module
        return spec


def install(name: str) -> None:
    """Apply mutant `name` to its module when it is imported in this process."""
    module, patch = PATCHES[name]
    if module in sys.modules:  # already imported (not expected from sitecustomize)
        patch(name, sys.modules[module])
    else:
        sys.meta_path.insert(0, _PatchAfterImport(name, module, patch))
