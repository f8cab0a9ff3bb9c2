"""Destination profiles: what each platform accepts, as data with the date it was read.

Limits from the platforms' upload specs (`/work/shared/reference/output-specs.md`: Meta Graph API
media guidelines, TikTok Content Posting API, YouTube help, NorthstarMLS virtual tour rules), as
gathered on `SPECS_AS_OF`; they change, so they live here and nowhere else. `HOUSE` is what every
output of the pipeline promises on top (issue 15): H.264 High yuv420p, constant 30 fps, closed
GOPs, AAC-LC 48 kHz stereo at -14 LUFS +-1 with true peak <= -1 dBTP, `moov` before `mdat`, no
edit lists. `media.validate` checks a file
against a profile from the file itself.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date

SPECS_AS_OF = date(2026, 12, 6)


class Destination(enum.StrEnum):
    INSTAGRAM_REELS = "instagram_reels"
    TIKTOK = "tiktok"
    YOUTUBE_SHORTS = "youtube_shorts"
    MLS = "mls"


class Aspect(enum.StrEnum):
    ANY = "any"
    PORTRAIT_OR_LANDSCAPE_16_9 = "9:16 or 16:9"
    SQUARE_OR_TALLER = "square or taller"


@dataclass(frozen=True, slots=True)
class Profile:
    """One destination's limits; None: no limit of that kind."""

    name: str
    as_of: date
    containers: frozenset[str] = frozenset({"mp4", "mov"})
    video_codecs: frozenset[str] = frozenset({"h264"})
    min_fps: float | None = None
    max_fps: float | None = None
    constant_fps: bool = False
    min_side_px: int | None = None
    max_side_px: int | None = None
    max_width_px: int | None = None
    aspect: Aspect = Aspect.ANY
    max_video_kbps: int | None = None
    audio_codecs: frozenset[str] = frozenset({"aac"})
    max_audio_sample_rate: int | None = None
    max_audio_kbps: int | None = None
    audio_channels: frozenset[str] = frozenset({"mono", "stereo"})
    min_duration_s: float | None = None
    max_duration_s: float | None = None
    max_bytes: int | None = None
    closed_gops: bool = False
    faststart: bool = False
    no_edit_lists: bool = False
    loudness_lufs: float | None = None  # integrated (EBU R128), +- loudness_tolerance_lu
    loudness_tolerance_lu: float = 1.0
    max_true_peak_dbtp: float | None = None


MB = 1_000_000

# What every output promises (issue 15 point 4), whatever its destinations.
HOUSE = Profile(
    name="house",
    as_of=SPECS_AS_OF,
    containers=frozenset({"mp4"}),
    min_fps=30,
    max_fps=30,
    constant_fps=True,
    audio_channels=frozenset({"stereo"}),
    closed_gops=True,
    faststart=True,
    no_edit_lists=True,
    loudness_lufs=-14.0,
    max_true_peak_dbtp=-1.0,
)
HOUSE_VIDEO_PROFILE = "High"
HOUSE_PIX_FMT = "yuv420p"
HOUSE_AUDIO_PROFILE = "LC"
HOUSE_AUDIO_SAMPLE_RATE = 48_000

PROFILES: dict[Destination, Profile] = {
    Destination.INSTAGRAM_REELS: Profile(
        name=Destination.INSTAGRAM_REELS,
        as_of=SPECS_AS_OF,
        video_codecs=frozenset({"h264", "hevc"}),
        min_fps=23,
        max_fps=60,
        max_width_px=1920,
        max_video_kbps=25_000,
        max_audio_sample_rate=48_000,
        max_audio_kbps=128,
        min_duration_s=3,
        max_duration_s=15 * 60,
        max_bytes=300 * MB,  # 1 GB at Meta; some publishers cap at 300 MB
        closed_gops=True,
        faststart=True,
        no_edit_lists=True,
    ),
    Destination.TIKTOK: Profile(
        name=Destination.TIKTOK,
        as_of=SPECS_AS_OF,
        containers=frozenset({"mp4", "mov", "webm"}),
        video_codecs=frozenset({"h264", "hevc", "vp9"}),
        min_fps=23,
        max_fps=60,
        min_side_px=360,
        max_side_px=4096,
        aspect=Aspect.PORTRAIT_OR_LANDSCAPE_16_9,
        min_duration_s=3,
        max_duration_s=600,
    ),
    Destination.YOUTUBE_SHORTS: Profile(
        name=Destination.YOUTUBE_SHORTS,
        as_of=SPECS_AS_OF,
        video_codecs=frozenset({"h264", "hevc", "vp9", "av1"}),
        constant_fps=True,
        aspect=Aspect.SQUARE_OR_TALLER,
        max_duration_s=180,
    ),
    Destination.MLS: Profile(
        name=Destination.MLS,
        as_of=SPECS_AS_OF,
        containers=frozenset({"mp4", "mov"}),
        video_codecs=frozenset({"h264", "hevc", "mpeg4"}),
        max_bytes=300 * MB,
    ),
}


def aspect_fits(aspect: Aspect, width: int, height: int) -> bool:
    """Whether a width x height frame has the shape `aspect` asks for (1% tolerance)."""
    if aspect is Aspect.ANY:
        return True
    if aspect is Aspect.SQUARE_OR_TALLER:
        return height >= width
    ratio = width / height if height else 0.0
    return any(abs(ratio - target) <= 0.01 * target for target in (9 / 16, 16 / 9))


def targets(width: int, height: int) -> list[Destination]:
    """The destinations a composed video of this size is made for: those whose shape it has
    (a landscape video is not a YouTube Short)."""
    return [dest for dest, profile in PROFILES.items() if aspect_fits(profile.aspect, width, height)]
