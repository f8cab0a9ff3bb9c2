"""The references the bench measures the media engine against (see the package docstring).

Each reference is written out by hand here, independent of `zencourt_pipeline.media.graphs`, with
the same output settings as ours: H.264 High (libx264 veryfast), yuv420p, a keyframe every second,
CRF 23 for compositions / 20 for normalized clips, AAC 128k 48 kHz stereo music.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zencourt_pipeline.media.timeline.assets import RenderAssets
from zencourt_pipeline.media.timeline.model import Timeline

# The encoder flags every reference uses (spelled out: the references must not follow our builders).
X264 = [
    "-c:v", "libx264", "-preset", "veryfast", "-profile:v", "high", "-pix_fmt", "yuv420p",
    "-g", "30", "-keyint_min", "30", "-sc_threshold", "0",
    "-force_key_frames", "expr:gte(t,n_forced*1)", "-x264-params", "open-gop=0:stitchable=1",
]  # fmt: skip


def _num(value: float) -> str:
    return f"{value:.6f}".rstrip("0").rstrip(".") or "0"


def normalize_reference_args(src: Path, dest: Path, *, width: int, height: int, seconds: float) -> list[str]:
    """A bare one-pass normalize: fps, cover scale, centre crop, yuv420p, same x264 settings."""
    vf = (
        f"fps=30,scale={width}:{height}:force_original_aspect_ratio=increase,"
        f"crop={width}:{height},setsar=1,format=yuv420p"
    )
    return [
        "-i", str(src), "-map", "0:v:0", "-vf", vf, "-t", _num(seconds),
        *X264, "-crf", "20", "-an", "-movflags", "+faststart", str(dest),
    ]  # fmt: skip


def compose_reference_args(tl: Timeline, assets: RenderAssets, dest: Path) -> list[str]:
    """A hand-written ffmpeg graph doing the work of timeline `tl` (with its rendered PNGs) in one pass.

    Clips: scale + fps + yuv420p, chained `xfade` at the timeline's offsets. Each overlay PNG is
    looped (`-loop 1`) for its duration, alpha-faded in and out, shifted to its start time and
    overlaid. Fade from/to black, music trimmed to the timeline with volume and fades, x264 + AAC.
    """
    fps, total = tl.fps, tl.seconds(tl.total_frames)
    elements = [*tl.texts, *tl.images]
    args: list[str] = []
    for clip in tl.clips:
        args += ["-i", clip.source]
    for element, layer in zip(elements, assets.layers, strict=True):
        args += ["-loop", "1", "-framerate", str(fps), "-t", _num(tl.seconds(element.duration_frames)), "-i", str(layer.image)]
    if tl.music is not None:
        args += ["-stream_loop", "-1", "-i", tl.music.source]
    graph = _reference_video(tl, assets)
    out = ["-map", "[vout]"]
    if tl.music is not None:
        graph.append(_reference_music(tl, len(tl.clips) + len(elements)))
        out += ["-map", "[aout]", "-c:a", "aac", "-b:a", "128k", "-ar", "48000", "-ac", "2"]
    return [
        *args, "-filter_complex", ";".join(graph), *out,
        *X264, "-crf", "23", "-r", str(fps), "-t", _num(total), "-movflags", "+faststart", str(dest),
    ]  # fmt: skip


def _reference_video(tl: Timeline, assets: RenderAssets) -> list[str]:
    """The reference's video graph: the clips scaled and crossfaded, each PNG faded and overlaid at
    its start, the fades from and to black, as `[vout]`."""
    w, h, fps, sec = tl.width, tl.height, tl.fps, tl.seconds
    total = sec(tl.total_frames)
    elements = [*tl.texts, *tl.images]
    graph = []
    for i, clip in enumerate(tl.clips):
        graph.append(
            f"[{i}:v]scale={w}:{h},fps={fps},format=yuv420p,setsar=1,trim=duration={_num(sec(clip.frames))}[v{i}]"
        )
    current, offset = "v0", 0
    for i in range(1, len(tl.clips)):
        into = tl.clips[i - 1].transition
        offset += tl.clips[i - 1].frames - into.frames
        graph.append(
            f"[{current}][v{i}]xfade=transition={into.kind}:duration={_num(sec(into.frames))}:offset={_num(sec(offset))}[x{i}]"
        )
        current = f"x{i}"
    for j, (element, layer) in enumerate(zip(elements, assets.layers, strict=True)):
        k = len(tl.clips) + j
        length, fade = sec(element.duration_frames), sec(element.fade_frames)
        chain = f"[{k}:v]format=yuva420p"
        if fade > 0:
            chain += (
                f",fade=t=in:st=0:d={_num(fade)}:alpha=1"
                f",fade=t=out:st={_num(length - fade)}:d={_num(fade)}:alpha=1"
            )
        graph.append(chain + f",setpts=PTS+{_num(sec(element.start_frame))}/TB[o{j}]")
        graph.append(f"[{current}][o{j}]overlay={layer.x}:{layer.y}:eof_action=pass[y{j}]")
        current = f"y{j}"
    tail = []
    if tl.fade_in_frames > 0:
        tail.append(f"fade=t=in:st=0:d={_num(sec(tl.fade_in_frames))}")
    if tl.fade_out_frames > 0:
        tail.append(f"fade=t=out:st={_num(total - sec(tl.fade_out_frames))}:d={_num(sec(tl.fade_out_frames))}")
    graph.append(f"[{current}]" + (",".join(tail) or "null") + "[vout]")
    return graph


def _reference_music(tl: Timeline, music_index: int) -> str:
    """The reference's music chain: input `music_index` trimmed to the timeline, at its volume,
    faded in and out, as `[aout]`."""
    music, sec = tl.music, tl.seconds
    assert music is not None
    total, fade_out = sec(tl.total_frames), sec(music.fade_out_frames)
    volume = 10 ** (music.gain[0].db / 20)
    return (
        f"[{music_index}:a]atrim=0:{_num(total)},aformat=sample_rates=48000:channel_layouts=stereo,"
        f"volume={_num(volume)},afade=t=in:d={_num(sec(music.fade_in_frames) or 0.01)},"
        f"afade=t=out:st={_num(total - fade_out)}:d={_num(fade_out)}[aout]"
    )


def moviepy_compose(
    tl: Timeline,
    dest: Path,
    *,
    title: str,
    captions: list[tuple[str, float, float]],
    title_seconds: float,
    font: str | None,
) -> None:
    """The naive moviepy 2 composition the issue describes: `concatenate_videoclips` with
    `CrossFadeIn` (padding = -transition), a `TextClip` title and room-name captions composited on
    top, fade in/out, the music bed with audio fades, `write_videofile(libx264, veryfast)`."""
    from moviepy import AudioFileClip, CompositeVideoClip, afx, vfx

    sec, total = tl.seconds, tl.seconds(tl.total_frames)
    video, sources = _moviepy_clips(tl)
    layers = [video, *_moviepy_texts(tl, title=title, captions=captions, title_seconds=title_seconds, font=font)]
    final = CompositeVideoClip(layers, size=(tl.width, tl.height)).with_duration(total)
    fade_in, fade_out = sec(tl.fade_in_frames), sec(tl.fade_out_frames)
    final = final.with_effects([vfx.FadeIn(fade_in), vfx.FadeOut(fade_out)])
    if tl.music is not None:
        music = AudioFileClip(tl.music.source).subclipped(0, total)
        music = music.with_effects([afx.AudioFadeIn(fade_in), afx.AudioFadeOut(fade_out)])
        final = final.with_audio(music)
    try:
        final.write_videofile(
            str(dest), fps=tl.fps, codec="libx264", preset="veryfast", audio_codec="aac",
            audio_bitrate="128k", logger=None,
        )  # fmt: skip
    finally:
        final.close()
        for clip in sources:
            clip.close()


def _moviepy_clips(tl: Timeline) -> tuple[Any, list[Any]]:
    """The clips cut to their lengths and joined with `CrossFadeIn` (padding = -transition), and the
    opened sources (closed after writing)."""
    from moviepy import VideoFileClip, concatenate_videoclips, vfx

    sec = tl.seconds
    t = sec(tl.clips[0].transition.frames) if tl.clips[0].transition else 0.0
    sources = [VideoFileClip(c.source) for c in tl.clips]
    parts = [s.subclipped(0, min(sec(c.frames), s.duration)) for s, c in zip(sources, tl.clips, strict=True)]
    parts = [parts[0]] + [p.with_effects([vfx.CrossFadeIn(t)]) for p in parts[1:]]
    return concatenate_videoclips(parts, method="compose", padding=-t), sources


def _moviepy_texts(
    tl: Timeline, *, title: str, captions: list[tuple[str, float, float]], title_seconds: float, font: str | None
) -> list[Any]:
    """The `TextClip` title in the centre and the room-name captions at the bottom left, each faded in and out."""
    from moviepy import TextClip, vfx

    w, h = tl.width, tl.height
    size = max(12, round(min(w, h) * 0.075))
    texts = [
        TextClip(font=font, text=title, font_size=size, color="white", bg_color=(0, 0, 0), margin=(20, 12))
        .with_start(0)
        .with_duration(title_seconds)
        .with_position(("center", "center"))
        .with_effects([vfx.CrossFadeIn(0.4), vfx.CrossFadeOut(0.4)])
    ]
    for text, start, end in captions:
        texts.append(
            TextClip(
                font=font,
                text=text,
                font_size=size * 2 // 3,
                color="white",
                bg_color=(0, 0, 0),
                margin=(14, 8),
            )
            .with_start(start)
            .with_duration(end - start)
            .with_position((round(w * 0.04), round(h * 0.8)))
            .with_effects([vfx.CrossFadeIn(0.4), vfx.CrossFadeOut(0.4)])
        )
    return texts
