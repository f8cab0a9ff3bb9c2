"""The MLS-unbranded cut made from the branded render (issue 15 point 3): only the branding's
windows (logo bug, end card with the logo and the contact line) are re-encoded, every other GOP is
stream-copied from the branded file; the result passes the house profile and, on its decoded
frames, shows nothing of what the branded cut draws."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zencourt_pipeline.bench import outputs as bench_outputs
from zencourt_pipeline.domain import ListingFacts
from zencourt_pipeline.media import profiles
from zencourt_pipeline.media.branding import Branding
from zencourt_pipeline.media.compose import ClipInput, render_timeline, render_variant
from zencourt_pipeline.media.ffmpeg import ffmpeg_exe, probe, run_ffmpeg
from zencourt_pipeline.media.normalize import normalize_clip
from zencourt_pipeline.media.smart.derive import plan_variant, variant_spans
from zencourt_pipeline.media.smart.plan import SmartUnavailable
from zencourt_pipeline.media.templates import load_template
from zencourt_pipeline.media.timeline.build import build_timeline
from zencourt_pipeline.media.timeline.model import TextRole
from zencourt_pipeline.media.validate import validate

W, H, CLIP_S = 320, 180, 4.0
FACTS = ListingFacts(address="12 Oak Lane", price=1_250_000, beds=3, baths=2)


def _branding(logo: Path) -> Branding:
    return Branding(
        agent_name="Jane Doe", brokerage="Acme Realty", phone="555-0100", website="acme.example", logo=logo,
        primary_color="#FF00FF", text_color="#FFFFFF",
    )  # fmt: skip


def _pair(clips, branding, template="default", **size):
    kw = {"width": W, "height": H, "title": "Harbour View", "template": load_template(template), "facts": FACTS,
          "branding": branding, **size}  # fmt: skip
    return build_timeline(clips, **kw), build_timeline(clips, branded=False, **kw)


# ---------------------------------------------------------------- planning (pure)


def test_the_variant_differs_only_in_the_branding_windows_grown_to_whole_gops():
    clips = [ClipInput(Path(f"/c{i}.mp4"), 5.0, room=f"Room {i}") for i in range(4)]
    branded, unbranded = _pair(clips, _branding(Path("/logo.png")))
    total, card = unbranded.total_frames, unbranded.card_start
    assert variant_spans(branded, unbranded) == [(0, 90), (card, total)]
    gops = [(a, min(a + 30, total)) for a in range(0, total, 30)]
    plan = plan_variant(unbranded, variant_spans(branded, unbranded), gops)
    assert [(p.start, p.end, p.clip) for p in plan.pieces] == [(0, 90, None), (90, card // 30 * 30, 0), (card // 30 * 30, total, None)]
    assert all(p.clip_start == p.start for p in plan.pieces if p.clip is not None)  # the same frame of the branded file
    with pytest.raises(SmartUnavailable):
        variant_spans(branded, _pair(clips[:3], _branding(Path("/logo.png")))[1])  # other clips: not a variant


def test_the_bench_request_re_encodes_at_most_a_fifth_of_the_unbranded_cut():
    """The bench's 16:9 and 9:16 1080p cuts (showcase, 6 clips of 5 s, the bench's profile): the
    windows stay bounded, whatever the template's other texts (a guard on the design)."""
    branding = bench_outputs.BRANDING.model_copy(update={"logo": Path("/logo.png")})
    clips = [ClipInput(Path(f"/c{i}.mp4"), 5.0, room=f"Room {i + 1}") for i in range(6)]
    for w, h in ((1920, 1080), (1080, 1920)):
        kw = {"width": w, "height": h, "title": None, "template": load_template("showcase"), "facts": bench_outputs.FACTS}
        branded = build_timeline(clips, branding=branding, **kw)
        unbranded = build_timeline(clips, branding=branding, branded=False, **kw)
        total = unbranded.total_frames
        plan = plan_variant(unbranded, variant_spans(branded, unbranded), [(a, min(a + 30, total)) for a in range(0, total, 30)])
        assert plan.rendered_frames / total <= 0.25


# ---------------------------------------------------------------- rendering (real ffmpeg)


@pytest.fixture(scope="module")
def cuts(tmp_path_factory):
    d = tmp_path_factory.mktemp("derive")
    clips = []
    for i, source in enumerate(["testsrc2", "smptebars", "testsrc"]):
        src = d / f"src{i}.mp4"
        run_ffmpeg(["-f", "lavfi", "-i", f"{source}=s=400x240:r=25:d={CLIP_S}", "-vf", "scroll=h=0.01",
                    "-c:v", "libx264", "-preset", "ultrafast", str(src)])  # fmt: skip
        normalize_clip(src, d / f"clip{i}.mp4", width=W, height=H, duration_s=CLIP_S, preset="veryfast")
        clips.append(ClipInput(d / f"clip{i}.mp4", CLIP_S, room=f"Room {i}"))
    logo = Image.new("RGBA", (200, 100), (255, 255, 255, 255))
    for y in range(0, 100, 50):  # white and black stripes: unlike any picture under them
        logo.paste((0, 0, 0, 255), (0, y, 200, y + 25))
    logo.save(d / "logo.png")
    branded_tl, unbranded_tl = _pair(clips, _branding(d / "logo.png"))
    branded = render_timeline(branded_tl, d / "branded.mp4", strategy="full")
    unbranded = render_variant(unbranded_tl, branded, d / "unbranded.mp4", thumbnail_dest=d / "unbranded.jpg")
    reference = render_timeline(unbranded_tl, d / "reference.mp4", strategy="full")  # the unbranded cut in full
    return branded, unbranded, reference


def _frames(path: Path) -> np.ndarray:
    raw = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    return np.frombuffer(raw, np.uint8).reshape(-1, H, W, 3).astype(np.int16)


def test_the_unbranded_cut_is_the_branded_file_with_only_the_branding_windows_re_encoded(cuts):
    branded, unbranded, _ = cuts
    assert unbranded.strategy == "variant", unbranded.strategy_note
    assert unbranded.pieces == 3 and unbranded.copied_frames >= branded.timeline.total_frames // 2
    assert unbranded.thumbnail_path is not None and unbranded.thumbnail_path.is_file()
    a, b = _frames(branded.path), _frames(unbranded.path)
    windows = [(p_start, p_end) for p_start, p_end in variant_spans(branded.timeline, unbranded.timeline)]
    outside = [f for f in range(len(a)) if not any(lo - 30 <= f < hi + 30 for lo, hi in windows)]
    assert outside and all(np.array_equal(a[f], b[f]) for f in outside)  # copied GOPs: the same pictures


def test_the_unbranded_cut_passes_the_house_profile_and_keeps_the_music(cuts):
    _, unbranded, _ = cuts
    assert validate(unbranded.path, profiles.HOUSE) == []
    assert validate(unbranded.path, profiles.PROFILES[profiles.Destination.MLS]) == []
    info = probe(unbranded.path, count_frames=True)
    assert info.has_audio and info.frame_count == unbranded.timeline.total_frames


def test_no_unbranded_frame_shows_the_logo_or_the_contact_line(cuts):
    """Decoded frames: where the branded cut draws the logo bug, the logo over the card and the
    contact line, it differs from the full render of the unbranded cut; the unbranded cut made
    from the branded file does not (every frame is the full unbranded render's, up to encoding)."""
    branded, unbranded, reference = cuts
    a, b, ref = _frames(branded.path), _frames(unbranded.path), _frames(reference.path)
    assert len(a) == len(b) == len(ref)
    tl = branded.timeline
    logo_bug, logo_card = tl.images
    [contact] = [t for t in tl.texts if t.role == TextRole.CONTACT]
    # the default template's logo goes top right, 16% of the width; the contact line is a lower third band
    logo_box = (slice(8, 30), slice(W - 50, W - 12))
    band = (slice(H - 45, H - 15), slice(0, W))
    for element, box in ((logo_bug, logo_box), (logo_card, logo_box), (contact, band)):
        middle = (element.start_frame + element.end_frame) // 2
        assert np.abs(a[middle][box] - ref[middle][box]).mean() > 40, element  # the branded cut draws it
        assert np.abs(b[middle][box] - ref[middle][box]).mean() < 6, element  # the unbranded one does not
    assert max(np.abs(b[f] - ref[f]).mean() for f in range(len(b))) < 6  # nowhere
