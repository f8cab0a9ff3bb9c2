"""The references the bench measures the media engine against (see the package docstring).

Each reference is written out by hand here, independent of `zencourt_pipeline.media.graphs`, with
the same output settings as ours: H.264 High (libx264 veryfast), yuv420p, a keyframe every second,
CRF 23 for compositions / 20 for normalized clips, AAC 128k 48 kHz stereo music.
"""

from __future__ import annotations

from pathlib import Path

from zencourt_pipeline.media.graphs import ComposePlan

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


def compose_reference_args(plan: ComposePlan, dest: Path) -> list[str]:
    """A hand-written ffmpeg graph doing the work of `plan` in one pass.

    Clips: scale + fps + yuv420p, chained `xfade` at the plan's offsets. Each overlay PNG is looped
    (`-loop 1`) for its duration, alpha-faded in and out, shifted to its start time and overlaid.
    Fade from/to black, music trimmed to the timeline with volume and fades, x264 + AAC.
    """
    w, h, fps, t = plan.width, plan.height, plan.fps, plan.transition_s
    total = plan.total_s
    args: list[str] = []
    for clip in plan.clips:
        args += ["-i", str(clip)]
    for ov in plan.overlays:
        args += ["-loop", "1", "-framerate", str(fps), "-t", _num(ov.end_s - ov.start_s), "-i", str(ov.image)]
    music_index = len(plan.clips) + len(plan.overlays)
    if plan.music is not None:
        args += ["-stream_loop", "-1", "-i", str(plan.music)]
    graph = []
    for i, duration in enumerate(plan.durations):
        graph.append(
            f"[{i}:v]scale={w}:{h},fps={fps},format=yuv420p,setsar=1,trim=duration={_num(duration)}[v{i}]"
        )
    current, offset = "v0", 0.0
    for i in range(1, len(plan.clips)):
        offset += plan.durations[i - 1] - t
        graph.append(
            f"[{current}][v{i}]xfade=transition={plan.transition}:duration={_num(t)}:offset={_num(offset)}[x{i}]"
        )
        current = f"x{i}"
    for j, ov in enumerate(plan.overlays):
        k = len(plan.clips) + j
        length = ov.end_s - ov.start_s
        fade = min(ov.fade_s, length / 2)
        chain = f"[{k}:v]format=yuva420p"
        if fade > 0:
            chain += (
                f",fade=t=in:st=0:d={_num(fade)}:alpha=1"
                f",fade=t=out:st={_num(length - fade)}:d={_num(fade)}:alpha=1"
            )
        graph.append(chain + f",setpts=PTS+{_num(ov.start_s)}/TB[o{j}]")
        graph.append(f"[{current}][o{j}]overlay={ov.x}:{ov.y}:eof_action=pass[y{j}]")
        current = f"y{j}"
    tail = []
    if plan.fade_in_s > 0:
        tail.append(f"fade=t=in:st=0:d={_num(plan.fade_in_s)}")
    if plan.fade_out_s > 0:
        tail.append(f"fade=t=out:st={_num(total - plan.fade_out_s)}:d={_num(plan.fade_out_s)}")
    graph.append(f"[{current}]" + (",".join(tail) or "null") + "[vout]")
    out = ["-map", "[vout]"]
    if plan.music is not None:
        fade_out = max(plan.fade_out_s, 0.5)
        graph.append(
            f"[{music_index}:a]atrim=0:{_num(total)},aformat=sample_rates=48000:channel_layouts=stereo,"
            f"volume={_num(plan.music_volume)},afade=t=in:d={_num(plan.fade_in_s or 0.01)},"
            f"afade=t=out:st={_num(total - fade_out)}:d={_num(fade_out)}[aout]"
        )
        out += ["-map", "[aout]", "-c:a", "aac", "-b:a", "128k", "-ar", "48000", "-ac", "2"]
    return [
        *args, "-filter_complex", ";".join(graph), *out,
        *X264, "-crf", "23", "-r", str(fps), "-t", _num(total), "-movflags", "+faststart", str(dest),
    ]  # fmt: skip


def moviepy_compose(
    plan: ComposePlan,
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
    from moviepy import (
        AudioFileClip,
        CompositeVideoClip,
        TextClip,
        VideoFileClip,
        afx,
        concatenate_videoclips,
        vfx,
    )

    w, h, t = plan.width, plan.height, plan.transition_s
    sources = [VideoFileClip(str(p)) for p in plan.clips]
    parts = [c.subclipped(0, min(d, c.duration)) for c, d in zip(sources, plan.durations, strict=True)]
    parts = [parts[0]] + [p.with_effects([vfx.CrossFadeIn(t)]) for p in parts[1:]]
    video = concatenate_videoclips(parts, method="compose", padding=-t)
    layers = [video]
    size = max(12, round(min(w, h) * 0.075))
    layers.append(
        TextClip(font=font, text=title, font_size=size, color="white", bg_color=(0, 0, 0), margin=(20, 12))
        .with_start(0)
        .with_duration(title_seconds)
        .with_position(("center", "center"))
        .with_effects([vfx.CrossFadeIn(0.4), vfx.CrossFadeOut(0.4)])
    )
    for text, start, end in captions:
        layers.append(
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
    final = CompositeVideoClip(layers, size=(w, h)).with_duration(plan.total_s)
    final = final.with_effects([vfx.FadeIn(plan.fade_in_s), vfx.FadeOut(plan.fade_out_s)])
    if plan.music is not None:
        music = AudioFileClip(str(plan.music)).subclipped(0, plan.total_s)
        music = music.with_effects([afx.AudioFadeIn(plan.fade_in_s), afx.AudioFadeOut(plan.fade_out_s)])
        final = final.with_audio(music)
    try:
        final.write_videofile(
            str(dest), fps=plan.fps, codec="libx264", preset="veryfast", audio_codec="aac",
            audio_bitrate="128k", logger=None,
        )  # fmt: skip
    finally:
        final.close()
        for clip in sources:
            clip.close()
