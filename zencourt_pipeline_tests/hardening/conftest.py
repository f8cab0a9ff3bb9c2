"""Shared pieces of the hardening tests: bad photos as bytes, and two whole stacks driven once
per session through the real sensors and runs:

* `photo_matrix`: one batch of every bad photo (served by a real local HTTP server) plus good
  ones, on the offline `local` generator (its renderer copies a canned clip: see `canned_render`);
* `provider_matrix`: one batch of scripted provider faults on the fake Runway and fal servers,
  fal's signed webhooks through our HTTP service, every secret set to a distinctive value and
  every log record of the run captured.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import random
import shutil
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import numpy as np
import pytest
from PIL import Image

from zencourt_pipeline.config import Settings
from zencourt_pipeline.db.database import AppDatabase
from zencourt_pipeline.definitions import build_definitions
from zencourt_pipeline.defs.resources import GeneratorsResource
from zencourt_pipeline.media import kenburns
from zencourt_pipeline.net.fetch import FetchPolicy
from zencourt_pipeline.providers.fal_webhook import FalWebhookVerifier
from zencourt_pipeline.service.app import create_app
from zencourt_pipeline_tests.fakes.fal import FakeFal, FalScript
from zencourt_pipeline_tests.fakes.runway import FakeRunway, RunwayScript
from zencourt_pipeline_tests.fakes.server import ServerThread, sample_mp4
from zencourt_pipeline_tests.net.server import LocalServer, Route

CLIP_SECONDS = 2
CROSSFADE = 0.5

# -------------------------------------------------------------------------------- photos


def _noisy(size: tuple[int, int], seed: int = 0) -> Image.Image:
    """A photo-like test image: coloured tiles (so camera motion shows) under noise."""
    w, h = size
    rng = np.random.default_rng(seed)
    tiles = rng.integers(30, 226, (h // 80 + 1, w // 80 + 1, 3)).astype(np.float32)
    pixels = np.repeat(np.repeat(tiles, 80, axis=0), 80, axis=1)[:h, :w]
    pixels = np.clip(pixels + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)
    return Image.fromarray(pixels)


def _save(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def good_jpeg(seed: int = 0) -> bytes:
    return _save(_noisy((960, 640), seed), "JPEG", quality=88)


def corrupt_jpeg() -> bytes:
    """A valid header and a scrambled entropy-coded segment."""
    data = good_jpeg(1)
    third = len(data) // 3
    return data[:third] + random.Random(5).randbytes(third) + data[-2:]


def truncated_png() -> bytes:
    data = _save(_noisy((400, 300), 2), "PNG")
    return data[: len(data) // 2]


def heic() -> bytes:
    return b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(4000)


def cmyk_jpeg() -> bytes:
    return _save(_noisy((960, 640), 3).convert("CMYK"), "JPEG", quality=90)


def png_16bit() -> bytes:
    grey = np.asarray(_noisy((960, 640), 5).convert("L"), dtype=np.float64)
    return _save(Image.fromarray((grey * 257).astype(np.uint16)), "PNG")


def png_alpha() -> bytes:
    rgba = _noisy((960, 640), 4).convert("RGBA")
    alpha = Image.new("L", rgba.size, 0)
    alpha.paste(255, (80, 80, 880, 560))
    rgba.putalpha(alpha)
    return _save(rgba, "PNG")


def one_pixel() -> bytes:
    return _save(Image.new("RGB", (1, 1), (200, 10, 10)), "PNG")


def decompression_bomb(width: int = 30000, height: int = 30000) -> bytes:
    """A few hundred bytes whose IHDR claims 900 megapixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def exif_rotated() -> bytes:
    """Stored 960x640 landscape with orientation 6: upright it is 640x960 portrait."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return _save(_noisy((960, 640), 6), "JPEG", quality=88, exif=exif.tobytes())


def animated_gif() -> bytes:
    frames = [_noisy((640, 480), seed).quantize(64) for seed in (10, 11, 12)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buf.getvalue()


SVG = b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="640" height="480"><rect width="640" height="480"/></svg>'
HTML = b"<!DOCTYPE html><html><head><title>Login</title></head><body>Please sign in</body></html>"


@dataclass(frozen=True)
class PhotoCase:
    """One job of the photo matrix: how its photo is served, and the job's expected end."""

    route: Route | None = None  # served at /<case>.jpg by the local server
    url: str | None = None  # or this URL (may use {base})
    status: str = "failed"
    code: str | None = None
    prompt: str | None = None


PHOTO_CASES: dict[str, PhotoCase] = {
    "good": PhotoCase(Route(body=good_jpeg()), status="completed"),
    "corrupt-jpeg": PhotoCase(Route(body=corrupt_jpeg()), code="INVALID_INPUT"),
    "truncated-png": PhotoCase(Route(body=truncated_png(), content_type="image/png"), code="INVALID_INPUT"),
    "heic": PhotoCase(Route(body=heic(), content_type="image/heic"), code="UNSUPPORTED_FORMAT"),
    "cmyk-jpeg": PhotoCase(Route(body=cmyk_jpeg()), status="completed"),
    "png-16bit": PhotoCase(Route(body=png_16bit(), content_type="image/png"), status="completed"),
    "png-alpha": PhotoCase(Route(body=png_alpha(), content_type="image/png"), status="completed"),
    "one-pixel": PhotoCase(Route(body=one_pixel(), content_type="image/png"), code="INVALID_INPUT"),
    "decompression-bomb": PhotoCase(Route(body=decompression_bomb(), content_type="image/png"), code="INVALID_INPUT"),
    "exif-rotated": PhotoCase(Route(body=exif_rotated()), status="completed"),
    "animated-gif": PhotoCase(Route(body=animated_gif(), content_type="image/gif"), status="completed"),
    "svg": PhotoCase(Route(body=SVG, content_type="image/svg+xml"), code="UNSUPPORTED_FORMAT"),
    "html-as-jpeg": PhotoCase(Route(body=HTML, content_type="image/jpeg"), code="UNSUPPORTED_FORMAT"),
    "http-404": PhotoCase(url="{base}/nowhere.jpg", code="STORAGE_DOWNLOAD_FAILED"),
    "http-500-then-200": PhotoCase(Route(body=good_jpeg(7), fail_first=[500]), status="completed"),
    "redirect-loop": PhotoCase(Route(location="/redirect-loop.jpg"), code="INVALID_INPUT"),
    "slow-server": PhotoCase(Route(body=good_jpeg(8), delay=30.0), code="STORAGE_DOWNLOAD_FAILED"),
    "oversized-body": PhotoCase(Route(body=b"\xff\xd8\xff\xe0" + bytes(5 * 1024 * 1024)), code="INVALID_INPUT"),
    "private-ip": PhotoCase(url="https://10.20.30.40/photo.jpg", code="INVALID_INPUT"),
    "metadata-ip": PhotoCase(url="https://169.254.169.254/latest/meta-data/iam/security-credentials/", code="INVALID_INPUT"),
    "file-url": PhotoCase(url="file:///etc/passwd", code="INVALID_INPUT"),
    "prompt-over-1000": PhotoCase(Route(body=good_jpeg(9)), code="INVALID_INPUT", prompt="slow pan " * 120),
}  # fmt: skip

# the limits the photo matrix runs with (GeneratorsResource.fetch_policy, patched)
PHOTO_MAX_BYTES = 3 * 1024 * 1024
PHOTO_TOTAL_SECONDS = 3.0


@dataclass
class Driven:
    """A batch driven to its end, and what the tests look at."""

    batch_id: str
    status: str
    db: AppDatabase
    storage: object
    instance: dg.DagsterInstance
    settings: Settings
    jobs: dict[str, dict] = field(default_factory=dict)  # case -> job row
    extra: dict = field(default_factory=dict)

    def outbox_events(self, job_id: str | None = None) -> list[str]:
        return [row.event for row in self.db.outbox.rows(self.batch_id) if job_id is None or row.job_id == job_id]


def drive(defs: dg.Definitions, instance: dg.DagsterInstance, batch_id: str, timeout: float = 240) -> str:
    from zencourt_pipeline.demo import drive_batch

    return drive_batch(defs, instance, batch_id, timeout=timeout, out=lambda *_: None, idle_sleep=0.2)


def canned_render(photo: Path, dest: Path, *, width: int, height: int, duration_s: float, **_kwargs):
    """The local generator's renderer, replaced by a copy of a canned clip of the right size:
    the matrix is about inputs, and a Ken Burns render per job would dominate its run time."""
    from zencourt_pipeline.media.ffmpeg import probe

    with Image.open(photo) as img:  # the prepared photo is still read: it must be a real JPEG
        img.verify()
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(sample_mp4(width, height, seconds=duration_s), dest)
    return probe(dest)


@pytest.fixture(scope="package")  # its patches must not outlive the hardening tests
def photo_matrix(tmp_path_factory) -> Iterator[Driven]:
    tmp = tmp_path_factory.mktemp("photo-matrix")
    settings = Settings(
        data_dir=tmp / "data",
        database_url=f"sqlite:///{tmp / 'app.db'}",
        generation_providers=["local"],
        media_allowed_private_hosts=["127.0.0.1"],
    )
    original = GeneratorsResource.fetch_policy

    def small_limits(self) -> FetchPolicy:
        return dataclasses.replace(
            original(self), max_bytes=PHOTO_MAX_BYTES, total_seconds=PHOTO_TOTAL_SECONDS, retry_base_delay=0.05
        )

    with LocalServer() as server, dg.instance_for_test() as instance, pytest.MonkeyPatch.context() as mp:
        mp.setattr(GeneratorsResource, "fetch_policy", small_limits)
        mp.setattr(kenburns, "render_ken_burns", canned_render)
        defs = build_definitions(settings)
        db = defs.resources["app_db"].get()
        db.db.upgrade()  # what start-up does on a fresh database (resources never migrate)
        storage = defs.resources["storage"].get()
        base = server.url("")
        jobs = []
        for index, (case, spec) in enumerate(PHOTO_CASES.items()):
            if spec.route is not None:
                server.routes[f"/{case}.jpg"] = spec.route
            url = spec.url.format(base=base) if spec.url else server.url(f"/{case}.jpg")
            jobs.append(
                {
                    "id": f"pm-{index:02d}",
                    "sort_order": index,
                    "room_name": case,
                    "image_url": url,
                    "prompt": spec.prompt,
                    "duration_seconds": CLIP_SECONDS,
                }
            )
        db.batches.insert_batch({"id": "photo-matrix", "listing_id": "L-photos", "title": "1 Matrix Way"}, jobs)
        status = drive(defs, instance, "photo-matrix")
        rows = {job.room_name: job for job in db.batches.get_jobs("photo-matrix")}
        yield Driven("photo-matrix", status, db, storage, instance, settings, rows, {"hits": dict(server.hits)})


# ------------------------------------------------------------------------------ providers

SECRETS = {
    "RUNWAY_API_KEY": "rw-SECRET-5f1e9c0d7b3a-runway",
    "FAL_KEY": "fal-id-8c2d:fal-SECRET-a94b17e0c3",
    "VIDEO_SERVER_API_KEY": "svc-SECRET-0b7e3d9a1c55",
    "VERCEL_WEBHOOK_SECRET": "whsec-SECRET-77aa21fe09d4",
    "B2_APPLICATION_KEY": "K005-SECRET-b2-e1d2c3b4a5f6",
}


@dataclass(frozen=True)
class ProviderCase:
    status: str
    code: str | None
    provider: str | None  # the provider that produced the clip (or last tried)
    runway: RunwayScript | None = None
    fal: FalScript | None = None


# Jobs are submitted in this order (the create faults below are consumed in request order).
PROVIDER_CASES: dict[str, ProviderCase] = {
    # the first Runway create answers 503: ambiguous (the task may exist and be paid), never
    # re-sent and never fallen back (issue 11 defect 4: it used to move to fal, a second payment);
    # the job fails PROVIDER_ANSWER_LOST, its task counted as possibly orphaned
    "503-past-retry-budget": ProviderCase("failed", "PROVIDER_ANSWER_LOST", "runway"),
    # the next two creates answer 429 (daily limit: nothing created), the third succeeds
    "429-storm-then-success": ProviderCase("completed", None, "runway"),
    "failed-safety": ProviderCase(
        "failed", "RUNWAY_SAFETY_REJECTED", "runway",
        runway=RunwayScript(outcome="fail", failure_code="SAFETY.INPUT.IMAGE", failure="flagged by moderation"),
    ),
    "failed-internal": ProviderCase(
        "completed", None, "fal", runway=RunwayScript(outcome="fail", failure_code="INTERNAL.BAD_OUTPUT.CODE01")
    ),
    "expired-output-url": ProviderCase("completed", None, "runway", runway=RunwayScript(expired_initially=1)),
    "truncated-mp4-output": ProviderCase("completed", None, "fal", runway=RunwayScript(output="truncated")),
    "wrong-size-output": ProviderCase("completed", None, "runway", runway=RunwayScript(output="wrong_size")),
    # fal's webhook arrives with a null payload and payload_error: the result is fetched from the queue
    "fal-null-payload": ProviderCase(
        "completed", None, "fal",
        runway=RunwayScript(outcome="fail", failure_code="INTERNAL.UNKNOWN"),
        fal=FalScript(webhook="payload_error"),
    ),
}  # fmt: skip
RUNWAY_CREATE_FAULTS = [503, 429, 429]


class CapturingHandler(logging.Handler):
    """Every record, formatted with its exception text, unredacted."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
            extras = {k: v for k, v in record.__dict__.items() if k not in _PLAIN_RECORD}
            self.lines.append(f"{text} {extras!r}" if extras else text)
        except Exception:  # noqa: BLE001 - never break the code under test
            self.lines.append(f"<unformattable record from {record.name}>")


_PLAIN_RECORD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


@pytest.fixture(scope="package")  # its patches must not outlive the hardening tests
def provider_matrix(tmp_path_factory) -> Iterator[Driven]:
    tmp = tmp_path_factory.mktemp("provider-matrix")
    capture = CapturingHandler()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(capture)
    root.setLevel(logging.DEBUG)
    # every logger at DEBUG whatever an earlier test's logging set-up left behind
    # (`configure_logging`, e.g. in test_cli, quiets httpx and httpcore to WARNING)
    quieted = {name: logging.getLogger(name).level for name in ("httpx", "httpcore")}
    for name in quieted:
        logging.getLogger(name).setLevel(logging.NOTSET)
    runway = FakeRunway(api_key=SECRETS["RUNWAY_API_KEY"], latency=0.05)
    fal = FakeFal(key=SECRETS["FAL_KEY"], latency=0.05)
    runway.start()
    fal.start()
    try:
        with pytest.MonkeyPatch.context() as mp, dg.instance_for_test() as instance:
            for name, value in SECRETS.items():
                mp.setenv(name, value)  # as in production: secrets reach Dagster as EnvVar names
            db_url = f"sqlite:///{tmp / 'app.db'}"
            db = AppDatabase.connect(db_url)
            db.db.upgrade()
            common = dict(
                data_dir=tmp / "data",
                database_url=db_url,
                video_server_api_key=SECRETS["VIDEO_SERVER_API_KEY"],
                vercel_webhook_secret=SECRETS["VERCEL_WEBHOOK_SECRET"],
                b2_application_key=SECRETS["B2_APPLICATION_KEY"],
                runway_api_key=SECRETS["RUNWAY_API_KEY"],
                fal_key=SECRETS["FAL_KEY"],
                fal_jwks_url=fal.jwks_url,
                log_level="debug",
            )
            service = ServerThread(
                create_app(Settings(**common), db=db, verifier=FalWebhookVerifier(fal.jwks_url))
            ).start()
            settings = Settings(
                **common,
                generation_providers=["runway", "fal"],
                runway_api_url=runway.url,
                fal_queue_url=fal.url,
                fal_webhook_url=service.url + "/webhooks/fal",
                vercel_api_url="http://127.0.0.1:9",  # replaced per test by a recorder
            )
            try:
                defs = build_definitions(settings)
                storage = defs.resources["storage"].get()
                from zencourt_pipeline_tests.defs.conftest import write_photo

                jobs = []
                for index, (case, spec) in enumerate(PROVIDER_CASES.items()):
                    key = f"uploads/provider-matrix/{index}.jpg"
                    storage.put_file(key, write_photo(tmp / f"{index}.jpg", seed=index))
                    prompt = f"slow pan, case {case}"
                    if spec.runway is not None:
                        runway.scripts.for_prompt(prompt, spec.runway)
                    if spec.fal is not None:
                        fal.scripts.for_prompt(prompt, spec.fal)
                    jobs.append(
                        {
                            "id": f"pv-{index:02d}",
                            "sort_order": index,
                            "room_name": case,
                            "image_url": storage.uri(key),
                            "prompt": prompt,
                            "duration_seconds": CLIP_SECONDS,
                        }
                    )
                runway.create_faults.extend(RUNWAY_CREATE_FAULTS)
                db.batches.insert_batch({"id": "provider-matrix", "listing_id": "L-prov", "title": "2 Fault Street"}, jobs)
                status = drive(defs, instance, "provider-matrix")
                rows = {job.room_name: job for job in db.batches.get_jobs("provider-matrix")}
                yield Driven(
                    "provider-matrix", status, db, storage, instance, settings, rows,
                    {"runway": runway, "fal": fal, "capture": capture, "service_url": service.url, "defs": defs},
                )  # fmt: skip
            finally:
                service.stop()
    finally:
        fal.stop()
        runway.stop()
        root.removeHandler(capture)
        root.setLevel(old_level)
        for name, level in quieted.items():
            logging.getLogger(name).setLevel(level)
