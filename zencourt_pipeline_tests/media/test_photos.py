"""Photo intake on real files generated with Pillow: modes, orientation, refusals, crops, data URIs."""

from __future__ import annotations

import base64
import io
import json
import random
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zencourt_pipeline.media.errors import MediaError
from zencourt_pipeline.media.photos import (
    PhotoInfo,
    crop_to_aspect,
    jpeg_data_uri,
    prepare_photo,
    upright_size,
)

SAMPLE = Path(__file__).resolve().parents[2] / "zencourt_pipeline" / "sample_listing"


def _noisy(w: int, h: int, seed: int = 0) -> Image.Image:
    arr = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    return Image.fromarray(arr)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width x height, with a tiny IDAT: a decompression-bomb shape."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def _check_jpeg(path: Path, info: PhotoInfo) -> Image.Image:
    img = Image.open(path)
    assert img.format == "JPEG" and img.mode == "RGB"
    assert img.size == (info.width, info.height)
    assert 0x0112 not in img.getexif()
    assert info.size_bytes == path.stat().st_size
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")], "temp file left behind"
    img.load()
    return img


def _near(pixel, expected, tol=24) -> bool:
    return all(abs(int(a) - b) <= tol for a, b in zip(pixel, expected, strict=True))


def test_plain_jpeg_is_kept_and_bounded(tmp_path):
    src = tmp_path / "big.jpg"
    _noisy(5000, 1000).save(src, quality=80)
    info = prepare_photo(src, tmp_path / "out" / "big.jpg", max_long_side=3840)
    assert (info.width, info.height) == (3840, 768)
    assert info.source_format == "JPEG" and not info.exif_rotated
    _check_jpeg(tmp_path / "out" / "big.jpg", info)


def test_small_photo_is_not_upscaled(tmp_path):
    src = tmp_path / "small.png"
    Image.new("RGB", (300, 200), (10, 120, 200)).save(src)
    info = prepare_photo(src, tmp_path / "small.jpg")
    assert (info.width, info.height, info.source_format) == (300, 200, "PNG")
    img = _check_jpeg(tmp_path / "small.jpg", info)
    assert _near(img.getpixel((150, 100)), (10, 120, 200), tol=6)


def test_exif_orientation_6_is_applied_and_dropped(tmp_path):
    stored = Image.new("RGB", (400, 200), (220, 20, 20))
    stored.paste((20, 20, 220), (200, 0, 400, 200))  # stored: left red, right blue
    exif = Image.Exif()
    exif[0x0112] = 6
    src = tmp_path / "sideways.jpg"
    stored.save(src, quality=95, exif=exif.tobytes())
    assert upright_size(src) == (200, 400)
    info = prepare_photo(src, tmp_path / "upright.jpg")
    assert info.exif_rotated and (info.width, info.height) == (200, 400)
    img = _check_jpeg(tmp_path / "upright.jpg", info)
    assert _near(img.getpixel((100, 80)), (220, 20, 20))  # rotated 90 degrees clockwise: left -> top
    assert _near(img.getpixel((100, 320)), (20, 20, 220))


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    src = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (200, 120), (0, 255, 255, 0)).save(src, quality=95)
    assert Image.open(src).mode == "CMYK"
    info = prepare_photo(src, tmp_path / "out.jpg")
    img = _check_jpeg(tmp_path / "out.jpg", info)
    assert _near(img.getpixel((100, 60)), (255, 0, 0), tol=30)


def test_alpha_png_is_composited_on_white(tmp_path):
    rgba = Image.new("RGBA", (200, 200), (0, 0, 0, 0))
    rgba.paste((0, 128, 0, 255), (50, 50, 150, 150))
    src = tmp_path / "alpha.png"
    rgba.save(src)
    info = prepare_photo(src, tmp_path / "out.jpg")
    img = _check_jpeg(tmp_path / "out.jpg", info)
    assert _near(img.getpixel((5, 5)), (255, 255, 255), tol=4)
    assert _near(img.getpixel((100, 100)), (0, 128, 0), tol=10)


def test_16bit_png_is_scaled_not_clipped(tmp_path):
    ramp = np.tile(np.linspace(0, 65535, 256).astype(np.uint16), (100, 1))
    src = tmp_path / "deep.png"
    Image.fromarray(ramp).save(src)
    assert Image.open(src).mode.startswith("I")
    info = prepare_photo(src, tmp_path / "out.jpg")
    img = _check_jpeg(tmp_path / "out.jpg", info)
    assert img.getpixel((2, 50))[0] < 12
    assert 110 < img.getpixel((128, 50))[0] < 146  # mid-grey, not blown out to white
    assert img.getpixel((253, 50))[0] > 243


@pytest.mark.parametrize("mode", ["P", "L", "1", "LA"])
def test_palette_and_grayscale_modes(tmp_path, mode):
    src = tmp_path / f"m{mode}.png"
    _noisy(120, 90).convert(mode).save(src)
    info = prepare_photo(src, tmp_path / "out.jpg")
    assert (info.width, info.height) == (120, 90)
    _check_jpeg(tmp_path / "out.jpg", info)


def test_animated_gif_takes_first_frame(tmp_path):
    frames = [Image.new("RGB", (160, 120), c) for c in ((230, 20, 20), (20, 230, 20), (20, 20, 230))]
    src = tmp_path / "anim.gif"
    frames[0].save(src, save_all=True, append_images=frames[1:], duration=100, loop=0)
    info = prepare_photo(src, tmp_path / "out.jpg")
    assert info.source_format == "GIF"
    assert _near(_check_jpeg(tmp_path / "out.jpg", info).getpixel((80, 60)), (230, 20, 20), tol=30)


def _expect(code: str, src: Path, tmp_path: Path, *words: str) -> MediaError:
    dest = tmp_path / "never.jpg"
    with pytest.raises(MediaError) as err:
        prepare_photo(src, dest)
    assert err.value.code == code, err.value
    for word in words:
        assert word in err.value.message.lower()
    assert not dest.exists()
    return err.value


@pytest.mark.parametrize("size", [(1, 1), (64, 63), (500, 40)])
def test_too_small_is_invalid(tmp_path, size):
    src = tmp_path / "tiny.png"
    Image.new("RGB", size, "white").save(src)
    _expect("INVALID_INPUT", src, tmp_path, "at least 64")


def test_random_bytes_empty_and_missing_are_invalid(tmp_path):
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(random.Random(7).randbytes(50_000))
    _expect("INVALID_INPUT", junk, tmp_path, "not a recognizable image")
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    _expect("INVALID_INPUT", empty, tmp_path, "empty")
    _expect("INVALID_INPUT", tmp_path / "missing.jpg", tmp_path, "no such file")


def test_truncated_jpeg_is_invalid(tmp_path):
    buf = io.BytesIO()
    _noisy(600, 400).save(buf, "JPEG", quality=90)
    src = tmp_path / "cut.jpg"
    src.write_bytes(buf.getvalue()[: buf.tell() // 2])
    _expect("INVALID_INPUT", src, tmp_path, "truncated")


@pytest.mark.parametrize("size", [(20000, 20000), (10000, 9000), (9500, 9000)])
def test_decompression_bomb_is_invalid(tmp_path, size):
    src = tmp_path / "bomb.png"
    src.write_bytes(_png_header_only(*size))
    _expect("INVALID_INPUT", src, tmp_path)


@pytest.mark.parametrize(
    "payload",
    [
        b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(200),
        b"\x00\x00\x00\x1cftypmif1\x00\x00\x00\x00mif1heic" + bytes(200),
        b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="100" height="100"></svg>',
        b"<svg width='10' height='10'><rect width='10' height='10'/></svg>",
        b"<!DOCTYPE html><html><body>not a photo</body></html>",
        b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n",
    ],
    ids=["heic", "heif-mif1", "svg-xml", "svg", "html", "pdf"],
)
def test_recognizable_but_unsupported(tmp_path, payload):
    src = tmp_path / "upload.jpg"
    src.write_bytes(payload)
    _expect("UNSUPPORTED_FORMAT", src, tmp_path)


@pytest.mark.parametrize("ratio", [(16, 9), (9, 16), (1, 1)])
def test_crop_to_aspect(tmp_path, ratio):
    src = tmp_path / "p.jpg"
    img = Image.new("RGB", (1200, 900), (200, 200, 200))
    img.paste((255, 0, 0), (590, 440, 610, 460))  # centre marker survives a centre crop
    img.save(src, quality=95)
    out = crop_to_aspect(src, tmp_path / "c.jpg", *ratio)
    with Image.open(out) as cropped:
        w, h = cropped.size
        assert abs(w / h - ratio[0] / ratio[1]) < 2 / min(w, h)
        assert max(w, h) in (1200, 900) and w <= 1200 and h <= 900
        assert _near(cropped.getpixel((w // 2, h // 2)), (255, 0, 0), tol=40)


def test_jpeg_data_uri_fits_limit(tmp_path):
    src = tmp_path / "noisy.jpg"
    _noisy(3000, 2000).save(src, quality=95)
    prefix = "data:image/jpeg;base64,"
    uri = jpeg_data_uri(src)
    assert uri.startswith(prefix) and len(uri) <= 5_000_000
    with Image.open(io.BytesIO(base64.b64decode(uri[len(prefix) :]))) as img:
        assert img.format == "JPEG" and max(img.size) == 1920
    small = jpeg_data_uri(src, max_chars=120_000)
    assert len(small) <= 120_000
    with Image.open(io.BytesIO(base64.b64decode(small[len(prefix) :]))) as img:
        assert img.format == "JPEG" and abs(img.width / img.height - 1.5) < 0.02
    with pytest.raises(MediaError):
        jpeg_data_uri(src, max_chars=200)


def test_sample_listing_photos_pass_intake(tmp_path):
    listing = json.loads((SAMPLE / "listing.json").read_text())
    assert listing["listing_id"] and listing["orientation"] == "landscape"
    files = [SAMPLE / job["file"] for job in listing["jobs"]]
    assert len(files) == 6 and all(f.stat().st_size < 600_000 for f in files)
    assert sum(f.stat().st_size for f in files) < 3_000_000
    infos = [prepare_photo(f, tmp_path / f.name) for f in files]
    assert any(i.height > i.width for i in infos), "needs a portrait photo"
    rotated = [i for i in infos if i.exif_rotated]
    assert rotated and all(i.width > i.height for i in rotated), "sideways photo must come out landscape"
    assert all(i.source_format == "JPEG" and min(i.width, i.height) >= 1200 for i in infos)


@pytest.mark.parametrize("fmt", ["WEBP", "AVIF", "BMP", "TIFF"])
def test_other_raster_formats_are_accepted(tmp_path, fmt):
    src = tmp_path / f"photo.{fmt.lower()}"
    Image.new("RGB", (160, 120), (30, 140, 90)).save(src, fmt)
    info = prepare_photo(src, tmp_path / "out.jpg")
    assert (info.width, info.height, info.source_format) == (160, 120, fmt)
    assert _near(_check_jpeg(tmp_path / "out.jpg", info).getpixel((80, 60)), (30, 140, 90), tol=12)
