"""One log line format for every process: `zencourt serve`, `zencourt webhooks ...`, the code
server, run workers (dagster.yaml's `python_logs.dagster_handler_config` uses `StderrHandler`
and `run_formatter`) and any other CLI.

A line is one JSON object:

    {"ts": "2026-01-02T03:04:05.678Z", "level": "info", "logger": "zencourt_pipeline.x",
     "msg": "...", "role": "service", "pid": 123, ...extra fields}

* `role`: the process role given to `configure_logging(role)`, else `ZENCOURT_PROCESS_ROLE`,
  else guessed from the command line (`run-worker`, `code-server`, `daemon`, `webserver`,
  `cli`).
* extra fields: whatever the call passed as `extra=` (`batchId`, `jobId`, ...), the fields of an
  enclosing `log_context(...)`, and inside a Dagster run `runId`, `jobName`, `stepKey` and
  `eventType` (the Dagster event, e.g. `STEP_START`).
* `exc`: the formatted traceback, when there is one.

Every value of `Settings.secret_values()` is replaced by `[REDACTED]`, in any field.

`ZENCOURT_LOG_FORMAT=text` gives one human-readable line per record instead (same fields);
unset, the format is JSON unless the stream is a terminal. Every variable is read through
`Settings` (`settings` passed in, else `environment_settings()`).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import IO, Any

from zencourt_pipeline.config import Settings

REDACTED = "[REDACTED]"
PACKAGE_LOGGER = "zencourt_pipeline"

_LOG_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "color_message",  # uvicorn: the message again, with ANSI colours
    "dagster_meta",  # Dagster's record metadata: mapped to runId/jobName/stepKey/eventType
}
_context: ContextVar[dict[str, Any]] = ContextVar("zencourt_log_context", default={})  # noqa: B039 - never mutated
_role: str | None = None


def log_level(name: str | None) -> int:
    return _LOG_LEVELS.get((name or "info").strip().lower(), logging.INFO)


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Fields added to every record logged inside the block (this thread / task)."""
    token = _context.set({**_context.get(), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


def environment_settings() -> Settings:
    """`Settings.from_env()` with every invalid variable at its default: logging must work with a
    broken configuration too."""
    try:
        return Settings.from_env(strict=False)
    except Exception:  # noqa: BLE001 - e.g. an invalid setting outside the fields' own checks
        return Settings()


def process_role(settings: Settings | None = None) -> str:
    """The role named by `configure_logging`, `ZENCOURT_PROCESS_ROLE`, or the command line."""
    return _role or _configured_role(settings if settings is not None else environment_settings())


def _configured_role(settings: Settings) -> str:
    if settings.process_role:
        return settings.process_role
    argv = " ".join(os.path.basename(part) for part in sys.argv[:4])
    if "execute_run" in argv or "execute_step" in argv or "resume_run" in argv:
        return "run-worker"
    for marker, role in (
        ("dagster-daemon", "daemon"),
        ("dagster-webserver", "webserver"),
        ("code-server", "code-server"),
        ("grpc", "code-server"),
        ("dagster", "dagster"),
        ("zencourt", "cli"),
    ):
        if marker in argv:
            return role
    return "python"


def environment_secrets() -> list[str]:
    """`environment_settings().secret_values()`: the secrets of the environment's valid variables."""
    return environment_settings().secret_values()


class _Redactor:
    def __init__(self, secrets: Sequence[str] | None):
        forms: set[str] = set()
        for secret in environment_secrets() if secrets is None else secrets:
            if secret:
                forms.add(secret)
                forms.add(json.dumps(secret)[1:-1])  # as it appears inside a JSON string
        # longest first, so a secret containing another is replaced whole
        self._secrets = sorted(forms, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text


def record_fields(record: logging.LogRecord, role: str | None = None) -> dict[str, Any]:
    """The fields of one line, in order (without the traceback)."""
    meta = getattr(record, "dagster_meta", None)
    message = record.getMessage()
    if isinstance(meta, dict) and meta.get("orig_message") is not None:
        message = meta["orig_message"]  # Dagster's own "job - run - step - msg" string, unpacked
    data: dict[str, Any] = {
        "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "level": record.levelname.lower(),
        "logger": record.name,
        "msg": message,
        "role": role or process_role(),
        "pid": record.process or os.getpid(),
    }
    if isinstance(meta, dict):
        event = meta.get("dagster_event")
        for key, value in (
            ("runId", meta.get("run_id")),
            ("jobName", meta.get("job_name")),
            ("stepKey", meta.get("step_key")),
            ("eventType", getattr(getattr(event, "event_type", None), "value", None)),
        ):
            if value is not None:
                data[key] = value
        tags = meta.get("job_tags") or {}
        if tags.get("zencourt/batch_id"):
            data.setdefault("batchId", tags["zencourt/batch_id"])
    for key, value in _context.get().items():
        data.setdefault(key, value)
    for key, value in record.__dict__.items():
        if key not in _RECORD_FIELDS and not key.startswith("_") and key not in data:
            data[key] = value
    return data


class JsonFormatter(logging.Formatter):
    """One JSON object per line; every secret value is replaced by `[REDACTED]`.

    `secrets=None` reads them from the environment (for Dagster processes, where the formatter
    is built by Dagster); `role=None` uses `process_role()` (the environment read once, here).
    """

    def __init__(self, secrets: Sequence[str] | None = (), role: str | None = None):
        super().__init__()
        self._redactor = _Redactor(secrets)
        self.role = role
        self._env_role = None if role else _configured_role(environment_settings())

    def _line_role(self) -> str:
        return self.role or _role or self._env_role or "python"

    def redact(self, text: str) -> str:
        return self._redactor.redact(text)

    def format(self, record: logging.LogRecord) -> str:
        data = record_fields(record, self._line_role())
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            data["exc"] = record.exc_text
        return self.redact(json.dumps(data, default=str))


class TextFormatter(JsonFormatter):
    """`ts level role[pid] logger: msg key=value ...`, redacted like the JSON lines."""

    def format(self, record: logging.LogRecord) -> str:
        data = record_fields(record, self._line_role())
        head = f"{data.pop('ts')} {data.pop('level').upper():<7} {data.pop('role')}[{data.pop('pid')}] "
        head += f"{data.pop('logger')}: {data.pop('msg')}"
        extras = " ".join(f"{key}={value}" for key, value in data.items())
        text = f"{head} {extras}" if extras else head
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return self.redact(text)


def log_format(stream: IO[str] | None = None, value: str | None = None) -> str:
    """`json` or `text`: `value` (`Settings.log_format`, ZENCOURT_LOG_FORMAT), else text on a
    terminal, json otherwise."""
    chosen = (value or "").strip().lower()
    if chosen in ("json", "text"):
        return chosen
    if chosen:
        raise ValueError(f"ZENCOURT_LOG_FORMAT must be 'json' or 'text', not {chosen!r}")
    isatty = getattr(stream or sys.stderr, "isatty", None)
    return "text" if callable(isatty) and isatty() else "json"


def make_formatter(
    fmt: str, secrets: Sequence[str] | None = None, role: str | None = None
) -> logging.Formatter:
    return (TextFormatter if fmt == "text" else JsonFormatter)(secrets, role)


def configure_logging(
    role: str,
    settings: Any = None,
    *,
    stream: IO[str] | None = None,
    fmt: str | None = None,
    level: str | None = None,
) -> logging.Handler:
    """Route all logging of this process through one handler on the root logger.

    `role` names the process in every line; the level is `level`, else `settings.log_level`
    (`LOG_LEVEL`), the format `fmt`, else `settings.log_format`; secrets are
    `settings.secret_values()`. `settings=None`: `environment_settings()`. Replaces a handler
    installed by an earlier call (so it can be called again, e.g. in tests). Returns the handler.
    """
    global _role
    _role = role
    settings = settings if settings is not None else environment_settings()
    level = level or settings.log_level
    secrets = settings.secret_values()
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_zencourt_json", False):
            root.removeHandler(handler)
    handler = _stream_handler(stream)
    handler.setFormatter(make_formatter(log_format(stream, fmt or settings.log_format), secrets, role))
    handler._zencourt_json = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(log_level(level))
    logging.captureWarnings(True)  # Python warnings become lines of the same format
    # uvicorn's loggers propagate to the root handler; its access log is replaced by ours.
    for name in ("uvicorn", "uvicorn.error"):
        uv = logging.getLogger(name)
        uv.handlers.clear()
        uv.propagate = True
    logging.getLogger("uvicorn.access").disabled = True
    # httpx logs full request URLs at INFO: keep third-party clients quiet.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(max(logging.WARNING, log_level(level)))
    return handler


class StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is at the time (it may be replaced after set-up)."""

    def __init__(self) -> None:
        logging.Handler.__init__(self)

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def _stream_handler(stream: IO[str] | None) -> logging.StreamHandler:
    return logging.StreamHandler(stream) if stream is not None else StderrHandler()


class _NotElsewhere(logging.Filter):
    """Passes a package record only when nothing else prints it: no root handler of
    `configure_logging`, and no Dagster run capturing it (the run's console logger prints it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if hasattr(record, "dagster_meta"):
            return False
        if any(getattr(h, "_zencourt_json", False) for h in logging.getLogger().handlers):
            return False
        logger: logging.Logger | None = logging.getLogger(record.name)
        while logger is not None:
            if any(type(h).__name__ == "DagsterLogHandler" for h in logger.handlers):
                return False
            logger = logger.parent if logger.propagate else None
        return True


def run_formatter() -> logging.Formatter:
    """The formatter of dagster.yaml's `python_logs.dagster_handler_config` handler: every
    record of a run (Dagster's events and the managed package loggers), role `run-worker`."""
    settings = environment_settings()
    return make_formatter(log_format(sys.stderr, settings.log_format), settings.secret_values(), "run-worker")


def install_package_handler(stream: IO[str] | None = None, settings: Settings | None = None) -> logging.Handler:
    """For processes whose logging Dagster owns (code server, run workers): the package's own
    records (`zencourt_pipeline.*`) as our lines on stderr, once each. Idempotent."""
    settings = settings if settings is not None else environment_settings()
    package = logging.getLogger(PACKAGE_LOGGER)
    for handler in package.handlers:
        if getattr(handler, "_zencourt_package", False):
            return handler
    handler = _stream_handler(stream)
    handler.setFormatter(make_formatter(log_format(stream, settings.log_format), settings.secret_values()))
    handler.addFilter(_NotElsewhere())
    handler._zencourt_package = True  # type: ignore[attr-defined]
    package.addHandler(handler)
    if package.level == logging.NOTSET:
        package.setLevel(log_level(settings.log_level))
    return handler
