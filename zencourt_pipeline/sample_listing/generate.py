"""Regenerate the synthetic sample listing: six room-like JPEGs and listing.json (CC0).

    python -m zencourt_pipeline.sample_listing.generate [OUT_DIR]

Deterministic (fixed seeds). One photo is portrait, and the kitchen's pixels are stored
sideways with EXIF Orientation 6, so correct intake has to rotate it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

HERE = Path(__file__).resolve().parent
Color = tuple[int, int, int]


def _mix(a: Color, b: Color, t: float) -> Color:
    return tuple(int(round(x + (y - x) * t)) for x, y in zip(a, b, strict=True))  # type: ignore[return-value]


def _shade(c: Color, k: float) -> Color:
    return tuple(max(0, min(255, int(v * k))) for v in c)  # type: ignore[return-value]


def _gradient(w: int, h: int, top: Color, bottom: Color) -> Image.Image:
    t = np.linspace(0.0, 1.0, h)[:, None, None]
    arr = np.array(top, float) * (1 - t) + np.array(bottom, float) * t
    return Image.fromarray(np.repeat(arr, w, axis=1).astype(np.uint8))


def _fill(img: Image.Image, poly: list[tuple[float, float]], top: Color, bottom: Color) -> None:
    """Fill a polygon with a vertical gradient."""
    mask = Image.new("L", img.size, 0)
    ImageDraw.Draw(mask).polygon(poly, fill=255)
    img.paste(_gradient(img.width, img.height, top, bottom), (0, 0), mask)


def _box3d(
    d: ImageDraw.ImageDraw, x0: float, y0: float, x1: float, y1: float, depth: float, c: Color
) -> None:
    """A block seen slightly from above: front face plus a lighter top face."""
    d.polygon(
        [(x0, y0), (x0 + depth, y0 - depth * 0.6), (x1 + depth, y0 - depth * 0.6), (x1, y0)],
        fill=_shade(c, 1.18),
    )
    d.polygon(
        [(x1, y0), (x1 + depth, y0 - depth * 0.6), (x1 + depth, y1 - depth * 0.6), (x1, y1)],
        fill=_shade(c, 0.72),
    )
    d.rectangle([x0, y0, x1, y1], fill=c)


def _window(
    img: Image.Image, x0: int, y0: int, x1: int, y1: int, frame: Color, sky: tuple[Color, Color]
) -> None:
    d = ImageDraw.Draw(img)
    d.rectangle([x0 - 14, y0 - 14, x1 + 14, y1 + 14], fill=frame)
    img.paste(_gradient(x1 - x0, y1 - y0, *sky), (x0, y0))
    d.rectangle([x0, (y0 + y1) // 2 - 5, x1, (y0 + y1) // 2 + 5], fill=frame)
    d.rectangle([(x0 + x1) // 2 - 5, y0, (x0 + x1) // 2 + 5, y1], fill=frame)


def _plant(d: ImageDraw.ImageDraw, x: int, floor_y: int, size: int, rng: np.random.Generator) -> None:
    d.polygon([(x - size * 0.3, floor_y - size * 0.5), (x + size * 0.3, floor_y - size * 0.5),
               (x + size * 0.22, floor_y), (x - size * 0.22, floor_y)], fill=(150, 92, 60))  # fmt: skip
    for _ in range(26):
        cx = x + rng.normal(0, size * 0.28)
        cy = floor_y - size * 0.5 - abs(rng.normal(size * 0.55, size * 0.3))
        r = size * rng.uniform(0.12, 0.22)
        g = int(rng.uniform(90, 150))
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=(int(g * 0.45), g, int(g * 0.4)))


def _finish(img: Image.Image, seed: int, grain: float = 3.5) -> Image.Image:
    """Soften, add low-frequency light variation, grain and a vignette so it reads like a photo."""
    rng = np.random.default_rng(seed)
    w, h = img.size
    img = img.filter(ImageFilter.GaussianBlur(1.2))
    arr = np.asarray(img).astype(np.float32)
    low = rng.normal(0, 1, (h // 160 + 2, w // 160 + 2)).astype(np.float32)
    low_img = Image.fromarray(low).resize((w, h), Image.Resampling.BICUBIC)
    arr *= (1.0 + 0.02 * np.asarray(low_img))[:, :, None]
    y, x = np.ogrid[-1 : 1 : h * 1j, -1 : 1 : w * 1j]
    arr *= (1.0 - 0.22 * np.clip(x * x + y * y - 0.35, 0, None))[:, :, None]
    arr += rng.normal(0, grain, (h, w, 1)).astype(np.float32)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def _room(w: int, h: int, *, wall: Color, side: Color, ceiling: Color, floor: Color, plank: Color,
          back: tuple[float, float, float, float] = (0.22, 0.16, 0.78, 0.66)) -> tuple[Image.Image, tuple[int, int, int, int]]:  # fmt: skip
    """One-point-perspective empty room; returns it and the back wall's pixel box."""
    bx0, by0, bx1, by1 = int(back[0] * w), int(back[1] * h), int(back[2] * w), int(back[3] * h)
    img = _gradient(w, h, ceiling, _shade(ceiling, 0.9))
    _fill(img, [(0, 0), (bx0, by0), (bx0, by1), (0, h)], _shade(side, 1.05), _shade(side, 0.82))
    _fill(img, [(w, 0), (bx1, by0), (bx1, by1), (w, h)], _shade(side, 0.92), _shade(side, 0.74))
    img.paste(_gradient(bx1 - bx0, by1 - by0, wall, _shade(wall, 0.9)), (bx0, by0))
    boards = _gradient(w, h, _shade(floor, 0.85), floor)
    bd = ImageDraw.Draw(boards)
    vx, vy = (bx0 + bx1) / 2, (by0 + by1) / 2
    for i in range(-30, 31):  # floor boards converging on the vanishing point
        xb = w / 2 + i * w / 14
        xt = vx + (xb - vx) * (by1 - vy) / (h - vy)
        bd.line([(xt, by1), (xb, h)], fill=plank, width=3)
    mask = Image.new("L", (w, h), 0)
    ImageDraw.Draw(mask).polygon([(0, h), (bx0, by1), (bx1, by1), (w, h)], fill=255)
    img.paste(boards, (0, 0), mask)
    d = ImageDraw.Draw(img)
    d.line([(bx0, by1), (bx1, by1)], fill=_shade(wall, 0.7), width=6)  # skirting
    return img, (bx0, by0, bx1, by1)


def exterior(w: int, h: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    img = _gradient(w, h, (92, 150, 214), (200, 222, 240))
    d = ImageDraw.Draw(img)
    for _ in range(7):  # clouds
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h * 0.3), rng.uniform(60, 160)
        d.ellipse([cx - 2 * r, cy - r * 0.6, cx + 2 * r, cy + r * 0.6], fill=(236, 241, 247))
    img = img.filter(ImageFilter.GaussianBlur(18))
    d = ImageDraw.Draw(img)
    ground = int(h * 0.72)
    d.rectangle([0, ground, w, h], fill=(88, 132, 62))
    for cx in np.linspace(-80, w + 80, 9):  # tree line
        r = rng.uniform(120, 210)
        d.ellipse([cx - r, ground - 1.6 * r, cx + r, ground + 0.2 * r], fill=(48, 84, 44))
    x0, x1, top = int(w * 0.2), int(w * 0.8), int(h * 0.36)
    d.polygon([(x0 - 60, top), ((x0 + x1) / 2, int(h * 0.14)), (x1 + 60, top)], fill=(70, 66, 72))
    d.rectangle([x0, top, x1, ground], fill=(226, 218, 200))
    for y in range(top + 18, ground, 22):  # siding
        d.line([(x0, y), (x1, y)], fill=(204, 196, 178), width=3)
    for wx in (0.27, 0.41, 0.59, 0.73):
        cx = int(w * wx)
        _window(
            img, cx - 70, top + 60, cx + 70, top + 210, (250, 250, 246), ((150, 190, 226), (96, 126, 150))
        )
    d.rectangle([w // 2 - 65, ground - 260, w // 2 + 65, ground], fill=(44, 70, 98))
    d.ellipse([w // 2 + 35, ground - 140, w // 2 + 49, ground - 126], fill=(212, 180, 90))
    d.polygon(
        [(w // 2 - 120, ground), (w // 2 + 120, ground), (w // 2 + 330, h), (w // 2 - 330, h)],
        fill=(186, 180, 170),
    )
    for sx in np.linspace(x0 + 40, x1 - 40, 10):  # shrubs
        if abs(sx - w / 2) > 150:
            r = rng.uniform(45, 70)
            d.ellipse([sx - r, ground - r * 1.2, sx + r, ground + r * 0.4], fill=(60, 108, 50))
    return _finish(img, seed, grain=4.0)


def living_room(w: int, h: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    img, (bx0, by0, bx1, by1) = _room(w, h, wall=(232, 226, 214), side=(218, 210, 196), ceiling=(244, 242, 236),
                                      floor=(168, 122, 82), plank=(138, 98, 64))  # fmt: skip
    _window(
        img, bx0 + 60, by0 + 70, bx0 + 420, by1 - 230, (250, 250, 250), ((176, 206, 236), (214, 230, 242))
    )
    d = ImageDraw.Draw(img)
    d.polygon(
        [(w * 0.26, h * 0.8), (w * 0.74, h * 0.8), (w * 0.86, h * 0.96), (w * 0.14, h * 0.96)],
        fill=(196, 180, 160),
    )
    sofa = (88, 104, 122)
    _box3d(d, w * 0.36, by1 - 150, w * 0.74, by1 + 40, 30, sofa)
    _box3d(d, w * 0.36, by1 - 300, w * 0.74, by1 - 150, 24, _shade(sofa, 0.92))
    for px in (0.42, 0.52, 0.62):
        d.rounded_rectangle([w * px, by1 - 260, w * px + 110, by1 - 150], 22, fill=(210, 176, 112))
    _box3d(d, w * 0.44, h * 0.8, w * 0.62, h * 0.86, 26, (120, 84, 54))
    d.rectangle([bx1 - 330, by0 + 90, bx1 - 110, by0 + 300], fill=(70, 60, 50))
    d.rectangle([bx1 - 318, by0 + 102, bx1 - 122, by0 + 288], fill=(196, 120, 88))
    _plant(d, int(w * 0.86), int(h * 0.9), 150, rng)
    return _finish(img, seed)


def kitchen(w: int, h: int, seed: int) -> Image.Image:
    img, (bx0, by0, bx1, by1) = _room(w, h, wall=(226, 232, 230), side=(206, 214, 212), ceiling=(246, 246, 244),
                                      floor=(190, 184, 172), plank=(168, 162, 150))  # fmt: skip
    d = ImageDraw.Draw(img)
    cab, top = (52, 74, 84), (236, 234, 228)
    d.rectangle([bx0, by1 - 230, bx1, by1], fill=cab)  # base cabinets
    d.rectangle([bx0, by1 - 250, bx1, by1 - 230], fill=top)
    for x in range(bx0, bx1, 150):
        d.rectangle([x + 8, by1 - 222, x + 142, by1 - 8], outline=_shade(cab, 1.3), width=3)
        d.rectangle([x + 8, by0 + 40, x + 142, by0 + 260], fill=cab, outline=_shade(cab, 1.3), width=3)
    for x in range(bx0, bx1, 24):  # tiled splashback
        d.line([(x, by0 + 260), (x, by1 - 250)], fill=(206, 212, 210), width=2)
    _window(img, (bx0 + bx1) // 2 - 170, by0 + 290, (bx0 + bx1) // 2 + 170, by1 - 290, (245, 245, 245),
            ((160, 198, 232), (120, 170, 120)))  # fmt: skip
    _box3d(d, w * 0.3, h * 0.7, w * 0.7, h * 0.92, 40, (40, 58, 66))  # island
    d.rectangle([w * 0.3 - 10, h * 0.7 - 30, w * 0.7 + 50, h * 0.7], fill=top)
    for px in (0.38, 0.5, 0.62):  # pendants
        d.line([(w * px, 0), (w * px, h * 0.3)], fill=(40, 40, 40), width=4)
        d.chord([w * px - 60, h * 0.3 - 40, w * px + 60, h * 0.3 + 50], 180, 360, fill=(214, 170, 80))
    return _finish(img, seed)


def bedroom(w: int, h: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    img, (bx0, by0, bx1, by1) = _room(w, h, wall=(206, 196, 222), side=(190, 180, 206), ceiling=(240, 236, 244),
                                      floor=(150, 116, 92), plank=(124, 94, 74))  # fmt: skip
    _window(
        img, bx1 - 330, by0 + 80, bx1 - 60, by1 - 260, (248, 248, 248), ((250, 214, 170), (206, 170, 150))
    )
    d = ImageDraw.Draw(img)
    d.rounded_rectangle([w * 0.32, by0 + 120, w * 0.62, by1 - 40], 30, fill=(96, 74, 90))  # headboard
    _box3d(d, w * 0.28, by1 - 60, w * 0.66, h * 0.86, 50, (236, 232, 226))
    d.rectangle([w * 0.28, h * 0.74, w * 0.66, h * 0.86], fill=(122, 140, 170))  # throw
    for px in (0.34, 0.48):
        d.rounded_rectangle([w * px, by1 - 110, w * px + 190, by1 - 30], 24, fill=(248, 246, 240))
    for sx in (0.22, 0.7):
        _box3d(d, w * sx, by1 - 40, w * sx + 130, by1 + 60, 20, (120, 90, 70))
        d.ellipse([w * sx + 35, by1 - 170, w * sx + 95, by1 - 80], fill=(250, 226, 170))
    _plant(d, int(w * 0.1), int(h * 0.93), 130, rng)
    return _finish(img, seed)


def bathroom(w: int, h: int, seed: int) -> Image.Image:
    img, (bx0, by0, bx1, by1) = _room(w, h, wall=(214, 228, 232), side=(196, 212, 218), ceiling=(246, 248, 248),
                                      floor=(120, 126, 132), plank=(100, 106, 112),
                                      back=(0.16, 0.12, 0.84, 0.62))  # fmt: skip
    d = ImageDraw.Draw(img)
    for y in range(by0, by1, 40):  # tiles
        d.line([(bx0, y), (bx1, y)], fill=(196, 210, 214), width=2)
    for x in range(bx0, bx1, 40):
        d.line([(x, by0), (x, by1)], fill=(196, 210, 214), width=2)
    d.rounded_rectangle(
        [w * 0.3, by0 + 120, w * 0.7, by0 + 560], 40, fill=(180, 196, 204), outline=(150, 130, 96), width=10
    )
    d.rounded_rectangle([w * 0.33, by0 + 150, w * 0.67, by0 + 530], 30, fill=(222, 232, 238))
    _box3d(d, w * 0.22, by1 - 260, w * 0.78, by1 + 20, 30, (110, 84, 62))  # vanity
    d.rectangle([w * 0.22 - 10, by1 - 290, w * 0.78 + 40, by1 - 260], fill=(240, 240, 236))
    d.ellipse([w * 0.42, by1 - 285, w * 0.58, by1 - 262], fill=(250, 250, 250))
    d.rectangle([w * 0.49, by1 - 340, w * 0.51, by1 - 285], fill=(170, 170, 176))
    d.polygon([(0, h * 0.78), (w * 0.55, h * 0.78), (w * 0.6, h), (0, h)], fill=(236, 238, 238))  # tub
    d.rectangle([0, h * 0.76, w * 0.56, h * 0.79], fill=(250, 250, 250))
    return _finish(img, seed)


def backyard(w: int, h: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    img = _gradient(w, h, (118, 168, 224), (226, 210, 190))
    d = ImageDraw.Draw(img)
    hor = int(h * 0.45)
    for cx in np.linspace(-100, w + 100, 12):
        r = rng.uniform(100, 190)
        d.ellipse([cx - r, hor - 1.7 * r, cx + r, hor + 0.3 * r], fill=(54, 92, 50))
    d.rectangle([0, hor, w, h], fill=(98, 146, 70))
    d.polygon(
        [(w * 0.3, h * 0.62), (w * 0.82, h * 0.62), (w * 0.95, h * 0.82), (w * 0.2, h * 0.82)],
        fill=(70, 170, 200),
    )
    d.polygon(
        [(w * 0.33, h * 0.64), (w * 0.79, h * 0.64), (w * 0.9, h * 0.8), (w * 0.24, h * 0.8)],
        fill=(96, 196, 222),
    )
    d.polygon([(0, h * 0.84), (w, h * 0.84), (w, h), (0, h)], fill=(176, 150, 120))  # deck
    for x in range(0, w, 60):
        d.line([(x, h * 0.84), (x - 80, h)], fill=(150, 126, 98), width=3)
    for px in (0.12, 0.2):
        _box3d(d, w * px, h * 0.74, w * px + 120, h * 0.8, 20, (236, 236, 230))
    d.polygon(
        [(w * 0.08, h * 0.5), (w * 0.26, h * 0.5), (w * 0.17, h * 0.42)], fill=(232, 106, 80)
    )  # umbrella
    d.line([(w * 0.17, h * 0.5), (w * 0.17, h * 0.76)], fill=(90, 90, 90), width=6)
    return _finish(img, seed, grain=4.0)


# (file, room, prompt, painter, displayed size, EXIF orientation stored)
ROOMS = [
    ("01-exterior.jpg", "Exterior", "Slow cinematic pull-back revealing the front of the house on a sunny day",
     exterior, (2400, 1600), 1),
    ("02-living-room.jpg", "Living Room", "Gentle glide across a bright living room with soft daylight",
     living_room, (2400, 1600), 1),
    ("03-kitchen.jpg", "Kitchen", "Smooth lateral pan along the kitchen island and pendant lights",
     kitchen, (2400, 1600), 6),
    ("04-primary-bedroom.jpg", "Primary Bedroom", "Calm slow push-in towards the bed in warm evening light",
     bedroom, (2000, 1500), 1),
    ("05-bathroom.jpg", "Bathroom", "Slow push-in on the vanity and mirror, clean and airy",
     bathroom, (1500, 2000), 1),
    ("06-backyard.jpg", "Backyard", "Wide rising shot over the pool and deck in the late afternoon",
     backyard, (2400, 1350), 1),
]  # fmt: skip


def generate(out_dir: Path = HERE) -> list[Path]:
    """Write the six photos and listing.json into `out_dir`; returns the photo paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written, jobs = [], []
    for seed, (name, room, prompt, paint, (w, h), orientation) in enumerate(ROOMS, start=11):
        img = paint(w, h, seed)
        exif = Image.Exif()
        if orientation == 6:  # store pixels rotated 90 degrees counter-clockwise; viewers rotate back
            img = img.transpose(Image.Transpose.ROTATE_90)
            exif[0x0112] = 6
        path = out_dir / name
        img.save(path, "JPEG", quality=82, optimize=True, exif=exif.tobytes())
        written.append(path)
        jobs.append({"file": name, "room_name": room, "prompt": prompt, "duration_seconds": 5})
    listing = {
        "listing_id": "sample-listing-1",
        "title": "12 Harbor View Lane",
        "orientation": "landscape",
        "jobs": jobs,
    }
    (out_dir / "listing.json").write_text(json.dumps(listing, indent=2) + "\n")
    return written


if __name__ == "__main__":
    for p in generate(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE):
        print(f"{p}  {p.stat().st_size // 1024} KB")
