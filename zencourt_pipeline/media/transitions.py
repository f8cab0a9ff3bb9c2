"""The transition styles of the video track: the ones ffmpeg's `xfade` filter accepts (ffmpeg 7-9),
minus "custom", which needs an expression."""

from __future__ import annotations

import enum

XFADE_TRANSITIONS: frozenset[str] = frozenset(
    """fade wipeleft wiperight wipeup wipedown slideleft slideright slideup slidedown circlecrop
    rectcrop distance fadeblack fadewhite radial smoothleft smoothright smoothup smoothdown circleopen
    circleclose vertopen vertclose horzopen horzclose dissolve pixelize diagtl diagtr diagbl diagbr
    hlslice hrslice vuslice vdslice hblur fadegrays wipetl wipetr wipebl wipebr squeezeh squeezev
    zoomin fadefast fadeslow hlwind hrwind vuwind vdwind coverleft coverright coverup coverdown
    revealleft revealright revealup revealdown""".split()
)

# One member per xfade style, named and valued as ffmpeg spells it (TransitionKind.FADE == "fade").
TransitionKind = enum.StrEnum("TransitionKind", [(name.upper(), name) for name in sorted(XFADE_TRANSITIONS)])
TransitionKind.__doc__ = "An `xfade` transition style."
TransitionKind.__module__ = __name__
