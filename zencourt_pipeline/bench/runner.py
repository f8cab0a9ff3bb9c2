"""`python -m zencourt_pipeline.bench`: generate inputs, measure, print `name: value` lines."""

from __future__ import annotations

import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from zencourt_pipeline.bench import inputs, references
from zencourt_pipeline.bench.inputs import ROOMS, TITLE
from zencourt_pipeline.bench.report import Timing, emit, note, timed
from zencourt_pipeline.bench.vertical import FULL_VERTICAL, QUICK_VERTICAL, VerticalConfig, vertical_figures
from zencourt_pipeline.media import compose
from zencourt_pipeline.media.compose import ClipInput, compose_video
from zencourt_pipeline.media.ffmpeg import ffmpeg_exe, probe, run_ffmpeg
from zencourt_pipeline.media.mp4index import read_video_index
from zencourt_pipeline.media.normalize import normalize_clip, normalize_many
from zencourt_pipeline.media.smart import plan as smart_plan
from zencourt_pipeline.media.templates import Template, load_template
from zencourt_pipeline.media.timeline.build import build_timeline
from zencourt_pipeline.media.timeline.model import TextRole, Timeline


@dataclass(frozen=True)
class Config:
    quick: bool = False
    size: tuple[int, int] = (1280, 720)
    source_size: tuple[int, int] = (1920, 1080)
    clip_s: float = 5.0
    clips: int = 6
    repeats: int = 3
    normalize_repeats: int = 5
    vertical: VerticalConfig = FULL_VERTICAL  # the long vertical video (bench/vertical.py)
    photo_size: tuple[int, int] = (4000, 3000)
    generator_s: float = 5.0
    moviepy_clips: int = 6


FULL = Config()
QUICK = Config(
    quick=True, size=(320, 180), source_size=(640, 360), clip_s=4.0, clips=3, repeats=1, normalize_repeats=1,
    vertical=QUICK_VERTICAL,
    photo_size=(800, 600), generator_s=1.0, moviepy_clips=2,
)  # fmt: skip


def bench_template() -> Template:
    """The bench timeline's template: the default look (0.5 s crossfades, fade in/out, music), a
    2 s title card and 1.5 s room captions over the first seconds of each clip."""
    return load_template("default").model_copy(update={"title_seconds": 2.0, "caption_seconds": 1.5})


def median_ratio(ours: list[Timing], refs: list[Timing], attr: str = "wall") -> float:
    """Median of the per-round ratios (rounds are close in time, so share the machine's load)."""
    return statistics.median(getattr(a, attr) / getattr(b, attr) for a, b in zip(ours, refs, strict=True))


def decode_ok(path: Path) -> bool:
    proc = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-xerror", "-i", str(path), "-f", "null", "-"],
        capture_output=True, text=True,
    )  # fmt: skip
    return proc.returncode == 0 and not proc.stderr.strip()


def _load() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


@dataclass
class Prepared:
    """What the later sections share: the source clips, the normalized batch, the template."""

    sources: list[Path]
    clips: list[ClipInput]
    template: Template


def run(cfg: Config, work: Path) -> None:
    """Every section in turn (each prints its `name: value` lines), then the sensor ticks."""
    began = time.perf_counter()
    emit("bench_quick", int(cfg.quick))
    emit("cpu_count", os.cpu_count() or 1)
    emit("load_avg_1m_start", _load())
    prepared = _normalize_batch(cfg, work)
    _normalize_one(cfg, work, prepared.sources)
    plan, runs = _compose_runs(cfg, work, prepared)
    _compose_checks(work, plan, runs)
    vertical_figures(cfg.vertical, work, prepared.sources, prepared.template)
    _outputs(cfg, work, prepared)
    _local_generator(cfg, work)
    _capacity(cfg, work)
    _moviepy(cfg, work, prepared, plan, statistics.median(t.wall for t in runs["full"]))
    emit("load_avg_1m_end", _load())
    _sensor_figures(cfg)
    _partition_figures(cfg)
    emit("bench_total_s", time.perf_counter() - began)


def _normalize_batch(cfg: Config, work: Path) -> Prepared:
    """Source clips generated, then the batch normalized in parallel with the timeline's keyframes."""
    w, h = cfg.size
    note("generating source clips")
    t = timed(
        lambda: inputs.make_sources(
            work / "src", width=cfg.source_size[0], height=cfg.source_size[1], seconds=cfg.clip_s
        )
    )
    sources = list(t.result)[: max(cfg.clips, cfg.vertical.distinct)]
    emit("inputs_generate_s", t.wall)

    note("normalizing the batch in parallel (normalize_many), keyframes where the timeline cuts")
    template = bench_template()
    planned = [ClipInput(src, cfg.clip_s, ROOMS[i % len(ROOMS)]) for i, src in enumerate(sources[: cfg.clips])]
    keyframes = compose.clip_keyframes(planned, width=w, height=h, title=TITLE, template=template)
    items = [(src, work / f"clip_{i}.mp4", cfg.clip_s, keyframes[i]) for i, src in enumerate(sources[: cfg.clips])]
    t = timed(lambda: normalize_many(items, width=w, height=h))
    failed = [o for o in t.result if isinstance(o, Exception)]
    if failed:
        raise SystemExit(f"normalize failed: {failed[0]}")
    emit(f"normalize_many_{cfg.clips}_clips_s", t.wall)
    emit(f"normalize_many_{cfg.clips}_clips_peak_rss_mb", t.peak_mb)
    clips = [ClipInput(dest, cfg.clip_s, ROOMS[i % len(ROOMS)]) for i, (_, dest, *_) in enumerate(items)]
    grid_only = work / "clip_0_grid.mp4"
    normalize_clip(sources[0], grid_only, width=w, height=h, duration_s=cfg.clip_s)
    emit("normalize_keyframes_size_ratio", items[0][1].stat().st_size / grid_only.stat().st_size)

    return Prepared(sources, clips, template)


def _normalize_one(cfg: Config, work: Path, sources: list[Path]) -> None:
    """One clip normalized by us and by the bare ffmpeg reference, interleaved."""
    w, h = cfg.size
    note("normalize: one clip, ours vs the bare ffmpeg reference, interleaved")
    runs_n: dict[str, list[Timing]] = {"ours": [], "ref": []}
    for k in range(cfg.normalize_repeats):
        src = sources[k % len(sources)]
        pair = [
            ("ours", lambda s=src: normalize_clip(s, work / "norm_ours.mp4", width=w, height=h, duration_s=cfg.clip_s)),
            ("ref", lambda s=src: run_ffmpeg(references.normalize_reference_args(
                s, work / "norm_ref.mp4", width=w, height=h, seconds=cfg.clip_s))),
        ]  # fmt: skip
        for name, fn in pair if k % 2 == 0 else reversed(pair):
            runs_n[name].append(timed(fn))
    emit("normalize_s", statistics.median(t.wall for t in runs_n["ours"]))
    emit("normalize_ref_s", statistics.median(t.wall for t in runs_n["ref"]))
    emit("normalize_ratio_vs_ref", median_ratio(runs_n["ours"], runs_n["ref"]))
    emit("normalize_cpu_s", statistics.median(t.cpu for t in runs_n["ours"]))
    emit("normalize_ref_cpu_s", statistics.median(t.cpu for t in runs_n["ref"]))
    emit("normalize_ratio_vs_ref_cpu", median_ratio(runs_n["ours"], runs_n["ref"], "cpu"))



def _compose_runs(cfg: Config, work: Path, prepared: Prepared) -> tuple[Timeline, dict[str, list[Timing]]]:
    """The 720p composition: the reference graph, ours in one graph, ours smart, interleaved."""
    w, h = cfg.size
    clips, template = prepared.clips, prepared.template
    plan_dir = work / "plan"
    plan_dir.mkdir()
    plan, assets = compose.plan_composition(
        clips, width=w, height=h, title=TITLE, template=template, work=plan_dir
    )
    indexes = [read_video_index(c.path) for c in clips]
    pieces_plan = smart_plan.plan_pieces(plan, [ix.gops() for ix in indexes])
    emit("compose_timeline_s", plan.duration_s)
    emit("compose_smart_copied_share", pieces_plan.copied_frames / pieces_plan.total_frames)
    emit("compose_smart_estimated_cost", smart_plan.estimated_cost(pieces_plan))
    emit("compose_auto_uses_smart", int(smart_plan.estimated_cost(pieces_plan) <= smart_plan.WORTH_IT))

    note("compose: reference graph, ours (one graph), ours (smart), interleaved")
    runs: dict[str, list[Timing]] = {"ref": [], "full": [], "smart": []}

    def ours(strategy: str) -> Callable[[], object]:
        return lambda: compose_video(
            clips, work / f"compose_{strategy}.mp4", width=w, height=h, title=TITLE, template=template,
            thumbnail_dest=work / f"compose_{strategy}.jpg", strategy=strategy,
        )  # fmt: skip

    jobs = {
        "ref": lambda: run_ffmpeg(references.compose_reference_args(plan, assets, work / "compose_ref.mp4")),
        "full": ours("full"),
        "smart": ours("smart"),
    }
    order = ["ref", "full", "smart"]
    for k in range(cfg.repeats):
        for name in order[k % 3 :] + order[: k % 3]:
            runs[name].append(timed(jobs[name]))
    med = {name: statistics.median(t.wall for t in values) for name, values in runs.items()}
    emit("compose_ref_ffmpeg_720p_s", med["ref"])
    emit("compose_720p_s", med["full"])
    emit("compose_smart_720p_s", med["smart"])
    emit("compose_ratio_vs_ref", median_ratio(runs["full"], runs["ref"]))
    emit("compose_smart_ratio_vs_ref", median_ratio(runs["smart"], runs["ref"]))
    emit("compose_smart_ratio_vs_full", median_ratio(runs["smart"], runs["full"]))
    emit("compose_ref_ffmpeg_720p_cpu_s", statistics.median(t.cpu for t in runs["ref"]))
    emit("compose_720p_cpu_s", statistics.median(t.cpu for t in runs["full"]))
    emit("compose_smart_720p_cpu_s", statistics.median(t.cpu for t in runs["smart"]))
    emit("compose_ratio_vs_ref_cpu", median_ratio(runs["full"], runs["ref"], "cpu"))
    emit("compose_smart_ratio_vs_ref_cpu", median_ratio(runs["smart"], runs["ref"], "cpu"))
    emit("compose_ref_ffmpeg_720p_peak_rss_mb", max(t.peak_mb for t in runs["ref"]))
    emit("compose_720p_peak_rss_mb", max(t.peak_mb for t in runs["full"]))
    emit("compose_smart_720p_peak_rss_mb", max(t.peak_mb for t in runs["smart"]))
    return plan, runs


def _compose_checks(work: Path, plan: Timeline, runs: dict[str, list[Timing]]) -> None:
    """What the smart composition produced, against the full one and the reference."""
    results = {name: values[-1].result for name, values in runs.items()}
    smart_result, full_result = results["smart"], results["full"]
    ref_info = probe(work / "compose_ref.mp4", count_frames=True)
    smart_info = probe(smart_result.path, count_frames=True)
    full_info = probe(full_result.path, count_frames=True)
    emit("compose_smart_used", int(smart_result.strategy == "smart"))
    for stage in ("pieces", "join", "check"):
        emit(
            f"compose_smart_{stage}_s",
            statistics.median(t.result.stage_seconds.get(stage, 0.0) for t in runs["smart"]),
        )
    emit("compose_smart_pieces", smart_result.pieces)
    emit("compose_smart_size_ratio_vs_full", smart_result.path.stat().st_size / full_result.path.stat().st_size)
    emit("compose_smart_decodes_clean", int(decode_ok(smart_result.path)))
    emit("compose_smart_frames", smart_info.frame_count or 0)
    emit("compose_full_frames", full_info.frame_count or 0)
    emit("compose_ref_frames", ref_info.frame_count or 0)
    emit("compose_smart_frames_match_full", int(smart_info.frame_count == full_info.frame_count))
    emit("compose_smart_duration_error_s", abs((smart_info.frame_count or 0) / 30 - plan.duration_s))



def _outputs(cfg: Config, work: Path, prepared: Prepared) -> None:
    """The renditions of the default request (issue 15): bench/outputs.py."""
    from zencourt_pipeline.bench.outputs import FULL_OUTPUTS, QUICK_OUTPUTS, outputs_figures

    ocfg = QUICK_OUTPUTS if cfg.quick else FULL_OUTPUTS
    outputs_figures(ocfg, prepared.sources, work / "outputs", emit=emit, note=note, timed=timed)


def _local_generator(cfg: Config, work: Path) -> None:
    """The local generator: a Ken Burns clip from a large photo."""
    w, h = cfg.size
    from zencourt_pipeline.media.kenburns import choose_motion, render_ken_burns

    note("local generator: Ken Burns clip from a large photo")
    photo = inputs.make_photo(work / "photo.jpg", width=cfg.photo_size[0], height=cfg.photo_size[1])
    gen_times = []
    for k in range(cfg.repeats):
        t = timed(
            lambda k=k: render_ken_burns(
                photo,
                work / "generated.mp4",
                width=w,
                height=h,
                duration_s=cfg.generator_s,
                motion=choose_motion(k, ROOMS[k % len(ROOMS)]),
            )  # fmt: skip
        )
        gen_times.append(t.wall)
    gen = statistics.median(gen_times)
    emit(f"local_generator_{cfg.generator_s:g}s_{h}p_s", gen)
    if (w, h, cfg.generator_s) != (1280, 720, 5.0):
        emit("local_generator_5s_720p_s", gen)  # quick mode: same name, tiny clip
    emit("local_generator_realtime_factor", cfg.generator_s / gen)



def _capacity(cfg: Config, work: Path) -> None:
    """CPU-seconds per stage of one batch and batches per core-hour (bench/capacity.py)."""
    from zencourt_pipeline.bench.capacity import FULL_CAPACITY, QUICK_CAPACITY, capacity_figures

    capacity_figures(QUICK_CAPACITY if cfg.quick else FULL_CAPACITY, work / "capacity", emit=emit, note=note)


def _moviepy(cfg: Config, work: Path, prepared: Prepared, plan: Timeline, ours_full_s: float) -> None:
    """The naive moviepy composition, once (last: it bloats this process)."""
    w, h = cfg.size
    clips, template = prepared.clips, prepared.template
    note("moviepy reference (naive concatenate_videoclips + write_videofile), once")
    mplan = build_timeline(clips[: cfg.moviepy_clips], width=w, height=h, title=TITLE, template=template)
    captions = [
        (t.text, mplan.seconds(t.start_frame), mplan.seconds(t.end_frame)) for t in mplan.texts if t.role == TextRole.CAPTION
    ]
    from zencourt_pipeline.media.overlays import _font_file

    mp = timed(
        lambda: references.moviepy_compose(
            mplan,
            work / "compose_moviepy.mp4",
            title=TITLE,
            captions=captions,
            title_seconds=template.title_seconds,
            font=_font_file(),
        )  # fmt: skip
    )
    ours_for_moviepy = ours_full_s
    if cfg.moviepy_clips != cfg.clips:  # quick mode: compare with ours on the same shorter timeline
        short = clips[: cfg.moviepy_clips]
        ours_for_moviepy = timed(
            lambda: compose_video(
                short,
                work / "compose_short.mp4",
                width=w,
                height=h,
                title=TITLE,
                template=template,
                strategy="full",
            )  # fmt: skip
        ).wall
    emit("compose_moviepy_720p_s", mp.wall)
    emit("compose_moviepy_720p_cpu_s", mp.cpu)
    emit("compose_moviepy_720p_peak_rss_mb", mp.peak_mb)
    emit("compose_ratio_vs_moviepy", mp.wall / ours_for_moviepy)



def _sensor_figures(cfg: Config) -> None:
    """The sensors' ticks with many open batches in PostgreSQL (bench/sensors.py)."""
    from zencourt_pipeline.bench.sensors import sensor_ticks

    n = 300 if cfg is QUICK else 10_000
    note(f"sensor ticks with {n} open batches in PostgreSQL")
    ticks = sensor_ticks(n)
    for name, seconds in ticks.items():
        emit(f"sensor_tick_{name.removesuffix('_sensor')}_s", seconds)
    emit(f"sensor_tick_{n}_open_batches_s", max(ticks.values()))


def _partition_figures(cfg: Config) -> None:
    """Partitions after a simulated year under the 30-day retention, and the asset page's query at
    that count against the unbounded count (bench/partitions.py)."""
    from zencourt_pipeline.bench.partitions import retention_figures

    days, per_day, retention = (20, 20, 7) if cfg.quick else (365, 1000, 30)
    note(f"partition retention: {days} days of {per_day} batches a day, {retention}-day retention")
    figures = retention_figures(days=days, per_day=per_day, retention_days=retention)
    emit("partitions_after_year", figures.partitions_after)
    emit("partitions_unbounded", figures.partitions_unbounded)
    emit("partition_retention_tick_s", figures.median_tick_s)
    emit("asset_page_query_s", figures.page_query_s)
    emit("asset_page_query_unbounded_s", figures.page_query_unbounded_s)
    emit("asset_page_query_ratio_vs_unbounded", figures.page_query_s / figures.page_query_unbounded_s)


def main() -> None:
    from zencourt_pipeline.config import BenchSettings

    bench = BenchSettings.from_env()
    cfg = QUICK if bench.quick else FULL
    base = bench.work_dir
    with tempfile.TemporaryDirectory(prefix="zc-bench-", dir=base) as tmp:
        run(cfg, Path(tmp))
