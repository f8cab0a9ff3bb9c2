"""The timeline: one versioned, JSON-serializable description of a composed video (pure data).

Every position and length is an integer number of frames at the timeline's `fps`; seconds appear
only where ffmpeg wants them (`Timeline.seconds`, used by `graphs.py`). Building a timeline renders
nothing: the overlay PNGs are rendered from its text and image elements in a separate step
(`timeline.assets`), and the normalize keyframe plan, smart rendering and the full filter graph
all read this one model.

The video track is a list of clips laid end to end; each clip's `transition` overlaps it with the
next clip (or with the end card, after the last clip) by `transition.frames`: clip k starts at
start(k-1) + frames(k-1) - transition(k-1).frames. The end card adds `end_card.duration_frames`.
"""

from __future__ import annotations

import enum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.media.errors import MediaError
from zencourt_pipeline.media.layout import HexColor, TextPosition, TextRole
from zencourt_pipeline.media.transitions import TransitionKind

__all__ = ["TextPosition", "TextRole", "Timeline"]  # the text enums live in `media.layout` (templates use them)

TIMELINE_VERSION = 1


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Transition(_Model):
    """How a clip turns into what follows it: an `xfade` style over `frames` frames."""

    kind: TransitionKind = TransitionKind.FADE
    frames: int = Field(gt=0)


class Clip(_Model):
    """One clip of the video track: frames [in_frame, out_frame) of `source` (a path or storage URI).

    A clip of another shape than the output is cover-cropped (scaled to cover the frame, then
    cropped); `focus_x`/`focus_y` (0..1 of the scaled clip: 0 left/top, 1 right/bottom) say which
    part the crop keeps, the centre by default."""

    source: str = Field(min_length=1)
    in_frame: int = Field(0, ge=0)
    out_frame: int = Field(gt=0)
    transition: Transition | None = None  # into the next clip (or the end card, after the last clip)
    focus_x: float = Field(0.5, ge=0.0, le=1.0)
    focus_y: float = Field(0.5, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _in_before_out(self) -> Clip:
        if self.out_frame <= self.in_frame:
            raise ValueError(f"clip {self.source}: out_frame {self.out_frame} must be after in_frame {self.in_frame}")
        return self

    @property
    def frames(self) -> int:
        """How many frames of the clip the timeline shows."""
        return self.out_frame - self.in_frame


class Corner(enum.StrEnum):
    TOP_LEFT = "top-left"
    TOP_RIGHT = "top-right"
    BOTTOM_LEFT = "bottom-left"
    BOTTOM_RIGHT = "bottom-right"


class TextStyle(_Model):
    """Colours and font sizes (pixels for a 1080 px short side; scaled to the output)."""

    font_color: HexColor = "#FFFFFF"
    background_color: HexColor = "#000000"
    background_opacity: float = Field(0.45, ge=0.0, le=1.0)
    font_size: int = Field(46, ge=8, le=300)
    subtitle_font_size: int = Field(44, ge=8, le=300)


class _Timed(_Model):
    start_frame: int = Field(ge=0)
    duration_frames: int = Field(gt=0)
    fade_frames: int = Field(0, ge=0)  # alpha fade in and out

    @model_validator(mode="after")
    def _fades_fit(self) -> _Timed:
        if 2 * self.fade_frames > self.duration_frames:
            raise ValueError(f"fades of {self.fade_frames} frames do not fit in {self.duration_frames} frames")
        return self

    @property
    def end_frame(self) -> int:
        """One past the last frame the element is on."""
        return self.start_frame + self.duration_frames


class TextElement(_Timed):
    """Text shown over the video (title card, caption)."""

    role: TextRole
    text: str = Field(min_length=1)
    position: TextPosition
    style: TextStyle = TextStyle()


class ImageRole(enum.StrEnum):
    LOGO = "logo"
    AGENT_PHOTO = "agent_photo"


class ImageElement(_Timed):
    """A picture (PNG/JPEG path) shown over the video in a corner."""

    role: ImageRole
    source: str = Field(min_length=1)
    position: Corner = Corner.TOP_RIGHT
    width_fraction: float = Field(0.16, gt=0.0, le=0.5)  # of the output width
    opacity: float = Field(1.0, ge=0.0, le=1.0)


class EndCard(_Model):
    """An opaque full-frame card after the last clip (the last clip's transition leads into it)."""

    duration_frames: int = Field(gt=0)  # what the card adds to the timeline
    title: str | None = None
    subtitle: str | None = None
    style: TextStyle = TextStyle()


class AudioKind(enum.StrEnum):
    MUSIC = "music"
    NARRATION = "narration"


class GainPoint(_Model):
    """The track's gain at `frame` (dB); linear in between, constant after the last point."""

    frame: int = Field(ge=0)
    db: float = Field(ge=-120.0, le=24.0)


class AudioTrack(_Model):
    """An audio track from frame 0: `source` (looped when `loop`), gain automation, fades."""

    kind: AudioKind
    source: str = Field(min_length=1)
    loop: bool = False
    gain: list[GainPoint] = Field(default_factory=lambda: [GainPoint(frame=0, db=0.0)], min_length=1)
    fade_in_frames: int = Field(0, ge=0)
    fade_out_frames: int = Field(0, ge=0)

    @field_validator("gain")
    @classmethod
    def _increasing(cls, points: list[GainPoint]) -> list[GainPoint]:
        frames = [p.frame for p in points]
        if frames != sorted(set(frames)):
            raise ValueError(f"gain points must have strictly increasing frames, got {frames}")
        return points


class Timeline(_Model):
    """The whole composed video. `Timeline.from_json(t.to_json()) == t`."""

    version: Literal[1] = TIMELINE_VERSION
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    fps: int = Field(30, gt=0, le=120)
    clips: list[Clip] = Field(min_length=1)
    end_card: EndCard | None = None
    texts: list[TextElement] = Field(default_factory=list)  # drawn in order, over the video track
    images: list[ImageElement] = Field(default_factory=list)  # drawn in order, over the texts
    audio: list[AudioTrack] = Field(default_factory=list)
    fade_in_frames: int = Field(0, ge=0)  # the video from black
    fade_out_frames: int = Field(0, ge=0)  # the video to black

    @model_validator(mode="after")
    def _consistent(self) -> Timeline:
        if self.width % 2 or self.height % 2:
            raise ValueError(f"output size must be even, got {self.width}x{self.height}")
        last = len(self.clips) - 1
        for i, clip in enumerate(self.clips):
            if i < last and clip.transition is None:
                raise ValueError(f"clip {i} has no transition into clip {i + 1} (hard cuts are not supported)")
            if i == last and (clip.transition is None) != (self.end_card is None):
                raise ValueError("the last clip has a transition exactly when an end card follows it")
            incoming = self.clips[i - 1].transition.frames if i > 0 else 0  # type: ignore[union-attr]
            outgoing = clip.transition.frames if clip.transition is not None else 0
            if incoming + outgoing > clip.frames:  # equal: a window of smart rendering may end there
                raise ValueError(
                    f"clip {i} has {clip.frames} frames: too short for its transitions "
                    f"({incoming} in + {outgoing} out)"
                )
        total = self.total_frames
        for name, elements in (("text", self.texts), ("image", self.images)):
            for k, element in enumerate(elements):
                if element.end_frame > total:
                    raise ValueError(
                        f"{name} {k} ends at frame {element.end_frame}, after the timeline's {total} frames"
                    )
        if self.fade_in_frames > total or self.fade_out_frames > total:
            raise ValueError(f"video fades are longer than the timeline's {total} frames")
        for kind in AudioKind:
            if sum(1 for track in self.audio if track.kind == kind) > 1:
                raise ValueError(f"a timeline has at most one {kind} track")
        for k, track in enumerate(self.audio):
            if track.gain[-1].frame > total or max(track.fade_in_frames, track.fade_out_frames) > total:
                raise ValueError(f"audio track {k}'s gain points or fades reach past frame {total}")
        return self

    # ------------------------------------------------------------ derived positions (frames)

    @property
    def clip_starts(self) -> list[int]:
        """The output frame where each clip starts."""
        starts = [0]
        for clip in self.clips[:-1]:
            starts.append(starts[-1] + clip.frames - clip.transition.frames)  # type: ignore[union-attr]
        return starts

    @property
    def card_start(self) -> int | None:
        """The output frame where the end card's transition starts (None: no end card)."""
        last = self.clips[-1]
        if self.end_card is None or last.transition is None:
            return None
        return self.clip_starts[-1] + last.frames - last.transition.frames

    @property
    def total_frames(self) -> int:
        """The length of the composed video."""
        last = self.clips[-1]
        end = self.clip_starts[-1] + last.frames
        return end + (self.end_card.duration_frames if self.end_card is not None else 0)

    @property
    def music(self) -> AudioTrack | None:
        """The music bed, if any."""
        return next((t for t in self.audio if t.kind == AudioKind.MUSIC), None)

    @property
    def narration(self) -> AudioTrack | None:
        """The voice-over, if any (the music is ducked under it by its gain automation)."""
        return next((t for t in self.audio if t.kind == AudioKind.NARRATION), None)

    def seconds(self, frames: int) -> float:
        """`frames` in seconds at the timeline's frame rate (for ffmpeg's arguments)."""
        return frames / self.fps

    @property
    def duration_s(self) -> float:
        """The composed video's length in seconds."""
        return round(self.seconds(self.total_frames), 6)

    # ------------------------------------------------------------ JSON

    def to_json(self) -> str:
        """The timeline as indented JSON (what is stored next to each output)."""
        return self.model_dump_json(indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> Timeline:
        """A timeline from its JSON; MediaError(INVALID_INPUT) saying what is wrong otherwise."""
        try:
            return cls.model_validate_json(text)
        except ValidationError as exc:
            raise MediaError(ErrorCode.INVALID_INPUT, f"invalid timeline: {exc}") from exc
