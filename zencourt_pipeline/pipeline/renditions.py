"""Stage 3b's renditions (issue 15 point 1): every output a batch asks for, rendered from the same
normalized clips, checked against its platforms and published.

Each output is its own timeline (`media.timeline.build`: one model, built per output size, branded
or the MLS-unbranded cut), rendered by `media.compose.render_timeline` (an unbranded cut from its
branded twin's file by `compose.render_variant`, issue 15 point 3): clips of another shape than
the output are cover-cropped around their job's focus point. The primary output (what
`video_gen_batch.video_url` points at) is rendered first; when it cannot be made the composition
fails, when another cannot, that output is recorded `failed` with the reason and the rest go on.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from zencourt_pipeline.db.outputs import OutputRow, OutputStatus
from zencourt_pipeline.domain import ListingFacts, OutputSpec
from zencourt_pipeline.media.errors import MediaError
from zencourt_pipeline.media.ffmpeg import probe
from zencourt_pipeline.media.mp4index import read_video_index
from zencourt_pipeline.media.profiles import targets
from zencourt_pipeline.media.timeline.model import AudioKind
from zencourt_pipeline.media.validate import Problem, validate_targets
from zencourt_pipeline.pipeline.keys import (
    video_key,
    video_subtitles_key,
    video_thumbnail_key,
    video_timeline_key,
)
from zencourt_pipeline.storage.base import Storage

if TYPE_CHECKING:
    from zencourt_pipeline.db.records import Job
    from zencourt_pipeline.media.branding import Branding
    from zencourt_pipeline.media.compose import ClipInput, CompositionResult
    from zencourt_pipeline.media.soundtrack import Soundtrack
    from zencourt_pipeline.media.templates import Template
    from zencourt_pipeline.media.timeline.model import Timeline
    from zencourt_pipeline.media.timeline.narration import Narration

SUBTITLE_TYPES = {"srt": "application/x-subrip", "vtt": "text/vtt"}


@dataclass(frozen=True)
class Rendition:
    """One output: its render (None when it failed: `error`), and once published its stored URIs and
    what its platforms' checks found in the file (`{profile: problems}`)."""

    spec: OutputSpec
    primary: bool
    result: CompositionResult | None = None
    error: str | None = None
    video_key: str | None = None
    thumbnail_key: str | None = None
    video_uri: str | None = None
    thumbnail_uri: str | None = None
    platforms: dict[str, list[Problem]] | None = None
    keys: tuple[str, ...] = field(default=(), repr=False)  # every object published for it
    copied: bool = False  # its timeline is another output's: the file is a copy of that render
    source_resolution: str | None = None  # the size of the clips it was made from (`clips_resolution`)

    @property
    def status(self) -> OutputStatus:
        """completed when rendered (and published), failed otherwise."""
        return OutputStatus.COMPLETED if self.result is not None else OutputStatus.FAILED

    def row(self, template: str) -> OutputRow:
        """What `finish_batch` writes of it."""
        result = self.result
        return OutputRow(
            self.spec, self.status, primary=self.primary, template=template if result else None,
            video_uri=self.video_uri, thumbnail_uri=self.thumbnail_uri,
            duration_s=result.info.duration if result else None, size_bytes=result.info.size_bytes if result else None,
            error=self.error, source_resolution=self.source_resolution if result else None,
        )  # fmt: skip


def render_renditions(
    clips: list[ClipInput], outputs: Sequence[OutputSpec], primary: OutputSpec, work_dir: Path, *,
    title: str | None, template: Template, facts: ListingFacts, narration: Narration | None = None,
    branding: Branding | None = None, on_rendered: Callable[[Rendition], Rendition] | None = None,
) -> list[Rendition]:
    """Render every output of `outputs` into `work_dir/<output name>/` (the primary first, each
    unbranded cut right after the branded output of its size; listed in the request's order, the
    primary first), each with the `narration` (the unbranded cut without it when it identifies the
    agent) and the template applying `branding` (`media.branding`) to the branded ones. An output
    whose timeline equals one already rendered (an unbranded cut of a template and facts without
    any branding) is a copy of that file; an unbranded cut whose branded twin is rendered is made
    from that file, re-encoding only the branding's windows (`compose.render_variant`). The audio
    is made once per distinct mix (`media.soundtrack`: mixed, loudness-measured, normalized and
    encoded) and muxed into every output that has it by stream copy. A MediaError of the primary
    propagates; another output's is its `error`. `on_rendered` is called with each output right
    after it is rendered (the primary first; `pipeline.publishing` publishes it there), and what it
    returns is what the list holds."""
    from zencourt_pipeline.media.compose import render_timeline, render_variant
    from zencourt_pipeline.media.timeline.build import build_timeline

    ordered = _ordered(outputs, primary)
    source = clips_resolution(clips)
    renditions: list[Rendition] = []
    rendered: dict[str, CompositionResult] = {}  # timeline JSON -> its render
    branded_by_size: dict[tuple[int, int], CompositionResult] = {}
    soundtracks = _Soundtracks(work_dir / "audio")
    for spec in ordered:
        out = work_dir / spec.name
        out.mkdir(parents=True, exist_ok=True)
        try:
            timeline = build_timeline(
                clips, width=spec.width, height=spec.height, title=title, template=template, facts=facts,
                branded=spec.branded, narration=narration, branding=branding,
            )  # fmt: skip
            plan = timeline.to_json()
            same = rendered.get(plan)
            twin = None if spec.branded else branded_by_size.get(spec.size)
            files = {"thumbnail_dest": out / "listing.jpg", "work_dir": out / "work"}
            if same is not None:
                result = _copy(same, out)
            elif twin is not None:
                result = render_variant(timeline, twin, out / "listing.mp4", soundtrack=soundtracks.of(timeline), **files)
                rendered[plan] = result
            else:
                result = render_timeline(timeline, out / "listing.mp4", soundtrack=soundtracks.of(timeline), **files)
                rendered[plan] = result
            if spec.branded:
                branded_by_size.setdefault(spec.size, result)
        except MediaError as exc:
            if spec == primary:
                raise
            renditions.append(Rendition(spec, primary=False, error=f"{exc.code}: {exc.message}"))
            continue
        rendition = Rendition(spec, primary=spec == primary, result=result, copied=same is not None, source_resolution=source)
        renditions.append(on_rendered(rendition) if on_rendered is not None else rendition)
    listed = [primary, *(spec for spec in outputs if spec != primary)]
    return sorted(renditions, key=lambda r: listed.index(r.spec))


class _Soundtracks:
    """The soundtracks of one request's outputs, one per distinct mix, made (into `folder`) when an
    output first needs it."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.made: dict[str, Soundtrack] = {}

    def of(self, timeline: Timeline) -> Soundtrack | None:
        """`timeline`'s soundtrack (None: the timeline has no audio)."""
        from zencourt_pipeline.media.soundtrack import make_soundtrack, mix_key

        key = mix_key(timeline)
        if key is not None and key not in self.made:
            made = make_soundtrack(timeline, self.folder / f"mix_{len(self.made)}.m4a")
            if made is not None:
                self.made[key] = made
        return self.made.get(key) if key is not None else None


def clips_resolution(clips: Sequence[ClipInput]) -> str | None:
    """The size of the clips the outputs are made from, read from the files (`1280x720`): the
    normalized clips, which normalize brings to the batch's frame whatever size the provider
    generated (Runway's and Kling's are about 720p), so a 1080p output is an upscale of them.
    Clips of several sizes (not made by normalize) are listed in clip order (`1280x720, 960x960`);
    None when a clip cannot be read (the render then says why)."""
    sizes: list[str] = []
    for clip in clips:
        size = _clip_size(clip.path)
        if size is None:
            return None
        if size not in sizes:
            sizes.append(size)
    return ", ".join(sizes) or None


def _clip_size(path: Path) -> str | None:
    """`WIDTHxHEIGHT` of the decoded picture: from the MP4 index (no ffmpeg run) when it can tell
    (an unrotated H.264 track), else from a probe; None when the file cannot be read."""
    try:
        ix = read_video_index(path)
        if ix.width > 0 and ix.height > 0 and not ix.rotated and ix.codec in ("avc1", "avc3"):
            return f"{ix.width}x{ix.height}"
    except (MediaError, OSError, ValueError, IndexError):
        pass
    try:
        info = probe(path)
    except MediaError:
        return None
    return f"{info.width}x{info.height}"


def _ordered(outputs: Sequence[OutputSpec], primary: OutputSpec) -> list[OutputSpec]:
    """The primary first, then the others in their order, each unbranded cut moved right after the
    first branded output of its size (rendered before it, so that it is made from that file)."""
    rest = [primary, *(spec for spec in outputs if spec != primary)]
    ordered = [s for s in rest if s == primary or s.branded or not any(o.branded and o.size == s.size for o in rest)]
    for spec in rest:
        if spec not in ordered:
            at = next(i for i, o in enumerate(ordered) if o.branded and o.size == spec.size)
            while at + 1 < len(ordered) and not ordered[at + 1].branded and ordered[at + 1].size == spec.size:
                at += 1
            ordered.insert(at + 1, spec)
    return ordered


def _copy(result: CompositionResult, out: Path) -> CompositionResult:
    """`result`'s video and thumbnail copied into `out` (an output identical to one rendered)."""
    video = Path(shutil.copyfile(result.path, out / "listing.mp4"))
    thumbnail = Path(shutil.copyfile(result.thumbnail_path, out / "listing.jpg")) if result.thumbnail_path else None
    return replace(result, path=video, thumbnail_path=thumbnail)


def publish_renditions(
    storage: Storage, batch_id: str, template: str, renditions: list[Rendition], completed: list[Job],
    narration_uri: str | None = None,
) -> list[Rendition]:
    """Store each rendered output (video, thumbnail, timeline JSON, SRT/WebVTT sidecars) under its
    final keys; the renditions with their keys and URIs (the caller finishes the batch). One
    published already (`video_uri`: early, by `pipeline.publishing`) is kept as it is.
    `narration_uri`: the stored narration, the source its track names in the timeline JSON."""
    published = []
    for rendition in renditions:
        result = rendition.result
        if result is None or rendition.video_uri is not None:
            published.append(rendition)
            continue
        spec, out = rendition.spec, result.path.parent
        v_key, t_key = video_key(batch_id, spec, template), video_thumbnail_key(batch_id, spec, template)
        tl_key = video_timeline_key(batch_id, spec, template)
        keys = [tl_key]
        thumb_uri = None
        if result.thumbnail_path:
            thumb_uri = storage.put_file(t_key, result.thumbnail_path, "image/jpeg")
            keys.append(t_key)
        storage.put_file(tl_key, _timeline_file(result, completed, out, narration_uri), "application/json")
        for kind, path in _subtitle_files(result, out).items():
            key = video_subtitles_key(batch_id, spec, template, kind)
            storage.put_file(key, path, SUBTITLE_TYPES[kind])
            keys.append(key)
        video_uri = storage.put_file(v_key, result.path, "video/mp4")
        keys.append(v_key)
        published.append(replace(
            rendition, video_key=v_key, thumbnail_key=t_key if thumb_uri else None, video_uri=video_uri,
            thumbnail_uri=thumb_uri, keys=tuple(keys),
        ))  # fmt: skip
    return published


def unpublish(storage: Storage, renditions: list[Rendition]) -> None:
    """Take every published object of `renditions` back down (the batch was canceled meanwhile)."""
    for rendition in renditions:
        for key in rendition.keys:
            storage.delete(key)


def check_platforms(renditions: list[Rendition]) -> list[Rendition]:
    """Each rendered output, read back from its file, against the house rules and every destination
    its shape targets (`media.validate`); one checked already keeps its findings."""
    return [
        replace(r, platforms=validate_targets(r.result.path, targets(r.result.info.width, r.result.info.height)))
        if r.result is not None and r.platforms is None else r
        for r in renditions
    ]  # fmt: skip


def _timeline_file(result: CompositionResult, completed: list[Job], out: Path, narration_uri: str | None) -> Path:
    """The rendered timeline as JSON, each clip's source the storage URI of its normalized clip
    (the clips are composed in the order of `completed`) and the narration's its stored copy, so
    that it re-renders the video."""
    timeline = result.timeline
    sources = [job.video_url or clip.source for job, clip in zip(completed, timeline.clips, strict=True)]
    clips = [c.model_copy(update={"source": s}) for c, s in zip(timeline.clips, sources, strict=True)]
    audio = [
        track.model_copy(update={"source": narration_uri}) if track.kind == AudioKind.NARRATION and narration_uri else track
        for track in timeline.audio
    ]  # fmt: skip
    path = out / "listing.timeline.json"
    path.write_text(timeline.model_copy(update={"clips": clips, "audio": audio}).to_json(), encoding="utf-8")
    return path


def _subtitle_files(result: CompositionResult, out: Path) -> dict[str, Path]:
    """The SRT and WebVTT sidecars of the rendered timeline's texts, by kind (`srt`, `vtt`)."""
    from zencourt_pipeline.media.timeline.subtitles import to_srt, to_vtt

    files = {}
    for kind, render in (("srt", to_srt), ("vtt", to_vtt)):
        files[kind] = out / f"listing.{kind}"
        files[kind].write_text(render(result.timeline), encoding="utf-8")
    return files
