"""Safe decoding: every awkward or hostile image gets an RGB image or a coded error."""

from __future__ import annotations

import io
import tracemalloc

import numpy as np
import pytest
from PIL import Image, TiffImagePlugin

from tests.conftest import (
    animated_gif,
    bomb_png,
    cmyk_jpeg,
    encode,
    exif_rotated_jpeg,
    jpeg_bytes,
    palette_png,
    photo,
    png16,
    rgba_png,
    truncated_jpeg,
    webp_bytes,
)
from wmstudio.imaging import ImageError, decode_image

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("make", "size", "mode"),
    [
        (cmyk_jpeg, (640, 480), "CMYK"),
        (png16, (320, 240), "I;16"),
        (palette_png, (640, 480), "P"),
        (rgba_png, (640, 480), "RGBA"),
        (animated_gif, (200, 150), "P"),
        (webp_bytes, (640, 480), "RGB"),
    ],
)
def test_odd_modes_become_rgb(make, size, mode):
    decoded = decode_image(make())
    assert decoded.image.mode == "RGB"
    assert (decoded.width, decoded.height) == size == decoded.image.size
    assert decoded.source_mode.startswith(mode[:1])


def test_sixteen_bit_keeps_its_range():
    decoded = decode_image(png16())
    extrema = decoded.image.convert("L").getextrema()
    assert extrema[0] < 10 and extrema[1] > 245  # scaled, not clipped to black or white


def test_exif_rotation_is_applied():
    decoded = decode_image(exif_rotated_jpeg(640, 480))
    assert decoded.exif_rotated
    assert (decoded.width, decoded.height) == (480, 640) == decoded.image.size


def test_draft_decoding_reports_original_size():
    decoded = decode_image(jpeg_bytes(1080, 810), draft_size=320)
    assert (decoded.width, decoded.height) == (1080, 810)
    assert decoded.image.width < 1080 and decoded.image.width >= 320
    sx, _sy = decoded.scale
    assert sx == pytest.approx(1080 / decoded.image.width)


@pytest.mark.parametrize(("width", "height"), [(1080, 810), (810, 1080), (960, 600), (2000, 300)])
def test_draft_decoding_keeps_the_long_side_the_letterbox_needs_and_no_more(width, height):
    """Half scale is enough when its long side still covers the input size (416 px here)."""
    decoded = decode_image(jpeg_bytes(width, height), draft_size=416)
    long_side = max(decoded.image.size)
    assert long_side >= 416
    assert long_side < max(width, height), "a 1080 px photo must not be decoded at full size for 416 px"
    assert decoded.image.width / decoded.image.height == pytest.approx(width / height, rel=0.02)


def test_draft_decoding_with_exif_rotation_keeps_upright_size():
    decoded = decode_image(exif_rotated_jpeg(1280, 960), draft_size=320)
    assert (decoded.width, decoded.height) == (960, 1280)
    assert decoded.image.height > decoded.image.width


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "empty_file"),
        (b"hello, I am a text file pretending to be a JPEG", "not_an_image"),
        (b"%PDF-1.4 not really", "not_an_image"),
    ],
)
def test_non_images_are_refused(data, code):
    with pytest.raises(ImageError) as info:
        decode_image(data)
    assert info.value.code == code


def test_truncated_jpeg_is_refused():
    with pytest.raises(ImageError) as info:
        decode_image(truncated_jpeg())
    assert info.value.code == "truncated_image"


def test_decompression_bomb_is_refused_from_the_header():
    data = bomb_png()
    assert len(data) < 2_000_000
    with pytest.raises(ImageError) as info:
        decode_image(data, max_pixels=40_000_000)
    assert info.value.code == "too_many_pixels"


def test_missing_file_is_a_coded_error(tmp_path):
    with pytest.raises(ImageError) as info:
        decode_image(tmp_path / "nope.jpg")
    assert info.value.code == "unreadable_file"


def test_non_images_are_refused_even_after_ultralytics_patched_pillow():
    pytest.importorskip("ultralytics")
    import ultralytics.utils.patches  # noqa: F401 - replaces PIL.Image.open on import

    with pytest.raises(ImageError) as info:
        decode_image(b"plain text, not a photo")
    assert info.value.code == "not_an_image"


def test_sixteen_bit_grey_keeps_its_high_byte_with_integer_arithmetic():
    """High byte, exactly: no float64 round trip (65535 -> 255, 256 -> 1, 255 -> 0)."""
    values = np.array([[0, 255, 256, 32768, 65535]], dtype=np.uint16)
    decoded = decode_image(encode(Image.fromarray(values), "PNG"))
    assert [decoded.image.getpixel((x, 0))[0] for x in range(5)] == [0, 0, 1, 128, 255]


def test_sixteen_bit_decoding_makes_no_float_copies():
    """numpy reports its buffers to tracemalloc: a float64 copy of 4 MP alone would be 32 MB."""
    data = encode(Image.fromarray(np.full((2000, 2000), 40000, dtype=np.uint16)), "PNG")
    tracemalloc.start()
    try:
        decode_image(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 12 * 1024 * 1024, peak


@pytest.mark.parametrize("mode", ["RGB", "I;16", "P", "1", "RGBA"])
def test_max_side_reduces_right_after_decoding(mode):
    image = photo(3000, 1500).convert(mode) if mode != "I;16" else Image.new("I;16", (3000, 1500), 30000)
    decoded = decode_image(encode(image, "PNG"), max_side=1024)
    assert decoded.image.mode == "RGB" and decoded.image.size == (1000, 500)  # factor 3
    assert (decoded.width, decoded.height) == (3000, 1500) and decoded.scale == (3.0, 3.0)


def test_max_side_keeps_the_exif_rotation():
    decoded = decode_image(exif_rotated_jpeg(1280, 960), max_side=500)
    assert decoded.exif_rotated and decoded.image.size == (320, 427)  # upright portrait, factor 3
    assert (decoded.width, decoded.height) == (960, 1280)


def test_multipage_tiff_is_not_walked(monkeypatch):
    pages = [photo(64, 48, seed=i) for i in range(3)]
    buffer = io.BytesIO()
    pages[0].save(buffer, "TIFF", save_all=True, append_images=pages[1:])

    def walk(self):
        raise AssertionError("decode_image counted every page of a TIFF")

    monkeypatch.setattr(TiffImagePlugin.TiffImageFile, "n_frames", property(walk))
    decoded = decode_image(buffer.getvalue())
    assert decoded.animated and decoded.image.size == (64, 48)
    assert not decode_image(jpeg_bytes()).animated


@pytest.mark.parametrize("fmt", ["ICO", "PPM", "TGA", "PCX"])
def test_only_our_parsers_see_the_bytes(fmt):
    """Formats Pillow could read but we do not accept are not even parsed: not an image to us."""
    with pytest.raises(ImageError) as info:
        decode_image(encode(photo(64, 48), fmt))
    assert info.value.code == "not_an_image"
