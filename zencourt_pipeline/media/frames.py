"""Frame sizes of the videos the pipeline makes: the clip frame a batch's clips are generated,
normalized and composed from (one of the generation ratios, chosen from the batch's primary
output), and the orientations' default frames."""

from __future__ import annotations

from collections.abc import Sequence

from zencourt_pipeline.domain import (
    DEFAULT_OUTPUTS,
    Orientation,
    OutputShape,
    OutputSpec,
    generation_ratio,
    primary_output,
)

ORIENTATION_SIZES: dict[Orientation, tuple[int, int]] = {Orientation.LANDSCAPE: (1280, 720), Orientation.VERTICAL: (720, 1280)}


def clip_frame(outputs: Sequence[OutputSpec], orientation: str) -> tuple[int, int]:
    """The frame of a batch's clips: the generation ratio nearest its primary output
    (`domain.primary_output` of `outputs`, none: `DEFAULT_OUTPUTS`, and the batch's orientation).
    1280x720 for a landscape primary (the default request), 720x1280 for a vertical one, 960x960
    for a square one and 832x1104 for 4:5, so a batch asking only for feed shapes is generated in
    its own shape instead of being cropped out of a 16:9 clip. Renditions of other shapes are
    reframed from it by cover crop."""
    primary, _ = primary_output(tuple(outputs) or DEFAULT_OUTPUTS, OutputShape(orientation))
    return generation_ratio(*primary.size).size
