"""Does a file meet a destination's profile? Judged from the file itself, never from how it was made.

Facts come from the MP4 box walk (`mp4index`: top-level box order for `moov` before `mdat`,
`edts/elst` in any track, the video sample table for constant frame rate and closed GOPs) and
from ffmpeg's stream report (`ffmpeg.probe`: codecs and their profiles, pixel format, size, frame
rate, bit rates, audio sample rate and channels) and, with audio, its EBU R128 measurement
(`loudness.measure`: integrated loudness, true peak). `validate(path, profile)` lists each `Problem`
with the rule it breaks; `validate_targets` runs the house rules and every destination's profile.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path

from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.media import profiles
from zencourt_pipeline.media.errors import MediaError
from zencourt_pipeline.media.ffmpeg import VideoInfo, probe
from zencourt_pipeline.media.loudness import Loudness, measure
from zencourt_pipeline.media.mp4index import (
    BoxError,
    VideoTrackIndex,
    file_boxes,
    iter_boxes,
    read_video_index,
)
from zencourt_pipeline.media.profiles import Profile

_MAX_MOOV = 64 * 1024 * 1024


class Rule(enum.StrEnum):
    UNREADABLE = "unreadable"
    CONTAINER = "container"
    FASTSTART = "faststart"
    EDIT_LIST = "edit_list"
    VIDEO_CODEC = "video_codec"
    VIDEO_PROFILE = "video_profile"
    PIXEL_FORMAT = "pixel_format"
    FRAME_RATE = "frame_rate"
    CONSTANT_FRAME_RATE = "constant_frame_rate"
    CLOSED_GOP = "closed_gop"
    SIZE = "size"
    ASPECT = "aspect"
    VIDEO_BITRATE = "video_bitrate"
    AUDIO_CODEC = "audio_codec"
    AUDIO_SAMPLE_RATE = "audio_sample_rate"
    AUDIO_CHANNELS = "audio_channels"
    AUDIO_BITRATE = "audio_bitrate"
    LOUDNESS = "loudness"
    TRUE_PEAK = "true_peak"
    DURATION = "duration"
    FILE_SIZE = "file_size"


@dataclass(frozen=True, slots=True)
class Problem:
    rule: Rule
    message: str

    def __str__(self) -> str:
        return f"{self.rule}: {self.message}"


@dataclass(frozen=True, slots=True)
class Mp4Layout:
    top_level: tuple[str, ...]  # the top-level box types in file order
    edit_lists: tuple[str, ...]  # the handler ("vide", "soun", ...) of each track with an edts/elst box

    @property
    def faststart(self) -> bool:
        boxes = self.top_level
        return "moov" in boxes and "mdat" in boxes and boxes.index("moov") < boxes.index("mdat")


@dataclass(frozen=True, slots=True)
class Facts:
    """What the file says about itself."""

    layout: Mp4Layout
    info: VideoInfo
    index: VideoTrackIndex | None
    loudness: Loudness | None = None  # measured when the file has audio


def mp4_layout(path: Path) -> Mp4Layout:
    """The top-level box order and the tracks carrying an edit list; MediaError when not an MP4."""
    path = Path(path)
    size = path.stat().st_size
    kinds: list[str] = []
    moov = b""
    with open(path, "rb") as fh:
        try:
            for box in file_boxes(fh, size):
                kinds.append(box.kind.decode("latin-1"))
                if box.kind == b"moov" and box.size <= _MAX_MOOV and box.end <= size:
                    fh.seek(box.offset + box.header)
                    moov = fh.read(box.size - box.header)
        except BoxError as exc:
            raise MediaError(ErrorCode.INVALID_INPUT, f"{path.name}: {exc}") from exc
    edited = []
    for kind, start, end in iter_boxes(moov, 0, len(moov)):
        if kind != b"trak":
            continue
        children = {k: (s, e) for k, s, e in iter_boxes(moov, start, end)}
        edts = children.get(b"edts")
        if edts is None or not any(k == b"elst" for k, _, _ in iter_boxes(moov, *edts)):
            continue
        handler = "?"
        if b"mdia" in children:
            for k, s, _ in iter_boxes(moov, *children[b"mdia"]):
                if k == b"hdlr":
                    handler = moov[s + 8 : s + 12].decode("latin-1")
        edited.append(handler)
    return Mp4Layout(tuple(kinds), tuple(edited))


def read_facts(path: Path) -> Facts:
    """Box layout, ffmpeg's stream report and the video sample index of `path`."""
    layout = mp4_layout(path)
    info = probe(path)
    try:
        index = read_video_index(path)
    except MediaError:
        index = None
    return Facts(layout, info, index, measure(path) if info.has_audio else None)


def validate(path: Path, profile: Profile, facts: Facts | None = None) -> list[Problem]:
    """What about the file at `path` breaks `profile` (empty: it meets it)."""
    try:
        facts = facts or read_facts(path)
    except (MediaError, OSError) as exc:
        return [Problem(Rule.UNREADABLE, str(getattr(exc, "message", exc)))]
    return _check(facts, profile, house=profile is profiles.HOUSE)


def validate_targets(path: Path, destinations: list[profiles.Destination]) -> dict[str, list[Problem]]:
    """The house rules and each destination's profile: {profile name: problems}."""
    try:
        facts = read_facts(path)
    except (MediaError, OSError) as exc:
        return {"house": [Problem(Rule.UNREADABLE, str(getattr(exc, "message", exc)))]}
    chosen = [profiles.HOUSE, *(profiles.PROFILES[d] for d in destinations)]
    return {str(p.name): validate(path, p, facts) for p in chosen}


def _check(facts: Facts, p: Profile, *, house: bool) -> list[Problem]:
    info, index, layout = facts.info, facts.index, facts.layout
    problems: list[Problem] = []

    def bad(rule: Rule, message: str) -> None:
        problems.append(Problem(rule, message))

    container = "mp4" if layout.top_level[:1] == ("ftyp",) else "unknown"
    if container not in p.containers:
        bad(Rule.CONTAINER, f"{container} is not one of {sorted(p.containers)}")
    if p.faststart and not layout.faststart:
        bad(Rule.FASTSTART, f"moov is not before mdat (top-level boxes {'/'.join(layout.top_level)})")
    if p.no_edit_lists and layout.edit_lists:
        bad(Rule.EDIT_LIST, f"edit list (edts/elst) in the {', '.join(layout.edit_lists)} track(s)")
    if info.codec not in p.video_codecs:
        bad(Rule.VIDEO_CODEC, f"video codec {info.codec} is not one of {sorted(p.video_codecs)}")
    if house and info.video_profile != profiles.HOUSE_VIDEO_PROFILE:
        bad(Rule.VIDEO_PROFILE, f"H.264 profile {info.video_profile}, not {profiles.HOUSE_VIDEO_PROFILE}")
    if (house or p.closed_gops) and info.pix_fmt != profiles.HOUSE_PIX_FMT:
        bad(Rule.PIXEL_FORMAT, f"pixel format {info.pix_fmt}, not {profiles.HOUSE_PIX_FMT} (4:2:0)")
    fps = index.fps if index is not None and index.frame_delta else info.fps
    if p.min_fps is not None and fps < p.min_fps - 0.01:
        bad(Rule.FRAME_RATE, f"{fps:g} fps below {p.min_fps:g} fps")
    if p.max_fps is not None and fps > p.max_fps + 0.01:
        bad(Rule.FRAME_RATE, f"{fps:g} fps above {p.max_fps:g} fps")
    if p.constant_fps and (index is None or index.frame_delta is None):
        bad(Rule.CONSTANT_FRAME_RATE, "the video's frame durations vary (variable frame rate)")
    if p.closed_gops and (index is None or not index.closed_gops):
        bad(Rule.CLOSED_GOP, "a GOP shows frames across its keyframe (open GOP)")
    _check_size(info, p, bad)
    if p.max_video_kbps is not None and info.video_kbps and info.video_kbps > p.max_video_kbps:
        bad(Rule.VIDEO_BITRATE, f"video {info.video_kbps} kb/s above {p.max_video_kbps} kb/s")
    if info.has_audio:
        _check_audio(info, p, house, bad)
        _check_loudness(facts.loudness, p, bad)
    if p.min_duration_s is not None and info.duration < p.min_duration_s:
        bad(Rule.DURATION, f"{info.duration:.2f} s shorter than {p.min_duration_s:g} s")
    if p.max_duration_s is not None and info.duration > p.max_duration_s:
        bad(Rule.DURATION, f"{info.duration:.2f} s longer than {p.max_duration_s:g} s")
    if p.max_bytes is not None and info.size_bytes > p.max_bytes:
        bad(Rule.FILE_SIZE, f"{info.size_bytes} bytes above {p.max_bytes}")
    return problems


def _check_size(info: VideoInfo, p: Profile, bad) -> None:
    sides = (info.width, info.height)
    if p.min_side_px is not None and min(sides) < p.min_side_px:
        bad(Rule.SIZE, f"{info.width}x{info.height}: a side below {p.min_side_px} px")
    if p.max_side_px is not None and max(sides) > p.max_side_px:
        bad(Rule.SIZE, f"{info.width}x{info.height}: a side above {p.max_side_px} px")
    if p.max_width_px is not None and info.width > p.max_width_px:
        bad(Rule.SIZE, f"{info.width} px wide, above {p.max_width_px} px")
    if not profiles.aspect_fits(p.aspect, info.width, info.height):
        bad(Rule.ASPECT, f"{info.width}x{info.height} is not {p.aspect}")


def _check_audio(info: VideoInfo, p: Profile, house: bool, bad) -> None:
    if info.audio_codec not in p.audio_codecs:
        bad(Rule.AUDIO_CODEC, f"audio codec {info.audio_codec} is not one of {sorted(p.audio_codecs)}")
    elif house and info.audio_profile != profiles.HOUSE_AUDIO_PROFILE:
        bad(Rule.AUDIO_CODEC, f"AAC profile {info.audio_profile}, not {profiles.HOUSE_AUDIO_PROFILE}")
    rate = info.audio_sample_rate
    if house and rate != profiles.HOUSE_AUDIO_SAMPLE_RATE:
        bad(Rule.AUDIO_SAMPLE_RATE, f"{rate} Hz, not {profiles.HOUSE_AUDIO_SAMPLE_RATE} Hz")
    elif p.max_audio_sample_rate is not None and rate and rate > p.max_audio_sample_rate:
        bad(Rule.AUDIO_SAMPLE_RATE, f"{rate} Hz above {p.max_audio_sample_rate} Hz")
    if info.audio_channels not in p.audio_channels:
        bad(Rule.AUDIO_CHANNELS, f"{info.audio_channels} audio, not {' or '.join(sorted(p.audio_channels))}")
    if p.max_audio_kbps is not None and info.audio_kbps and info.audio_kbps > p.max_audio_kbps:
        bad(Rule.AUDIO_BITRATE, f"audio {info.audio_kbps} kb/s above {p.max_audio_kbps} kb/s")


def _check_loudness(loud: Loudness | None, p: Profile, bad) -> None:
    if loud is None:
        return
    target, tolerance = p.loudness_lufs, p.loudness_tolerance_lu
    if target is not None and abs(loud.integrated_lufs - target) > tolerance:
        bad(Rule.LOUDNESS, f"{loud.integrated_lufs:g} LUFS integrated, not {target:g} +-{tolerance:g}")
    if p.max_true_peak_dbtp is not None and loud.true_peak_dbtp > p.max_true_peak_dbtp:
        bad(Rule.TRUE_PEAK, f"true peak {loud.true_peak_dbtp:g} dBTP above {p.max_true_peak_dbtp:g} dBTP")
