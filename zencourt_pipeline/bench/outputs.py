"""The renditions figures of `make bench` (issue 15, Performance): what making every output of the
default request costs, through the pipeline's own code (`pipeline.renditions.render_renditions`
over the timeline model), against full renders measured in the same run.

  outputs_4_ratio_vs_one_full  `render_renditions` of `DEFAULT_OUTPUTS` (16:9 and 9:16 at 1080p,
                               branded and unbranded: 4 files) against one full render
                               (`strategy="full"`) of the primary output (16:9 1080p branded);
                               median of per-round ratios, rounds interleaved (wall time;
                               outputs_4_cpu_ratio_vs_one_full: the same in CPU seconds of the
                               ffmpeg children and this process, steadier on a loaded machine).
  unbranded_ratio_vs_full      the 16:9 unbranded cut as `render_renditions` makes it (right after
                               the branded one, in the same call) against a full render of its
                               timeline. Its time is read from the outputs' files: from the moment
                               the branded output's thumbnail (the last file of an output) is
                               written to the moment the unbranded one's is.
  outputs_4_60s_peak_rss_mb    peak RSS of this process and its ffmpeg children while
                               `render_renditions` makes the 4 outputs of a 60 s listing (12 clips
                               of 5 s; a few distinct clips, each used several times).

The template is `showcase` with every listing fact set, the agent's name included, and a branding
profile (`BRANDING`: name, brokerage, phone, email, website, a logo, a brand colour), so the
unbranded cut really differs from the branded one (no logo bug, no agent card `Listed by
{{agent_name}}`, an end card without the agent, no contact line) and is not a copy of it; it is
made from the branded render (`compose.render_variant`: only the branding's windows re-encoded). The clips are normalized as the pipeline normalizes them: at the landscape
orientation's size (1280x720; 1080p outputs scale them up), with the keyframes this composition
plans.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

from zencourt_pipeline.domain import DEFAULT_OUTPUTS, ListingFacts, OutputShape, OutputSpec, primary_output
from zencourt_pipeline.media import compose
from zencourt_pipeline.media.branding import Branding
from zencourt_pipeline.media.compose import ClipInput, render_timeline
from zencourt_pipeline.media.normalize import normalize_many
from zencourt_pipeline.media.templates import Template, load_template
from zencourt_pipeline.media.timeline.build import build_timeline
from zencourt_pipeline.pipeline.renditions import Rendition, render_renditions

TEMPLATE = "showcase"
FACTS = ListingFacts(
    address="12 Harbour View Road", price=1_250_000, beds=4, baths=2.5, sqft=2_150, agent_name="Jordan Avery"
)
BRANDING = Branding(
    agent_name="Jordan Avery", brokerage="Harbour Realty", phone="+1 555 0100", email="jordan@harbour.example",
    website="harbour.example", primary_color="#0B4F4A",
)  # the logo: `_branding` draws one into the work directory


@dataclass(frozen=True)
class OutputsConfig:
    """What the section renders: the clips' size and count, the outputs and the 60 s listing."""

    clip_size: tuple[int, int]  # the normalized clips (the pipeline's ORIENTATION_SIZES)
    clips: int
    clip_s: float
    outputs: tuple[OutputSpec, ...]
    long_clips: int  # the "60 s" listing: long_clips x clip_s
    long_distinct: int
    repeats: int


FULL_OUTPUTS = OutputsConfig(
    clip_size=(1280, 720),
    clips=6,
    clip_s=5.0,
    outputs=DEFAULT_OUTPUTS,
    long_clips=12,
    long_distinct=3,
    repeats=3,
)
# quick (a smoke test): the default request's four outputs at tiny sizes (not sizes a batch may ask
# for: built without validation), from two short tiny clips
QUICK_OUTPUTS = OutputsConfig(
    clip_size=(320, 180), clips=2, clip_s=4.0, long_clips=2, long_distinct=1, repeats=1,
    outputs=tuple(
        OutputSpec.model_construct(shape=shape, width=w, height=h, branded=branded)
        for shape, (w, h) in ((OutputShape.LANDSCAPE, (480, 270)), (OutputShape.VERTICAL, (270, 480)))
        for branded in (True, False)
    ),
)  # fmt: skip


def _normalized(
    cfg: OutputsConfig,
    sources: list[Path],
    work: Path,
    template: Template,
    *,
    count: int,
    distinct: int,
    tag: str,
) -> list[ClipInput]:
    """`count` clips of cfg.clip_s over `distinct` sources, normalized as the pipeline does (clip
    size, keyframes where this composition cuts them; a source used twice gets both's keyframes)."""
    w, h = cfg.clip_size
    paths = [work / f"{tag}_{i}.mp4" for i in range(distinct)]
    clips = [ClipInput(paths[i % distinct], cfg.clip_s, room=f"Room {i + 1}") for i in range(count)]
    keyframes: list[set[int]] = [set() for _ in paths]
    planned = compose.clip_keyframes(clips, width=w, height=h, title=None, template=template, facts=FACTS)
    for i, cuts in enumerate(planned):
        keyframes[i % distinct].update(cuts)
    items = [(sources[i % len(sources)], paths[i], cfg.clip_s, sorted(keyframes[i])) for i in range(distinct)]
    failed = [o for o in normalize_many(items, width=w, height=h) if isinstance(o, Exception)]
    if failed:
        raise SystemExit(f"normalize failed: {failed[0]}")
    return clips


def _branding(work: Path) -> Branding:
    """`BRANDING` with a logo (a 400x160 PNG with transparency) drawn into `work`."""
    from PIL import Image, ImageDraw

    logo = work / "logo.png"
    image = Image.new("RGBA", (400, 160), (0, 0, 0, 0))
    ImageDraw.Draw(image).rounded_rectangle((0, 0, 399, 159), radius=30, fill=(11, 79, 74, 230))
    image.save(logo)
    return BRANDING.model_copy(update={"logo": logo})


def _renditions(
    cfg: OutputsConfig, clips: list[ClipInput], template: Template, out: Path, branding: Branding
) -> list[Rendition]:
    """Every output of the request, as the composition step makes them (the primary first)."""
    primary, outputs = primary_output(cfg.outputs, OutputShape.LANDSCAPE)
    renditions = render_renditions(
        clips, outputs, primary, out, title=None, template=template, facts=FACTS, branding=branding
    )
    failed = [r for r in renditions if r.result is None]
    if failed:
        raise SystemExit(f"rendition {failed[0].spec.name} failed: {failed[0].error}")
    return renditions


def _full(clips: list[ClipInput], spec: OutputSpec, template: Template, out: Path, branding: Branding) -> object:
    """One full render (one graph, or windows when one graph is over the memory budget) of `spec`."""
    timeline = build_timeline(
        clips,
        width=spec.width,
        height=spec.height,
        title=None,
        template=template,
        facts=FACTS,
        branded=spec.branded,
        branding=branding,
    )
    return render_timeline(
        timeline,
        out / "listing.mp4",
        thumbnail_dest=out / "listing.jpg",
        work_dir=out / "work",
        strategy="full",
    )


def _finished_at(rendition: Rendition) -> float:
    """When the output's last file (its thumbnail, else its video) was written (perf_counter clock)."""
    result = rendition.result
    assert result is not None
    path = result.thumbnail_path or result.path
    return time.perf_counter() - (time.time() - path.stat().st_mtime)


@dataclass
class _Rounds:
    """The interleaved rounds: each job's timed runs (the outputs, a full render of the primary, a
    full render of its unbranded cut), the unbranded cut's time inside each outputs run, and how the
    last outputs run made its files (copied, smart-rendered, derived from the branded render)."""

    runs: dict[str, list] = field(default_factory=lambda: {"outputs": [], "full": [], "unbranded_full": []})
    unbranded_made: list[float] = field(default_factory=list)
    copied: int = 0
    smart: int = 0
    variants: int = 0


def outputs_figures(cfg: OutputsConfig, sources: list[Path], work: Path, *, emit, note, timed) -> None:
    """Print the three figures (and their parts) with `emit`; `timed` is the runner's."""
    template = load_template(TEMPLATE)
    work.mkdir(parents=True, exist_ok=True)
    branding = _branding(work)
    note(
        f"renditions: normalizing {cfg.clips} clips at {cfg.clip_size[0]}x{cfg.clip_size[1]} ({TEMPLATE} keyframes)"
    )
    clips = _normalized(cfg, sources, work, template, count=cfg.clips, distinct=cfg.clips, tag="oclip")
    primary, _ = primary_output(cfg.outputs, OutputShape.LANDSCAPE)
    unbranded = next(
        s for s in cfg.outputs if (s.shape, s.width, s.height) == (primary.shape, primary.width, primary.height)
        and not s.branded
    )  # fmt: skip

    note(
        f"renditions: {len(cfg.outputs)} outputs vs one full {primary.name} vs a full {unbranded.name}, interleaved"
    )
    jobs = {
        "outputs": lambda k: _renditions(cfg, clips, template, work / f"outputs_{k}", branding),
        "full": lambda k: _full(clips, primary, template, work / f"full_{k}", branding),
        "unbranded_full": lambda k: _full(clips, unbranded, template, work / f"unbranded_full_{k}", branding),
    }
    _emit_rounds(_interleaved_rounds(jobs, unbranded, cfg.repeats, timed), emit)

    note(
        f"renditions: the {len(cfg.outputs)} outputs of a {cfg.long_clips} x {cfg.clip_s:g} s listing (peak RSS)"
    )
    long = _normalized(
        cfg, sources, work, template, count=cfg.long_clips, distinct=cfg.long_distinct, tag="lclip"
    )
    t = timed(lambda: _renditions(cfg, long, template, work / "outputs_60s", branding))
    emit("outputs_4_60s_peak_rss_mb", t.peak_mb)
    emit("outputs_4_60s_s", t.wall)
    emit("outputs_4_60s_duration_s", t.result[0].result.duration_s)


def _interleaved_rounds(jobs: dict, unbranded: OutputSpec, repeats: int, timed) -> _Rounds:
    """`repeats` rounds of the three `jobs` (each called with the round), the order rotated each
    round so that no job always runs first (on a cold cache) or last."""
    rounds = _Rounds()
    order = list(jobs)
    for k in range(repeats):
        for name in order[k % 3 :] + order[: k % 3]:
            start = time.perf_counter()
            t = timed(lambda name=name, k=k: jobs[name](k))
            rounds.runs[name].append(t)
            if name == "outputs":
                rounds.unbranded_made.append(_unbranded_seconds(t.result, unbranded, start))
                rounds.copied = sum(r.copied for r in t.result)
                rounds.smart = sum(r.result.strategy == "smart" for r in t.result)
                rounds.variants = sum(r.result.strategy == "variant" for r in t.result)
    return rounds


def _unbranded_seconds(renditions: list[Rendition], unbranded: OutputSpec, start: float) -> float:
    """The unbranded cut's time in one outputs run: from the file finished before it (or the run's
    start) to its own."""
    by_spec = {r.spec: r for r in renditions}
    ordered = list(renditions)
    i = ordered.index(by_spec[unbranded])
    before = _finished_at(ordered[i - 1]) if i > 0 else start
    return _finished_at(by_spec[unbranded]) - before


def _emit_rounds(rounds: _Rounds, emit) -> None:
    """The outputs-against-one-full and unbranded-against-full figures: medians of the rounds, ratios
    the medians of per-round ratios."""
    outputs_s = [t.wall for t in rounds.runs["outputs"]]
    full_s = [t.wall for t in rounds.runs["full"]]
    ufull_s = [t.wall for t in rounds.runs["unbranded_full"]]
    emit("outputs_4_s", statistics.median(outputs_s))
    emit("outputs_one_full_s", statistics.median(full_s))
    emit(
        "outputs_4_ratio_vs_one_full",
        statistics.median(a / b for a, b in zip(outputs_s, full_s, strict=True)),
    )
    emit(
        "outputs_4_cpu_ratio_vs_one_full",
        statistics.median(a.cpu / b.cpu for a, b in zip(rounds.runs["outputs"], rounds.runs["full"], strict=True)),
    )
    emit("outputs_4_copied", rounds.copied)  # outputs whose timeline equals one rendered before (a copy)
    emit("outputs_4_smart", rounds.smart)  # outputs smart-rendered (stream-copied spans)
    emit("outputs_4_variant", rounds.variants)  # unbranded cuts made from the branded render (`render_variant`)
    emit("unbranded_s", statistics.median(rounds.unbranded_made))
    emit("unbranded_full_s", statistics.median(ufull_s))
    emit(
        "unbranded_ratio_vs_full",
        statistics.median(a / b for a, b in zip(rounds.unbranded_made, ufull_s, strict=True)),
    )
    emit("outputs_4_peak_rss_mb", max(t.peak_mb for t in rounds.runs["outputs"]))


def main() -> None:
    """This section alone (`python -m zencourt_pipeline.bench.outputs`): sources, then the figures."""
    import tempfile

    from zencourt_pipeline.bench import inputs
    from zencourt_pipeline.bench.report import emit, note, timed
    from zencourt_pipeline.config import BenchSettings

    bench = BenchSettings.from_env()
    cfg = QUICK_OUTPUTS if bench.quick else FULL_OUTPUTS
    with tempfile.TemporaryDirectory(prefix="zc-bench-outputs-", dir=bench.work_dir) as tmp:
        work = Path(tmp)
        size = (320, 180) if bench.quick else (1920, 1080)
        note("generating source clips")
        sources = inputs.make_sources(work / "src", width=size[0], height=size[1], seconds=cfg.clip_s)
        outputs_figures(cfg, sources, work / "outputs", emit=emit, note=note, timed=timed)


if __name__ == "__main__":
    main()
