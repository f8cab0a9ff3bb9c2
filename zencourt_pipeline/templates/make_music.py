"""Generate `soft_pad.m4a`, the bundled music bed (synthesized here; CC0 / public domain).

A 40 s loop of four soft sustained chords (Cmaj9 - Am7 - Fmaj7 - G6sus, 12 s each, 2 s crossfades) made of detuned
sine partials with slow attack/release and a gentle tremolo, encoded to ~48 kb/s stereo AAC with
the ffmpeg that imageio-ffmpeg ships. The loop starts and ends on silence-free, matching chords so
the compose step can loop and trim it freely; it fades the bed in and out itself.

    python -m zencourt_pipeline.templates.make_music            # rewrites soft_pad.m4a
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

RATE = 44100
CHORD_SECONDS = 12.0
# MIDI notes per chord (root voicing low, colour tones up top).
CHORDS = [
    [48, 55, 64, 67, 71, 74],  # Cmaj9
    [45, 52, 60, 64, 67, 71],  # Am7 (add9-ish top)
    [41, 48, 57, 60, 64, 69],  # Fmaj7
    [43, 50, 59, 62, 67, 69],  # G6sus-ish
]
OUT = Path(__file__).resolve().parent / "soft_pad.m4a"


def _hz(midi: int) -> float:
    return 440.0 * 2 ** ((midi - 69) / 12)


def synthesize(seed: int = 7) -> np.ndarray:
    """Stereo float32 samples in [-1, 1], shape (n, 2)."""
    rng = np.random.default_rng(seed)
    n_chord = int(RATE * CHORD_SECONDS)
    t = np.arange(n_chord) / RATE
    # Equal-power crossfade envelope between consecutive chords (2 s attack, 2 s release).
    ramp = int(RATE * 2.0)
    env = np.ones(n_chord)
    env[:ramp] = np.sin(np.linspace(0, np.pi / 2, ramp)) ** 2
    env[-ramp:] = np.cos(np.linspace(0, np.pi / 2, ramp)) ** 2
    total = np.zeros((n_chord * len(CHORDS), 2))
    for c, notes in enumerate(CHORDS):
        chord = np.zeros((n_chord, 2))
        for k, note in enumerate(notes):
            freq = _hz(note)
            amp = 0.9 / (1 + 0.35 * k)
            for detune, pan in ((-0.15, 0.3), (0.15, 0.7)):
                phase = rng.uniform(0, 2 * np.pi)
                wave = np.sin(2 * np.pi * (freq + detune) * t + phase)
                wave += 0.12 * np.sin(2 * np.pi * 2 * (freq + detune) * t + phase)  # soft 2nd harmonic
                chord[:, 0] += amp * (1 - pan) * wave
                chord[:, 1] += amp * pan * wave
        tremolo = 1 + 0.08 * np.sin(2 * np.pi * 0.2 * t)
        chord *= (env * tremolo)[:, None]
        start = c * (n_chord - ramp)  # consecutive chords crossfade over `ramp`
        total[start : start + n_chord] += chord
    # Wrap the tail release onto the head so the loop point is seamless.
    loop_len = len(CHORDS) * (n_chord - ramp)
    head = total[:loop_len].copy()
    tail = total[loop_len : loop_len + ramp]
    head[: len(tail)] += tail
    head /= np.max(np.abs(head)) / 0.5  # peak at -6 dBFS
    return head.astype(np.float32)


def encode(samples: np.ndarray, dest: Path = OUT, bitrate: str = "48k") -> Path:
    import imageio_ffmpeg

    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp.m4a")
    cmd = [
        imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
        "-f", "f32le", "-ar", str(RATE), "-ac", "2", "-i", "-",
        "-c:a", "aac", "-b:a", bitrate, "-map_metadata", "-1",
        "-metadata", "title=Soft pad (generated, CC0)",
        "-movflags", "+faststart", "-f", "ipod", str(tmp),
    ]  # fmt: skip
    subprocess.run(cmd, input=samples.tobytes(), check=True)
    os.replace(tmp, dest)
    return dest


def main() -> int:
    path = encode(synthesize())
    print(f"wrote {path} ({path.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
