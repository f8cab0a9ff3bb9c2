"""Frame sizes of the videos the pipeline makes: one per orientation (generated clips,
normalized clips and the composed video all share them)."""

from __future__ import annotations

from zencourt_pipeline.domain import Orientation

ORIENTATION_SIZES: dict[Orientation, tuple[int, int]] = {Orientation.LANDSCAPE: (1280, 720), Orientation.VERTICAL: (720, 1280)}
