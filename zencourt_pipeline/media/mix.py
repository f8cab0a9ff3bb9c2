"""The audio of a composed video, built from the timeline's audio tracks (pure string building).

Each track (`AudioTrack`: the music bed, the narration) becomes one chain: trimmed to the timeline,
resampled to 48 kHz stereo, its gain automation (`gain_filter`: the music's ducking under the voice
is a gain automation the timeline carries, `timeline.narration.duck_points`), its fades, and, for a
track that is not looped, padded with silence to the timeline's end. One track is the audio as it
is; two are summed (`amix`, no normalization: the gains are the balance). The two-pass loudness
normalization (`assets.loudnorm`, measured by `loudness.measure_bed` over this same graph) comes
last, over the mix, so the delivered loudness is the whole mix's, not the bed's.

The full composition graph (`graphs.compose_filter`) and the audio-only encode that smart and
windowed rendering join by stream copy (`audio_args`) read the same chains: the audio is the same
whichever way the video was rendered.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from zencourt_pipeline.media.ffargs import fmt, mp4_output
from zencourt_pipeline.media.timeline.assets import RenderAssets
from zencourt_pipeline.media.timeline.model import AudioTrack, GainPoint, Timeline

# 124k, not 128k: the measured rate of a loud bed overshoots the nominal one, and Instagram caps at 128 kb/s
AUDIO_ARGS = ["-c:a", "aac", "-b:a", "124k", "-ar", "48000", "-ac", "2"]


def gain_filter(points: Sequence[GainPoint], fps: int) -> str:
    """`volume` for a gain automation: constant for one point, else linear between the points (dB)."""
    linear = [(p.frame / fps, 10 ** (p.db / 20)) for p in points]
    if len(linear) == 1:
        return f"volume={fmt(linear[0][1])}"
    expr = fmt(linear[-1][1])
    for (t0, v0), (t1, v1) in reversed(list(zip(linear, linear[1:], strict=False))):
        ramp = f"{fmt(v0)}+({fmt(v1 - v0)})*(t-{fmt(t0)})/{fmt(t1 - t0)}"
        expr = f"if(lt(t,{fmt(t1)}),{ramp},{expr})"
    expr = f"if(lt(t,{fmt(linear[0][0])}),{fmt(linear[0][1])},{expr})"
    return f"volume='{expr}':eval=frame"


def track_chain(tl: Timeline, track: AudioTrack, input_index: int) -> list[str]:
    """One track's filters (without labels): trimmed to the timeline, 48 kHz stereo, gain, fades,
    and silence after its end when it is not looped."""
    sec = tl.seconds
    total = tl.total_frames
    chain = [
        f"[{input_index}:a]atrim=duration={fmt(sec(total))}",
        "asetpts=PTS-STARTPTS",
        "aformat=sample_rates=48000:channel_layouts=stereo",
        gain_filter(track.gain, tl.fps),
    ]
    if track.fade_in_frames > 0:
        chain.append(f"afade=t=in:st=0:d={fmt(sec(track.fade_in_frames))}")
    if track.fade_out_frames > 0:
        chain.append(f"afade=t=out:st={fmt(sec(total - track.fade_out_frames))}:d={fmt(sec(track.fade_out_frames))}")
    if not track.loop:
        chain.append(f"apad=whole_dur={fmt(sec(total))}")
    return chain


def audio_chain(tl: Timeline, assets: RenderAssets, input_index: int, label: str = "aout") -> str:
    """The timeline's audio from its inputs (`audio_inputs`, the first at `input_index`) to `[label]`:
    each track's chain, their sum when there are two or more, then the loudness normalization."""
    tracks = tl.audio
    assert tracks, "a timeline without audio tracks has no audio chain"
    tail = [assets.loudnorm] if assets.loudnorm else []
    if len(tracks) == 1:
        return ",".join([*track_chain(tl, tracks[0], input_index), *tail]) + f"[{label}]"
    lines = [",".join(track_chain(tl, track, input_index + k)) + f"[a{k}]" for k, track in enumerate(tracks)]
    summed = "".join(f"[a{k}]" for k in range(len(tracks)))
    mix = f"amix=inputs={len(tracks)}:duration=longest:dropout_transition=0:normalize=0"
    lines.append(summed + ",".join([mix, *tail]) + f"[{label}]")
    return ";\n".join(lines)


def audio_inputs(tl: Timeline) -> list[str]:
    """The input arguments of the timeline's audio tracks, in their order (a looped one repeats)."""
    args: list[str] = []
    for track in tl.audio:
        args += [*(["-stream_loop", "-1"] if track.loop else []), "-i", track.source]
    return args


def audio_args(tl: Timeline, assets: RenderAssets, dest: Path) -> list[str]:
    """The timeline's audio alone, encoded to an .m4a for a stream-copy join (smart, windowed)."""
    return [
        *audio_inputs(tl),
        "-filter_complex", audio_chain(tl, assets, 0), "-map", "[aout]", *AUDIO_ARGS,
        "-vn", "-sn", "-dn", "-map_metadata", "-1", *mp4_output(dest, faststart=False, final=False),
    ]  # fmt: skip
