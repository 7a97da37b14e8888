"""Safe decoding: every awkward or hostile image gets an RGB image or a coded error."""

from __future__ import annotations

import pytest

from tests.conftest import (
    animated_gif,
    bomb_png,
    cmyk_jpeg,
    exif_rotated_jpeg,
    jpeg_bytes,
    palette_png,
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
