"""The one check of a batch's texts (issue 14 point 2), made by intake and by the HTTP create route:
its template exists, its jobs' transitions are xfade styles, and its title, captions and the
template's merge-field texts merge (no unknown or missing field) and fit the output frame uncut,
measured with the real font by building the batch's timeline (pure: nothing is rendered)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from zencourt_pipeline.domain import ListingFacts, OutputSpec
from zencourt_pipeline.media.errors import MediaError
from zencourt_pipeline.media.frames import ORIENTATION_SIZES, clip_frame
from zencourt_pipeline.media.merge import TextProblem
from zencourt_pipeline.media.templates import Template, load_template
from zencourt_pipeline.media.timeline.build import MIN_CLIP_S, ClipInput, build_timeline
from zencourt_pipeline.media.transitions import XFADE_TRANSITIONS, TransitionKind


@dataclass(frozen=True)
class ListingClip:
    """What the check needs of a job: its id, clip length, room name, caption and transition."""

    name: str
    seconds: float
    room: str | None = None
    caption: str | None = None
    transition: str | None = None
    focus: tuple[float, float] | None = None  # what a reframing crop keeps in view; None: the centre


@dataclass(frozen=True)
class ListingProblem:
    """Why a batch's texts cannot be rendered: the message, and the request field to fix
    (snake_case path such as `facts.address`, `jobs.1.caption`; None: no single field)."""

    message: str
    field: str | None = None


def clip_input(clip: ListingClip, path: Path) -> ClipInput:
    """The compose input of a job's clip at `path` (its transition typed)."""
    kind = TransitionKind(clip.transition) if clip.transition else None
    return ClipInput(
        path, max(float(clip.seconds), MIN_CLIP_S), caption=clip.caption, room=clip.room, transition=kind, focus=clip.focus
    )


def listing_problem(
    *, template: str | Template | None, orientation: str, title: str | None, facts: ListingFacts,
    clips: Sequence[ListingClip], outputs: Sequence[OutputSpec] = (),
) -> ListingProblem | None:
    """Why the batch's texts cannot be rendered as asked (naming the field or job), None when they
    can: in the batch's clip frame (`frames.clip_frame` of `outputs` and `orientation`) and in each of `outputs` (its size, branded or not)."""
    try:
        chosen = template if isinstance(template, Template) else load_template(template)
    except MediaError as exc:
        return ListingProblem(exc.message, "template")
    for i, clip in enumerate(clips):
        if clip.transition is not None and clip.transition not in XFADE_TRANSITIONS:
            message = f"job {clip.name}: unknown transition {clip.transition!r} (an xfade style such as fade, wipeleft)"
            return ListingProblem(message, f"jobs.{i}.transition")
    if orientation not in ORIENTATION_SIZES or not clips:
        return None  # `domain.batch_problem` names these
    # every output's frame (the ones a problem names first: what the batch asked for), then the
    # clips' own frame (the branded timeline is planned at it: keyframes, the narration's fit)
    frames = dict.fromkeys([*sorted((*o.size, o.branded) for o in outputs), (*clip_frame(outputs, orientation), True)])
    inputs = [clip_input(c, Path(c.name)) for c in clips]
    for width, height, branded in frames:
        try:
            build_timeline(inputs, width=width, height=height, title=title, template=chosen, facts=facts, branded=branded)
        except MediaError as exc:
            return ListingProblem(exc.message, exc.field if isinstance(exc, TextProblem) else None)
    return None
