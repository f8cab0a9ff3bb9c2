"""Every ffmpeg filter graph and encoding argument list the media code runs is built here (the
stream-copy commands that splice smart-rendered pieces are in `smart/splicing.py`, the audio
chains of the music and the narration in `mix.py`).

Pure string building (no subprocesses, no file access) so it can be unit-tested. The callers in
`normalize.py`, `compose.py`, `smart/render.py` and `thumbnails.py` only run what these builders
return.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from zencourt_pipeline.media.ffargs import fmt, mp4_output
from zencourt_pipeline.media.mix import AUDIO_ARGS, audio_chain, audio_inputs
from zencourt_pipeline.media.timeline.assets import RenderAssets
from zencourt_pipeline.media.timeline.model import ImageElement, TextElement, Timeline

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


def cover_scale(width: int, height: int, *, bt709: bool = False, flags: str = "bicubic") -> str:
    """Scale so the *display* picture (storage size x SAR) covers width x height; crop follows.

    Unlike `force_original_aspect_ratio`, this honours a non-square sample aspect ratio. `bt709`
    also converts the colour matrix/range in the same swscale pass (no-op for BT.709 input).
    `flags`: the swscale algorithm (composition's rescale of ~720p clips to a 1080p output: lanczos).
    """
    wide = f"gt(dar,{width}/{height})"
    color = ":out_color_matrix=bt709:out_range=tv" if bt709 else ""
    return (
        f"scale=w='if({wide},ceil({height}*dar/2)*2,{width})'"
        f":h='if({wide},{height},ceil({width}/dar/2)*2)':flags={flags}{color}"
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
    start_s: float = 0.0,
) -> list[str]:
    """One ffmpeg pass from any phone/camera clip to a normalized, concat-ready H.264 MP4 (no audio),
    from `start_s` into the source (a given clip's in point: an input seek, frame-accurate as it re-encodes).

    Every normalized clip of a size has the same SPS/PPS, closed GOPs of at most one second
    (keyframes on the frames `keyframes`, where the planned composition starts or stops changing
    the clip, see `smart_plan.clip_keyframes`) and the same mp4 timescale, so spans of them can be
    stream-copied next to re-encoded spans (`smart_render`).
    """
    vf = normalize_filter(width=width, height=height, fps=fps, pad_s=duration_s, bt709=True)
    args = ["-ss", fmt(start_s)] if start_s > 0 else []
    args += ["-i", str(src), "-map", "0:v:0", "-vf", vf]
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


# ---------------------------------------------------------------- compose (reads the Timeline; seconds only here)

RESCALE_FLAGS = "lanczos"  # clips scaled to another output size (renditions upscale ~720p clips to 1080p)


def cover_reframe(width: int, height: int, focus_x: float = 0.5, focus_y: float = 0.5, *, flags: str = RESCALE_FLAGS) -> str:
    """A clip of another size (or shape) than width x height brought to it: the picture cropped to
    the output's aspect (display aspect: the SAR is honoured) around the focus point (0..1 of the
    picture, kept as near the middle as the picture allows), then scaled to exactly width x height.

    The framing of a cover scale then a centred (or focus) crop, but the crop comes first, so the
    scaler only makes the pixels that are kept (a 16:9 clip reframed to 9:16 scaled to 3414x1920 and
    cropped to 1080x1920 cost three times the scaling). The crop is whole even pixels of the
    source: the aspect is kept to within one source pixel (0.25% for a 720p clip to 9:16)."""
    wide = f"gt(dar,{width}/{height})"
    w = f"if({wide},min(iw,2*round(ih*{width}/{height}/sar/2)),iw)"
    h = f"if({wide},ih,min(ih,2*round(iw*sar*{height}/{width}/2)))"
    crop = f"crop=w='{w}':h='{h}'"
    if (focus_x, focus_y) != (0.5, 0.5):
        crop += f":x='max(0,min(iw-ow,iw*{fmt(focus_x)}-ow/2))':y='max(0,min(ih-oh,ih*{fmt(focus_y)}-oh/2))'"
    return f"{crop},scale={width}:{height}:flags={flags}"


def _still_chain(label_in: str, frames: int, fps: int, *, start: int = 0, convert: str = "") -> str:
    """Turn a single decoded image into `frames` frames at `fps`, starting at output frame `start`;
    `convert` (filters) is applied to the image once, before it is repeated."""
    pre = f"{convert}," if convert else ""
    return f"[{label_in}]{pre}settb=1/{fps},loop=loop={max(frames, 1) - 1}:size=1:start=0,setpts=N+{start},fps={fps}"


def _overlay_elements(tl: Timeline) -> list[TextElement | ImageElement]:
    """The timed elements drawn over the video track, bottom to top (one `RenderAssets` layer each)."""
    return [*tl.texts, *tl.images]


def compose_filter(tl: Timeline, assets: RenderAssets) -> tuple[str, str, str | None]:
    """The filter_complex for `tl`; returns (graph, video_label, audio_label or None).

    Input order (see `compose_args`): clips, overlay PNGs (`assets.layers`), end card PNG, the
    audio tracks (`mix.audio_inputs`: music, narration). The graph in stages: each clip at the
    output's format, the video track crossfaded into the end card, the overlays on it, the finish
    (length and fades), the audio.
    """
    n, elements = len(tl.clips), _overlay_elements(tl)
    lines = [_clip_chain(tl, i, rescale=bool(assets.rescale and assets.rescale[i])) for i in range(n)]
    segments = [f"c{i}" for i in range(n)]
    next_input = n + len(elements)
    if tl.end_card is not None and assets.end_card is not None:
        lines.append(_end_card_chain(tl, next_input))
        segments.append("endcard")
        next_input += 1
    crossfades, current = _crossfades(tl, segments)
    overlaid, current = _overlays(tl, elements, assets, current, first_input=n)
    lines += [*crossfades, *overlaid, _finish(tl, current) + "[vout]"]
    audio = None
    if tl.audio and assets.soundtrack is None:  # an encoded soundtrack is muxed as it is (`compose_args`)
        lines.append(audio_chain(tl, assets, next_input))
        audio = "aout"
    return ";\n".join(lines), "vout", audio


def _clip_chain(tl: Timeline, i: int, *, rescale: bool) -> str:
    """Clip `i` at the output's rate, size and pixel format, exactly its frames long, as `[c{i}]`."""
    clip, sec = tl.clips[i], tl.seconds
    chain = [f"[{i}:v]setpts=PTS-STARTPTS", f"fps={tl.fps}"]
    if rescale:
        chain.append(cover_reframe(tl.width, tl.height, clip.focus_x, clip.focus_y))
    chain += [
        "setsar=1",
        "format=yuv420p",
        f"tpad=stop_mode=clone:stop_duration={fmt(sec(clip.frames))}",
        f"trim=duration={fmt(sec(clip.frames))}",
        f"setpts=PTS-STARTPTS[c{i}]",
    ]
    return ",".join(chain)


def _end_card_chain(tl: Timeline, input_index: int) -> str:
    """The end card PNG as a still `[endcard]`: its frames + the transition into it, so that after
    its xfade it adds its frames."""
    card = tl.end_card.duration_frames + tl.clips[-1].transition.frames  # type: ignore[union-attr]
    return _still_chain(f"{input_index}:v", card, tl.fps, convert="setsar=1,format=yuv420p") + "[endcard]"


def _crossfades(tl: Timeline, segments: list[str]) -> tuple[list[str], str]:
    """The video track: each segment crossfaded into the next with its clip's transition, `[x{k}]`;
    returns the xfade lines and the track's label."""
    sec, lines, current, offset = tl.seconds, [], segments[0], 0
    for k in range(1, len(segments)):
        into = tl.clips[k - 1].transition
        offset += tl.clips[k - 1].frames - into.frames  # type: ignore[union-attr]
        lines.append(
            f"[{current}][{segments[k]}]xfade=transition={into.kind}:"  # type: ignore[union-attr]
            f"duration={fmt(sec(into.frames))}:offset={fmt(sec(offset))}[x{k}]"  # type: ignore[union-attr]
        )
        current = f"x{k}"
    return lines, current


def _overlays(
    tl: Timeline, elements: list[TextElement | ImageElement], assets: RenderAssets, current: str, *, first_input: int
) -> tuple[list[str], str]:
    """Each overlay PNG as a still over its frames, faded in and out, laid over the track at its
    layer's position (`[o{j}]`, `[v{j}]`); returns the lines and the overlaid track's label."""
    sec, lines = tl.seconds, []
    for j, (element, layer) in enumerate(zip(elements, assets.layers, strict=True)):
        fade = element.fade_frames
        chain = _still_chain(
            f"{first_input + j}:v", element.duration_frames, tl.fps, start=element.start_frame, convert="format=yuva420p"
        )
        if fade > 0:
            chain += (
                f",fade=t=in:st={fmt(sec(element.start_frame))}:d={fmt(sec(fade))}:alpha=1"
                f",fade=t=out:st={fmt(sec(element.end_frame - fade))}:d={fmt(sec(fade))}:alpha=1"
            )
        lines.append(chain + f"[o{j}]")
        lines.append(f"[{current}][o{j}]overlay=x={layer.x}:y={layer.y}:eof_action=pass:format=yuv420[v{j}]")
        current = f"v{j}"
    return lines, current


def _finish(tl: Timeline, current: str) -> str:
    """The track `current` trimmed to the timeline's length with its fade in and out (unlabelled)."""
    sec, total = tl.seconds, tl.total_frames
    tail = [f"trim=duration={fmt(sec(total))}"]
    if tl.fade_in_frames > 0:
        tail.append(f"fade=t=in:st=0:d={fmt(sec(tl.fade_in_frames))}")
    if tl.fade_out_frames > 0:
        tail.append(f"fade=t=out:st={fmt(sec(total - tl.fade_out_frames))}:d={fmt(sec(tl.fade_out_frames))}")
    tail.append("format=yuv420p")
    return f"[{current}]" + ",".join(tail)


def _clip_inputs(tl: Timeline) -> list[str]:
    """Each clip from its in point (frame-accurate input seek half a frame early, so rounding never
    drops the first wanted frame), reading one frame more than it shows (the graph trims exactly)."""
    args: list[str] = []
    for clip in tl.clips:
        if clip.in_frame > 0:
            args += ["-ss", fmt(tl.seconds(clip.in_frame) - 0.5 / tl.fps)]
        args += ["-t", fmt(tl.seconds(clip.frames + 1)), "-i", clip.source]
    return args


def compose_args(
    tl: Timeline,
    assets: RenderAssets,
    dest: Path,
    *,
    preset: str = "veryfast",
    crf: int = 23,
    faststart: bool = True,
    decoder_threads: int | None = None,
    encoder_threads: int | None = None,
) -> list[str]:
    """Full ffmpeg arguments for one composition pass of `tl` (clips, overlays, end card, audio -> dest).

    `decoder_threads` caps each clip decoder's threads (1 = no frame threading: fewer frames held
    in memory; one decoder thread per clip is plenty to feed x264); `encoder_threads` caps x264's.
    """
    args: list[str] = []
    for arg in _clip_inputs(tl):
        if arg == "-i" and decoder_threads:
            args += ["-threads", str(decoder_threads)]
        args.append(arg)
    for layer in assets.layers:
        args += ["-i", str(layer.image)]
    if tl.end_card is not None and assets.end_card is not None:
        args += ["-i", str(assets.end_card)]
    soundtrack = tl.audio and assets.soundtrack is not None
    audio_input = args.count("-i")  # the first audio input's index (after the clips, layers and end card)
    if soundtrack:
        args += ["-i", str(assets.soundtrack)]
    else:
        args += audio_inputs(tl)
    graph, video, audio = compose_filter(tl, assets)
    args += ["-filter_complex", graph, "-map", f"[{video}]"]
    if soundtrack:
        args += ["-map", f"{audio_input}:a:0", "-c:a", "copy"]
    elif audio:
        args += ["-map", f"[{audio}]", *AUDIO_ARGS]
    else:
        args += ["-an"]
    args += x264_args(preset=preset, crf=crf, fps=tl.fps)
    if encoder_threads:
        args += ["-threads", str(encoder_threads)]
    args += COLOR_ARGS
    # the length: a soundtrack is muxed whole, as the stream-copy join does (`-t` or `-frames:v` would
    # end the file before its last packets); the graph's final trim bounds the video
    length = [] if soundtrack else ["-t", fmt(tl.seconds(tl.total_frames))]
    args += [
        "-r", str(tl.fps),
        *length,
        "-sn", "-dn",
        "-map_metadata", "-1",
        "-video_track_timescale", str(VIDEO_TIMESCALE),
    ]  # fmt: skip
    return [*args, *mp4_output(dest, faststart=faststart, final=faststart)]


# ---------------------------------------------------------------- smart rendering: the splicing commands are in
# smart/splicing.py, the audio they join (`audio_args`) in mix.py


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
