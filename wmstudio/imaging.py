"""Safe image decoding shared by ingest, the API and the demo.

Listing photos arrive from many phones and portals: CMYK JPEGs, 16-bit PNGs, palette images,
EXIF-rotated shots, truncated uploads and the occasional hostile decompression bomb. Every
caller gets the same answer: an RGB image the right way up, or an ``ImageError`` whose code
says what was wrong, never a crash.
"""

from __future__ import annotations

import io
import math
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

SUPPORTED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "MPO"})
# Only these parsers ever see a user's bytes: Pillow otherwise tries every plugin it has (EPS,
# PSD, FITS, ...) on hostile input. MPO is a JPEG with extra pictures, found by the JPEG parser.
OPEN_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
# EXIF orientation -> the transpose that makes the photo upright (as ImageOps.exif_transpose)
EXIF_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
STRIP_ROWS = 256  # rows converted at a time from 16/32-bit grey
REDUCIBLE_MODES = frozenset({"L", "LA", "La", "RGB", "RGBA", "RGBa", "CMYK", "YCbCr", "I", "F"})


class ImageError(ValueError):
    """A user's image could not be used. ``code`` is stable and machine-readable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class DecodedImage:
    """An upright RGB image plus what was done to get it."""

    image: Image.Image
    source_format: str
    source_mode: str
    exif_rotated: bool
    animated: bool  # more than one frame (GIF, WebP, multi-page TIFF); only the first is used
    width: int  # upright size of the original; ``image`` may be smaller (JPEG draft decoding)
    height: int

    @property
    def scale(self) -> tuple[float, float]:
        """Factors that map ``image`` pixels to original pixels."""
        return self.width / self.image.width, self.height / self.image.height


def _pillow_open(buffer: io.BytesIO) -> Image.Image:
    """Pillow's own ``Image.open``, even when Ultralytics has monkey-patched it.

    Importing ultralytics replaces ``PIL.Image.open`` with a wrapper that, on an unidentifiable
    file, tries to pip-install ``pi-heif`` and then raises ``ModuleNotFoundError`` instead of
    ``UnidentifiedImageError``: in a training or curation process a text file renamed .jpg
    would crash instead of being reported. The wrapper keeps the original as ``_image_open``.
    """
    opener = Image.open
    module = sys.modules.get(getattr(opener, "__module__", "") or "")
    if module is not None and module.__name__.startswith("ultralytics"):
        opener = getattr(module, "_image_open", opener)
    return opener(buffer, formats=OPEN_FORMATS)


def _grey_to_8bit(image: Image.Image) -> Image.Image:
    """16- and 32-bit integer grey to 8-bit with integer arithmetic (shifts), no float copies.

    16-bit modes keep their high byte; mode ``I`` (32-bit) does too when it uses more than 8 bits
    (16-bit PNGs and TIFFs often open as ``I``), else it is already 0..255. Done in strips of rows,
    so the temporaries stay small whatever the photo's size.
    """
    width, height = image.size
    high = image.mode.startswith("I;16") or image.getextrema()[1] > 255
    out = np.empty((height, width), dtype=np.uint8)
    for top in range(0, height, STRIP_ROWS):
        rows = np.asarray(image.crop((0, top, width, min(height, top + STRIP_ROWS))))
        if high:
            rows = np.right_shift(np.clip(rows, 0, 65535), 8)
        out[top : top + rows.shape[0]] = np.clip(rows, 0, 255)
    return Image.fromarray(out, "L")


def _float_to_8bit(image: Image.Image) -> Image.Image:
    """Float grey (mode ``F``, scientific TIFFs) stretched to 0..255, in float32 and in place."""
    array = np.array(image, dtype=np.float32)
    low = float(array.min())
    array -= low
    array *= 255.0 / (float(array.max()) or 1.0)
    return Image.fromarray(array.astype(np.uint8), "L")


def _to_rgb(image: Image.Image) -> Image.Image:
    """Normalise any PIL mode to 8-bit RGB."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in {"I;16", "I;16B", "I;16L", "I;16N", "I"}:
        return _grey_to_8bit(image).convert("RGB")
    if mode == "F":
        return _float_to_8bit(image).convert("RGB")
    if mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
        mode = "RGBA"
    if mode in {"RGBA", "LA", "PA", "RGBa", "La"}:
        rgba = image.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, (255, 255, 255))
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    return image.convert("RGB")


def decode_image(
    source: bytes | Path | str,
    max_pixels: int = 40_000_000,
    draft_size: int | None = None,
    max_side: int | None = None,
) -> DecodedImage:
    """Decode bytes or a file into an upright RGB image, or raise ``ImageError``.

    The pixel limit is checked from the header, before any pixel is decoded, so a 20000×20000
    PNG of a few kilobytes costs nothing. With ``draft_size``, JPEGs are decoded directly at a
    reduced scale (DCT scaling) whose long side is no smaller than that (``draft_request``): the
    detector only looks at a few hundred pixels, and decoding a 1080 px JPEG at half scale is
    several times faster.

    With ``max_side``, an image whose long side is larger is reduced by a whole factor (a box
    filter) right after decoding, before the mode conversion and the EXIF rotation, which would
    otherwise each copy the full-size pixels: a flat 40 MP PNG then costs one decoded copy
    (Pillow keeps RGB at 4 bytes a pixel, 160 MB), not four.
    """
    if isinstance(source, (str, Path)):
        try:
            data = Path(source).read_bytes()
        except OSError as exc:
            raise ImageError("unreadable_file", f"cannot read {source}: {exc.strerror}") from exc
    else:
        data = source
    if not data:
        raise ImageError("empty_file", "the file is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = _pillow_open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError("too_many_pixels", f"image exceeds the pixel limit: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise ImageError("not_an_image", "the file is not a recognised image") from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError("not_an_image", f"the file could not be opened as an image: {exc}") from exc

    source_format = image.format or "unknown"
    if source_format not in SUPPORTED_FORMATS:
        raise ImageError(
            "unsupported_format",
            f"{source_format} images are not supported; send JPEG, PNG, WebP, GIF, BMP or TIFF",
        )
    width, height = image.size
    if width <= 0 or height <= 0:
        raise ImageError("not_an_image", "the image has no pixels")
    if width * height > max_pixels:
        raise ImageError(
            "too_many_pixels",
            f"image is {width}x{height} = {width * height} pixels; the limit is {max_pixels}",
        )
    animated = bool(getattr(image, "is_animated", False))  # n_frames would walk every page of a TIFF
    source_mode = image.mode
    orientation = _orientation(image)
    upright_size = (height, width) if orientation in (5, 6, 7, 8) else (width, height)
    try:
        image.seek(0)
        if draft_size and source_format == "JPEG" and source_mode in ("RGB", "L"):
            image.draft("RGB", draft_request(image.size, draft_size))
        image.load()
        if max_side:
            image = _reduce(image, max_side)
        # ImageOps.exif_transpose would copy even an upright image, and re-read the EXIF of a reduced one
        upright = image.transpose(EXIF_TRANSPOSE[orientation]) if orientation in EXIF_TRANSPOSE else image
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        message = str(exc)
        code = "truncated_image" if "truncat" in message.lower() else "corrupt_image"
        raise ImageError(code, f"the image data is damaged: {message}") from exc
    return DecodedImage(
        image=_to_rgb(upright),
        source_format=source_format,
        source_mode=source_mode,
        exif_rotated=orientation not in (0, 1),
        animated=animated,
        width=upright_size[0],
        height=upright_size[1],
    )


def _reduce(image: Image.Image, max_side: int) -> Image.Image:
    """The image shrunk by the smallest whole factor that brings its long side to ``max_side``.

    ``Image.reduce`` averages factor×factor blocks without a float copy of the image. Modes whose
    values cannot be averaged are first made 8-bit at their own size: 16-bit grey to grey (not to
    RGB, four times larger), bilevel to grey, palette to RGB.
    """
    factor = math.ceil(max(image.size) / max_side)
    if factor <= 1:
        return image
    if image.mode.startswith("I;16"):
        image = _grey_to_8bit(image)
    elif image.mode == "1":
        image = image.convert("L")
    elif image.mode not in REDUCIBLE_MODES:
        image = _to_rgb(image)
    return image.reduce(factor)


def draft_request(size: tuple[int, int], draft_size: int) -> tuple[int, int]:
    """The size to ask JPEG draft decoding for, so that the long side stays at least ``draft_size``.

    Pillow keeps both requested sides, and the letterbox scales by the long side only: asking
    ``(416, 416)`` would decode a 1080×810 photo at full size (half scale is 540×405), twice the
    pixels for the same network input. The same aspect ratio at ``draft_size`` long is enough.
    """
    width, height = size
    longest = max(width, height, 1)
    return (max(1, math.ceil(draft_size * width / longest)), max(1, math.ceil(draft_size * height / longest)))


def _orientation(image: Image.Image) -> int:
    try:
        return int(image.getexif().get(0x0112, 1))
    except Exception:  # malformed EXIF must not stop decoding
        return 1
