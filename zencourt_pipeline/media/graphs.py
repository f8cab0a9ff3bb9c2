"""Every ffmpeg filter graph and encoding argument list the media code runs is built here (the
stream-copy commands that splice smart-rendered pieces are in `smart/splicing.py`).

Pure string building (no subprocesses, no file access) so it can be unit-tested. The callers in
`normalize.py`, `compose.py`, `smart/render.py` and `thumbnails.py` only run what these builders
return.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

# The styles `xfade` accepts (ffmpeg 7-9), minus "custom" which needs an expression.
XFADE_TRANSITIONS: frozenset[str] = frozenset(
    """fade wipeleft wiperight wipeup wipedown slideleft slideright slideup slidedown circlecrop
    rectcrop distance fadeblack fadewhite radial smoothleft smoothright smoothup smoothdown circleopen
    circleclose vertopen vertclose horzopen horzclose dissolve pixelize diagtl diagtr diagbl diagbr
    hlslice hrslice vuslice vdslice hblur fadegrays wipetl wipetr wipebl wipebr squeezeh squeezev
    zoomin fadefast fadeslow hlwind hrwind vuwind vdwind coverleft coverright coverup coverdown
    revealleft revealright revealup revealdown""".split()
)

# Encoder settings shared by every normalized clip, so normalized clips can be stream-copied together.
VIDEO_TIMESCALE = 15360  # mp4 track timescale (ffmpeg's own default for 30 fps, made explicit)

# Closed GOPs, and `stitchable` so x264 writes content-independent SPS/PPS (its PPS would otherwise
# carry the CRF as the initial QP): every encode at the same size and preset then has byte-identical
# parameter sets, which is what lets smart rendering splice re-encoded spans between copied ones.
X264_PARAMS = "open-gop=0:stitchable=1"

# Every encode is tagged BT.709 / limited range (identical VUI in the SPS). Setting the encoder's
# colour space makes ffmpeg convert frames in another matrix; primaries/transfer are set on frames.
COLOR_ARGS = ["-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709", "-color_range", "tv"]  # fmt: skip
COLOR_TAGS_FILTER = "setparams=color_primaries=bt709:color_trc=bt709"


def mp4_output(dest: Path, *, faststart: bool = True, final: bool = True) -> list[str]:
    """The mp4 muxer's arguments for every encoded output: no edit lists (`edts/elst`, refused by
    Instagram's Graph API), `moov` before `mdat` (`faststart`), then `dest`. A `final` output (what
    is published) gets negative composition offsets (ctts v1) instead of the edit list, so its first
    frame is still presented at 0 despite the B-frame delay; clips and pieces that smart rendering
    splices keep positive offsets (their first frame at the delay, as the splicer expects)."""
    flags = "+".join(["", *(["faststart"] if faststart else []), *(["negative_cts_offsets"] if final else [])])
    return ["-use_editlist", "0", *(["-movflags", flags] if flags else []), "-f", "mp4", str(dest)]


def fmt(value: float) -> str:
    """A number for a filter graph: fixed point, no exponent, no trailing zeros."""
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def keyframe_expr(fps: int, extra_frames: Sequence[int] = ()) -> str:
    """`-force_key_frames` expression: a keyframe on every whole second, or, with
    `extra_frames`, on those frames, x264 adding one whenever a GOP reaches one second
    (`-g fps`): every GOP stays <= 1 s and each extra keyframe costs at most one more IDR frame."""
    if not extra_frames:
        return "expr:gte(t,n_forced*1)"
    extras = "".join(f"+eq(n,{int(f)})" for f in sorted(set(extra_frames)) if f > 0)
    return f"expr:eq(n,0){extras}"


def x264_args(
    *, preset: str, crf: int, fps: int, profile: str = "high", keyframes: Sequence[int] = ()
) -> list[str]:
    """H.264 High, yuv420p, closed GOPs of at most one second, no scene-cut keyframes: a keyframe
    every second, or on the frames `keyframes` and one second after each keyframe."""
    return [
        "-c:v", "libx264",
        "-preset", preset,
        "-crf", str(crf),
        "-profile:v", profile,
        "-pix_fmt", "yuv420p",
        "-g", str(fps),
        "-keyint_min", str(fps),
        "-sc_threshold", "0",
        "-force_key_frames", keyframe_expr(fps, keyframes),
        "-x264-params", X264_PARAMS,
    ]  # fmt: skip


# ---------------------------------------------------------------- normalize


def cover_scale(width: int, height: int, *, bt709: bool = False) -> str:
    """Scale so the *display* picture (storage size x SAR) covers width x height; crop follows.

    Unlike `force_original_aspect_ratio`, this honours a non-square sample aspect ratio. `bt709`
    also converts the colour matrix/range in the same swscale pass (no-op for BT.709 input).
    """
    wide = f"gt(dar,{width}/{height})"
    color = ":out_color_matrix=bt709:out_range=tv" if bt709 else ""
    return (
        f"scale=w='if({wide},ceil({height}*dar/2)*2,{width})'"
        f":h='if({wide},{height},ceil({width}/dar/2)*2)':flags=bicubic{color}"
    )


def normalize_filter(
    *, width: int, height: int, fps: int, pad_s: float | None = None, bt709: bool = False
) -> str:
    """Cover-scale + centre-crop to exactly width x height, square pixels, constant fps, yuv420p.

    Rotation is handled before the graph (ffmpeg autorotates decoded frames). `pad_s` clones the
    last frame for that many seconds after the source ends (`tpad`); the output `-t` trims it.
    `bt709` converts to and tags BT.709 limited range (what `normalize_args` uses).
    """
    parts = [
        "setpts=PTS-STARTPTS",
        f"fps={fps}",
        cover_scale(width, height, bt709=bt709),
        f"crop={width}:{height}",
        "setsar=1",
        "format=yuv420p",
    ]
    if bt709:
        parts.append(COLOR_TAGS_FILTER)
    if pad_s is not None and pad_s > 0:
        parts.append(f"tpad=stop_mode=clone:stop_duration={fmt(pad_s)}")
    return ",".join(parts)


def normalize_args(
    src: Path,
    dest: Path,
    *,
    width: int,
    height: int,
    fps: int = 30,
    duration_s: float | None = None,
    crf: int = 20,
    preset: str = "veryfast",
    keyframes: Sequence[int] = (),
) -> list[str]:
    """One ffmpeg pass from any phone/camera clip to a normalized, concat-ready H.264 MP4 (no audio).

    Every normalized clip of a size has the same SPS/PPS, closed GOPs of at most one second
    (keyframes on the frames `keyframes`, where the planned composition starts or stops changing
    the clip, see `smart_plan.clip_keyframes`) and the same mp4 timescale, so spans of them can be
    stream-copied next to re-encoded spans (`smart_render`).
    """
    vf = normalize_filter(width=width, height=height, fps=fps, pad_s=duration_s, bt709=True)
    args = ["-i", str(src), "-map", "0:v:0", "-vf", vf]
    if duration_s is not None:
        args += ["-t", fmt(duration_s)]
    args += x264_args(preset=preset, crf=crf, fps=fps, keyframes=keyframes)
    args += COLOR_ARGS
    args += [
        "-an", "-sn", "-dn",
        "-map_metadata", "-1",
        "-video_track_timescale", str(VIDEO_TIMESCALE),
        *mp4_output(dest, final=False),
    ]  # fmt: skip
    return args


# ---------------------------------------------------------------- compose


def xfade_offsets(durations: list[float], transition_s: float) -> list[float]:
    """Offset of each xfade in the chain: offset_i = d_0 + ... + d_(i-1) - i * transition (i >= 1)."""
    offsets: list[float] = []
    total = 0.0
    for i, duration in enumerate(durations[:-1], start=1):
        total += duration
        offsets.append(round(total - i * transition_s, 6))
    return offsets


def timeline_starts(durations: list[float], transition_s: float) -> list[float]:
    """Where each clip starts on the output timeline (clip i > 0 starts at its xfade offset)."""
    return [0.0, *xfade_offsets(durations, transition_s)]


@dataclass(frozen=True)
class TimedOverlay:
    """A (small, transparent) PNG placed at x, y between start_s and end_s, faded in/out over fade_s."""

    image: Path
    x: int
    y: int
    start_s: float
    end_s: float
    fade_s: float = 0.4


@dataclass(frozen=True)
class ComposePlan:
    clips: list[Path]
    durations: list[float]
    width: int
    height: int
    fps: int = 30
    transition: str = "fade"
    transition_s: float = 0.5
    overlays: list[TimedOverlay] = field(default_factory=list)
    end_card: Path | None = None  # opaque full-frame PNG, xfaded in after the last clip
    end_card_s: float = 0.0
    music: Path | None = None
    music_volume: float = 0.6
    fade_in_s: float = 0.0
    fade_out_s: float = 0.0
    loudnorm: str | None = None  # the music bed's second-pass loudnorm filter (media/loudness.py)
    rescale: list[bool] = field(default_factory=list)  # per clip: not already width x height
    # Per clip, where to start reading it (seconds; frame-accurate input seek). Empty = all from 0.
    # Smart rendering uses it to render a window of the timeline from the middle of clips.
    clip_seeks: list[float] = field(default_factory=list)

    @property
    def total_s(self) -> float:
        total = sum(self.durations) - max(len(self.durations) - 1, 0) * self.transition_s
        if self.end_card is not None and self.end_card_s > 0:
            total += self.end_card_s
        return round(total, 6)


def _frames(seconds: float, fps: int) -> int:
    return max(1, round(seconds * fps))


def _still_chain(label_in: str, seconds: float, fps: int, *, start_s: float = 0.0) -> str:
    """Turn a single decoded image into `seconds` of frames at `fps`, starting at start_s."""
    n = _frames(seconds, fps)
    start = round(start_s * fps)
    return f"[{label_in}]settb=1/{fps},loop=loop={n - 1}:size=1:start=0,setpts=N+{start},fps={fps}"


def compose_filter(plan: ComposePlan) -> tuple[str, str, str | None]:
    """The filter_complex for `plan`; returns (graph, video_label, audio_label or None).

    Input order (see `compose_args`): clips, overlay PNGs, end card PNG, music.
    """
    fps, w, h = plan.fps, plan.width, plan.height
    n = len(plan.clips)
    lines: list[str] = []
    for i, duration in enumerate(plan.durations):
        chain = [f"[{i}:v]setpts=PTS-STARTPTS", f"fps={fps}"]
        if plan.rescale and plan.rescale[i]:
            chain += [cover_scale(w, h), f"crop={w}:{h}"]
        chain += [
            "setsar=1",
            "format=yuv420p",
            f"tpad=stop_mode=clone:stop_duration={fmt(duration)}",
            f"trim=duration={fmt(duration)}",
            f"setpts=PTS-STARTPTS[c{i}]",
        ]
        lines.append(",".join(chain))

    segments = [f"c{i}" for i in range(n)]
    seg_durations = list(plan.durations)
    next_input = n + len(plan.overlays)
    if plan.end_card is not None and plan.end_card_s > 0:
        # The end card lasts end_card_s + transition so that, after its xfade, it adds end_card_s.
        card_s = plan.end_card_s + (plan.transition_s if n else 0.0)
        lines.append(_still_chain(f"{next_input}:v", card_s, fps) + ",setsar=1,format=yuv420p[endcard]")
        segments.append("endcard")
        seg_durations.append(card_s)
        next_input += 1

    current = segments[0]
    for k, offset in enumerate(xfade_offsets(seg_durations, plan.transition_s), start=1):
        out = f"x{k}"
        lines.append(
            f"[{current}][{segments[k]}]xfade=transition={plan.transition}:"
            f"duration={fmt(plan.transition_s)}:offset={fmt(offset)}[{out}]"
        )
        current = out

    for j, ov in enumerate(plan.overlays):
        length = max(ov.end_s - ov.start_s, 1.0 / fps)
        fade = min(ov.fade_s, length / 2)
        chain = _still_chain(f"{n + j}:v", length, fps, start_s=ov.start_s) + ",format=yuva420p"
        if fade > 0:
            chain += (
                f",fade=t=in:st={fmt(ov.start_s)}:d={fmt(fade)}:alpha=1"
                f",fade=t=out:st={fmt(ov.end_s - fade)}:d={fmt(fade)}:alpha=1"
            )
        lines.append(chain + f"[o{j}]")
        out = f"v{j}"
        lines.append(f"[{current}][o{j}]overlay=x={ov.x}:y={ov.y}:eof_action=pass:format=yuv420[{out}]")
        current = out

    total = plan.total_s
    tail = [f"trim=duration={fmt(total)}"]
    if plan.fade_in_s > 0:
        tail.append(f"fade=t=in:st=0:d={fmt(plan.fade_in_s)}")
    if plan.fade_out_s > 0:
        tail.append(f"fade=t=out:st={fmt(max(total - plan.fade_out_s, 0))}:d={fmt(plan.fade_out_s)}")
    tail.append("format=yuv420p")
    lines.append(f"[{current}]" + ",".join(tail) + "[vout]")

    audio = None
    if plan.music is not None:
        lines.append(music_chain(plan, next_input))
        audio = "aout"
    return ";\n".join(lines), "vout", audio


def music_chain(plan: ComposePlan, input_index: int, label: str = "aout") -> str:
    """The music bed: looped input trimmed to the timeline, resampled, volume, fade in/out."""
    total = plan.total_s
    achain = [
        f"[{input_index}:a]atrim=duration={fmt(total)}",
        "asetpts=PTS-STARTPTS",
        "aformat=sample_rates=48000:channel_layouts=stereo",
        f"volume={fmt(plan.music_volume)}",
    ]
    if plan.fade_in_s > 0:
        achain.append(f"afade=t=in:st=0:d={fmt(plan.fade_in_s)}")
    fade_out = max(plan.fade_out_s, 0.5)
    achain.append(f"afade=t=out:st={fmt(max(total - fade_out, 0))}:d={fmt(fade_out)}")
    if plan.loudnorm:
        achain.append(plan.loudnorm)
    return ",".join(achain) + f"[{label}]"


# 124k, not 128k: the measured rate of a loud bed overshoots the nominal one, and Instagram caps at 128 kb/s
AUDIO_ARGS = ["-c:a", "aac", "-b:a", "124k", "-ar", "48000", "-ac", "2"]


def _clip_inputs(plan: ComposePlan) -> list[str]:
    args: list[str] = []
    for i, clip in enumerate(plan.clips):
        if plan.clip_seeks:
            # Half a frame early so float rounding never drops the first wanted frame; read one
            # frame more than needed (trim in the graph cuts exactly).
            start = plan.clip_seeks[i]
            if start > 0:
                args += ["-ss", fmt(max(start - 0.5 / plan.fps, 0.0))]
            args += ["-t", fmt(plan.durations[i] + 1.0 / plan.fps)]
        args += ["-i", str(clip)]
    return args


def compose_args(
    plan: ComposePlan,
    dest: Path,
    *,
    preset: str = "veryfast",
    crf: int = 23,
    faststart: bool = True,
    decoder_threads: int | None = None,
    encoder_threads: int | None = None,
) -> list[str]:
    """Full ffmpeg arguments for one composition pass (clips, overlays, end card, music -> dest).

    `decoder_threads` caps each clip decoder's threads (1 = no frame threading: fewer frames held
    in memory; one decoder thread per clip is plenty to feed x264); `encoder_threads` caps x264's.
    """
    args: list[str] = []
    for arg in _clip_inputs(plan):
        if arg == "-i" and decoder_threads:
            args += ["-threads", str(decoder_threads)]
        args.append(arg)
    for ov in plan.overlays:
        args += ["-i", str(ov.image)]
    if plan.end_card is not None and plan.end_card_s > 0:
        args += ["-i", str(plan.end_card)]
    if plan.music is not None:
        args += ["-stream_loop", "-1", "-i", str(plan.music)]
    graph, video, audio = compose_filter(plan)
    args += ["-filter_complex", graph, "-map", f"[{video}]"]
    if audio:
        args += ["-map", f"[{audio}]", *AUDIO_ARGS]
    else:
        args += ["-an"]
    args += x264_args(preset=preset, crf=crf, fps=plan.fps)
    if encoder_threads:
        args += ["-threads", str(encoder_threads)]
    args += COLOR_ARGS
    args += [
        "-r", str(plan.fps),
        "-t", fmt(plan.total_s),
        "-sn", "-dn",
        "-map_metadata", "-1",
        "-video_track_timescale", str(VIDEO_TIMESCALE),
    ]  # fmt: skip
    return [*args, *mp4_output(dest, faststart=faststart, final=faststart)]


# ---------------------------------------------------------------- smart rendering (the splicing commands: smart/splicing.py)


def music_input(plan: ComposePlan) -> list[str]:
    """The music file, looped (the chain trims it to the timeline)."""
    return ["-stream_loop", "-1", "-i", str(plan.music)]


def music_args(plan: ComposePlan, dest: Path) -> list[str]:
    """The music bed alone (looped, trimmed, faded), encoded to an .m4a for a stream-copy join."""
    return [
        *music_input(plan),
        "-filter_complex", music_chain(plan, 0), "-map", "[aout]", *AUDIO_ARGS,
        "-vn", "-sn", "-dn", "-map_metadata", "-1", *mp4_output(dest, faststart=False, final=False),
    ]  # fmt: skip


# ---------------------------------------------------------------- thumbnails


def thumbnail_args(video: Path, dest: Path, *, at_s: float, width: int | None = None) -> list[str]:
    """Fast seek (-ss before -i), one frame, JPEG quality 3."""
    args = ["-ss", fmt(max(at_s, 0.0)), "-i", str(video), "-map", "0:v:0", "-frames:v", "1"]
    vf = []
    if width:
        vf.append(f"scale=w={width}:h=-2")
    vf.append("format=yuvj420p")
    args += ["-vf", ",".join(vf), "-q:v", "3", "-an"]
    return [*args, "-c:v", "mjpeg", "-f", "image2", "-update", "1", str(dest)]
