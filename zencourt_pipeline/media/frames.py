"""Frame sizes of the videos the pipeline makes: one per orientation (generated clips,
normalized clips and the composed video all share them)."""

from __future__ import annotations

ORIENTATION_SIZES: dict[str, tuple[int, int]] = {"landscape": (1280, 720), "vertical": (720, 1280)}
