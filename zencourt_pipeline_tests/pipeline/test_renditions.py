"""Renditions (issue 15 point 1): a batch asking for 16:9, 9:16, 1:1 and 4:5, branded and unbranded,
gets 8 files from the same clips, each the size and codecs asked for and passing every profile its
shape targets; each is a `video_gen_outputs` row, listed in the `batch.completed` webhook; the
primary one stays `video_gen_batch.video_url`; the unbranded cuts carry no text naming the agent, and
(issue 15 point 3) none of the branding the branded cuts show: the workspace's branding profile with
the batch's override (logo bug, end card, contact line), checked on the decoded frames."""

from __future__ import annotations

import base64
import io
import json
import subprocess

import numpy as np
from PIL import Image

from zencourt_pipeline.db.outputs import OutputStatus
from zencourt_pipeline.domain import OutputShape, OutputSpec, outputs_json
from zencourt_pipeline.media.ffmpeg import ffmpeg_exe, probe
from zencourt_pipeline.media.smart.derive import variant_spans
from zencourt_pipeline.media.timeline.assets import render_assets
from zencourt_pipeline.media.timeline.model import TextRole, Timeline
from zencourt_pipeline.pipeline.composition import compose_batch, output_rows
from zencourt_pipeline.pipeline.normalize import normalize_outputs
from zencourt_pipeline.pipeline.renditions import clips_resolution
from zencourt_pipeline.storage.local import LocalStorage
from zencourt_pipeline_tests.conftest import make_batch
from zencourt_pipeline_tests.fakes.server import sample_mp4

FACTS = {"address": "12 Oak Lane", "price": 1250000, "agentName": "Jane Doe"}
EIGHT = [OutputSpec(shape=shape, branded=branded) for shape in OutputShape for branded in (True, False)]


def _logo() -> str:
    """A base64 PNG logo of black and white stripes (unlike any picture it is drawn over)."""
    image = Image.new("RGBA", (400, 160), (255, 255, 255, 255))
    for y in range(0, 160, 40):
        image.paste((0, 0, 0, 255), (0, y, 400, y + 20))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


PROFILE = {"agentName": "Jane Doe", "brokerage": "Acme Realty", "phone": "555-0100", "email": "jane@acme.example",
           "website": "acme.example", "primaryColor": "#E8590C", "logo": _logo()}  # fmt: skip
OVERRIDE = {"phone": "555-0199"}  # the batch's: wins over the workspace's phone


def _composed(db, storage, tmp_path, batch_id: str, outputs: list[OutputSpec] | None, **fields):
    fields = {"template": "showcase", "title": "Charming home", "facts": json.dumps(FACTS), **fields}
    batch, jobs = make_batch(batch_id, n_jobs=2, outputs=outputs_json(outputs) if outputs is not None else None, **fields)
    db.batches.insert_batch(batch, jobs)
    db.batches.start_batch(batch_id)
    for job in (f"{batch_id}-0", f"{batch_id}-1"):
        storage.put_file(f"batches/{batch_id}/generated/{job}.mp4", sample_mp4(1280, 720), "video/mp4")
        db.batches.update_job(job, raw_clip_key=f"batches/{batch_id}/generated/{job}.mp4")
    work = tmp_path / "work"
    work.mkdir()
    normalize_outputs(db, storage, db.batches.get_batch(batch_id), db.batches.get_jobs(batch_id), work)
    return compose_batch(db, storage, db.batches.get_batch(batch_id), db.batches.get_jobs(batch_id), work)


def _boxes(path, frames: list[int], box: tuple[int, int, int, int]) -> np.ndarray:
    """The decoded frames `frames` (by number), cropped to box (x, y, w, h), as grey levels."""
    x, y, w, h = box
    pick = "+".join(f"eq(n\\,{f})" for f in frames)
    raw = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-i", str(path), "-vf", f"select='{pick}',crop={w}:{h}:{x}:{y}", "-fps_mode", "passthrough",
         "-f", "rawvideo", "-pix_fmt", "gray", "-"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    return np.frombuffer(raw, np.uint8).reshape(len(frames), h, w)


def _frame(path, at: float, width: int, height: int) -> np.ndarray:
    raw = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-ss", str(at), "-i", str(path), "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "gray", "-"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    return np.frombuffer(raw, np.uint8).reshape(height, width).astype(float)


def test_sixteen_nine_nine_sixteen_square_and_four_five_branded_and_unbranded_make_eight_checked_files(sqlite_db, tmp_path):
    storage = LocalStorage(tmp_path / "storage")
    sqlite_db.branding.put_branding("ws-brand", PROFILE)
    report = _composed(sqlite_db, storage, tmp_path, "r8", EIGHT, workspace_id="ws-brand", branding=json.dumps(OVERRIDE))
    assert report.status == "completed", report.error
    assert [r.spec for r in report.outputs][0] == EIGHT[0] and {r.spec for r in report.outputs} == set(EIGHT)
    for rendition in report.outputs:
        assert rendition.status == OutputStatus.COMPLETED, rendition.error
        info = probe(storage.path(storage.key_from_uri(rendition.video_uri)))
        assert (info.width, info.height) == rendition.spec.size
        assert (info.codec, info.video_profile, info.pix_fmt, info.audio_codec) == ("h264", "High", "yuv420p", "aac")
        failing = {name: problems for name, problems in rendition.platforms.items() if problems}
        assert "house" in rendition.platforms and not failing, (rendition.spec.name, failing)
        # a rendition's file name says what it is
        assert f"listing-{rendition.spec.name}-showcase.mp4" in rendition.video_uri
    batch = sqlite_db.batches.get_batch("r8")
    rows = sqlite_db.outputs.get_outputs("r8")
    assert batch.video_url == report.outputs[0].video_uri == rows[0].video_url and rows[0].is_primary
    assert [(r.spec, r.status) for r in rows] == [(r.spec, OutputStatus.COMPLETED) for r in report.outputs]
    assert all(r.thumbnail_url and r.size_bytes and abs(r.duration_seconds - report.duration_s) < 0.1 for r in rows)
    [completed] = [json.loads(e.body) for e in sqlite_db.outbox.rows("r8") if json.loads(e.body)["event"] == "batch.completed"]
    assert [o["videoUri"] for o in completed["outputs"]] == [r.video_url for r in rows]

    # the unbranded cuts: the same video without the agent's card
    for rendition in report.outputs:
        stem = rendition.video_key.removesuffix(".mp4")
        text = storage.get_file(stem + ".timeline.json", tmp_path / "t.json").read_text(encoding="utf-8")
        timeline = Timeline.from_json(text)
        outro = [t for t in timeline.texts if t.role == TextRole.OUTRO]
        assert ("Jane Doe" in text) is rendition.spec.branded and bool(outro) is rendition.spec.branded
    by_name = {r.spec.name: r for r in report.outputs}
    branded, unbranded = by_name["square-1080x1080-branded"], by_name["square-1080x1080-unbranded"]
    card = next(t for t in branded.result.timeline.texts if t.role == TextRole.OUTRO)
    during = (card.start_frame + card.duration_frames // 2) / 30
    a, b = (_frame(r.result.path, during, 1080, 1080) for r in (branded, unbranded))
    assert np.abs(a - b).mean() > 1.0  # the agent card is drawn in the branded cut only
    a, b = (_frame(r.result.path, 5.0, 1080, 1080) for r in (branded, unbranded))
    assert np.abs(a - b).mean() < 1.0  # elsewhere the two cuts are the same picture
    _no_branding_in_the_unbranded_cuts(report, tmp_path)


def _no_branding_in_the_unbranded_cuts(report, tmp_path) -> None:
    """Each unbranded cut against its branded twin, on the decoded frames: where the branded cut
    draws the logo bug, the logo over the end card and the contact line (each element's box, from
    its rendered overlay), every frame of the unbranded cut shows something else; everywhere else
    the unbranded cut is the branded one's pictures (copied GOPs: no branding is there to copy)."""
    by_name = {r.spec.name: r for r in report.outputs}
    for shape in OutputShape:
        branded = next(r for r in report.outputs if r.spec.shape == shape and r.spec.branded)
        unbranded = by_name[branded.spec.name.replace("-branded", "-unbranded")]
        assert unbranded.result.strategy == "variant", unbranded.result.strategy_note  # made from the branded file
        tl = branded.result.timeline
        contact = [t for t in tl.texts if t.role == TextRole.CONTACT]
        assert [t.text for t in contact] == ["555-0199  ·  jane@acme.example  ·  acme.example"]  # the batch's phone
        assert len(tl.images) == 2 and tl.end_card.title == "Jane Doe"  # the bug and the logo over the card
        assets = render_assets(tl, tmp_path / f"assets-{shape}")
        layers = dict(zip([*tl.texts, *tl.images], assets.layers, strict=True))
        for element in [*tl.images, *contact]:
            layer = layers[element]
            with Image.open(layer.image) as png:
                box = (layer.x, layer.y, *png.size)
            end = min(element.end_frame - element.fade_frames, tl.total_frames - tl.fade_out_frames)  # before black
            frames = list(range(element.start_frame + element.fade_frames, end, 4))
            a, b = (_boxes(r.result.path, frames, box).astype(float) for r in (branded, unbranded))
            differs = np.abs(a - b).mean(axis=(1, 2))
            assert differs.min() > 20, (shape, element.role, differs.min())  # not a frame shows it
        windows = variant_spans(tl, unbranded.result.timeline)
        outside = [f for f in range(0, tl.total_frames, 15) if not any(lo - 30 <= f < hi + 30 for lo, hi in windows)]
        full = (0, 0, *branded.spec.size)
        assert outside and np.array_equal(*(_boxes(r.result.path, outside, full) for r in (branded, unbranded)))


def test_the_default_request_is_four_outputs_and_an_operator_orientation_picks_the_primary(sqlite_db, tmp_path):
    storage = LocalStorage(tmp_path / "storage")
    # the default template without an agent: nothing brands the video, the unbranded cuts are copies
    report = _composed(sqlite_db, storage, tmp_path, "r4", None, orientation="vertical", template="default", facts=None)
    assert report.status == "completed", report.error
    assert [(r.spec.name, r.copied) for r in report.outputs] == [
        ("vertical-1080x1920-branded", False), ("landscape-1920x1080-branded", False),
        ("landscape-1920x1080-unbranded", True), ("vertical-1080x1920-unbranded", True),
    ]  # fmt: skip
    assert (report.width, report.height) == (1080, 1920)
    # the 1080p outputs are made from the 720p-class normalized clips, which every record of them says
    rows = sqlite_db.outputs.get_outputs("r4")
    assert len(rows) == 4 and [r.source_resolution for r in rows] == ["720x1280"] * 4
    assert [r.source_resolution for r in report.outputs] == ["720x1280"] * 4
    [completed] = [json.loads(e.body) for e in sqlite_db.outbox.rows("r4") if json.loads(e.body)["event"] == "batch.completed"]
    assert [(o["width"], o["sourceResolution"]) for o in completed["outputs"]] == [(1080, "720x1280"), (1920, "720x1280"),
                                                                                   (1920, "720x1280"), (1080, "720x1280")]
    assert [row["source_resolution"] for row in output_rows(report.outputs)] == ["720x1280"] * 4
    files = {r.spec.name: storage.path(storage.key_from_uri(r.video_uri)).read_bytes() for r in report.outputs}
    assert files["vertical-1080x1920-unbranded"] == files["vertical-1080x1920-branded"]
    assert all(not problems for r in report.outputs for problems in r.platforms.values())


def test_an_output_that_cannot_be_made_is_recorded_failed_and_the_others_are_published(sqlite_db, tmp_path):
    storage = LocalStorage(tmp_path / "storage")
    outputs = [OutputSpec(shape=OutputShape.LANDSCAPE, width=1280, height=720), OutputSpec(shape=OutputShape.SQUARE)]
    # a title that fits 16:9 but not 1:1 (intake would have refused it; composition does not stop for it)
    report = _composed(sqlite_db, storage, tmp_path, "rf", outputs, title="W" * 28)
    assert report.status == "completed", report.error
    landscape, square = report.outputs
    assert landscape.status == OutputStatus.COMPLETED and landscape.primary
    assert square.status == OutputStatus.FAILED and "does not fit the 1080x1080 frame" in square.error
    rows = sqlite_db.outputs.get_outputs("rf")
    assert [(r.shape, r.status, r.video_url is None) for r in rows] == [
        (OutputShape.LANDSCAPE, OutputStatus.COMPLETED, False), (OutputShape.SQUARE, OutputStatus.FAILED, True),
    ]  # fmt: skip
    assert [r.source_resolution for r in rows] == ["1280x720", None]  # a failed output was made from nothing
    assert [row["source_resolution"] for row in output_rows(report.outputs)] == ["1280x720", None]
    assert not any("square" in key for key in storage.list_keys("batches/rf/video/"))


def test_each_unbranded_cut_is_rendered_right_after_its_branded_twin():
    from zencourt_pipeline.pipeline.renditions import _ordered

    spec = {f"{s.shape}-{s.branded}": s for s in EIGHT}
    request = [spec["square-False"], spec["landscape-False"], spec["landscape-True"], spec["square-True"], spec["vertical-False"]]
    ordered = _ordered(request, spec["landscape-True"])
    assert [f"{s.shape}-{s.branded}" for s in ordered] == [
        "landscape-True", "landscape-False", "square-True", "square-False", "vertical-False",
    ]  # fmt: skip
    # an unbranded primary stays first even when its branded twin is asked for too
    assert _ordered(request, spec["square-False"])[0] == spec["square-False"]


def test_the_source_resolution_is_read_from_the_clip_files(tmp_path):
    from zencourt_pipeline.media.timeline.build import ClipInput

    wide, square = sample_mp4(1280, 720), sample_mp4(960, 960)
    assert clips_resolution([ClipInput(wide, 2.0), ClipInput(wide, 2.0)]) == "1280x720"
    assert clips_resolution([ClipInput(wide, 2.0), ClipInput(square, 2.0), ClipInput(wide, 2.0)]) == "1280x720, 960x960"
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    assert clips_resolution([ClipInput(wide, 2.0), ClipInput(broken, 2.0)]) is None


def test_the_outputs_of_one_mix_share_one_soundtrack_measured_and_encoded_once(tmp_path, monkeypatch):
    """The default request's four outputs (here at small sizes) have one mix: its loudness is
    measured once and it is encoded once, then muxed by stream copy into every output."""
    from zencourt_pipeline.domain import ListingFacts
    from zencourt_pipeline.media import ffmpeg, graphs
    from zencourt_pipeline.media import soundtrack as soundtrack_module
    from zencourt_pipeline.media.ffmpeg import run_ffmpeg
    from zencourt_pipeline.media.normalize import normalize_clip
    from zencourt_pipeline.media.templates import load_template
    from zencourt_pipeline.media.timeline.build import ClipInput
    from zencourt_pipeline.pipeline.renditions import render_renditions
    from zencourt_pipeline_tests.media.test_soundtrack import audio_md5

    clips = []
    for i, source in enumerate(["testsrc2", "smptebars", "testsrc"]):
        run_ffmpeg(["-f", "lavfi", "-i", f"{source}=s=400x240:r=30:d=4", "-vf", "scroll=h=0.01",
                    *graphs.x264_args(preset="ultrafast", crf=30, fps=30), str(tmp_path / f"s{i}.mp4")])  # fmt: skip
        normalize_clip(tmp_path / f"s{i}.mp4", tmp_path / f"c{i}.mp4", width=320, height=180, duration_s=4.0)
        clips.append(ClipInput(tmp_path / f"c{i}.mp4", 4.0, room=f"Room {i}"))
    outputs = [
        OutputSpec.model_construct(shape=shape, width=w, height=h, branded=branded)
        for shape, (w, h) in ((OutputShape.LANDSCAPE, (480, 270)), (OutputShape.VERTICAL, (270, 480)))
        for branded in (True, False)
    ]  # not sizes a batch may ask for: built without validation
    measured, encoded = [], []
    measure_bed = soundtrack_module.loudness.measure_bed
    monkeypatch.setattr(soundtrack_module.loudness, "measure_bed", lambda *a, **k: measured.append(1) or measure_bed(*a, **k))
    real_run = ffmpeg.subprocess.run

    def run(cmd, *args, **kwargs):
        if "-c:a" in cmd and cmd[cmd.index("-c:a") + 1] == "aac":
            encoded.append(cmd)
        return real_run(cmd, *args, **kwargs)

    monkeypatch.setattr(ffmpeg.subprocess, "run", run)
    facts = ListingFacts(address="12 Oak Lane", price=1250000, agent_name="Jane Doe")
    renditions = render_renditions(
        clips, outputs, outputs[0], tmp_path / "out", title=None, template=load_template("showcase"), facts=facts,
    )  # fmt: skip
    assert [r.error for r in renditions] == [None] * 4 and all(r.result.timeline.audio for r in renditions)
    assert len(measured) == 1 and len(encoded) == 1
    assert len({audio_md5(r.result.path) for r in renditions}) == 1
