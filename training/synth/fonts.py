"""Fonts available offline, split so that some renderings are never seen in training.

The hidden test set holds renderings we have never seen, so the synthetic test split is drawn
with fonts the training split never used; its score then measures generalisation to a new
rendering rather than memory of a glyph shape.

Training also draws with the variable fonts that ship inside the project's own dependencies
(Streamlit's Source Sans 3, Source Serif 4 and Source Code Pro, upright and italic), each at
several weights. Error analysis of v19 on validation found clear, large marks in held-out fonts
not proposed at all: 35 system fonts (mostly DejaVu and Liberation) are too few typeface
designs for a detector to learn letters rather than fonts. These faces are train-only, so the
validation and test sets (held-out system fonts) stay exactly as they were.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

SYSTEM_FONT_DIRS = (Path("/usr/share/fonts"), Path("/usr/local/share/fonts"))
PACKAGE_FONT_GLOBS = (("streamlit", "static/static/media", "Source*.woff2"),)
PACKAGE_FONT_WEIGHTS = (250, 400, 600, 800)


@dataclass(frozen=True)
class VariableFace:
    """One weight of a variable font: a typeface the generator can draw with, like a .ttf path."""

    path: Path
    weight: int

    @property
    def name(self) -> str:
        """Readable and stable: bundler hashes in the file name are dropped."""
        family = re.sub(r"(\.ttf)?\.[\w-]+\.woff2$", "", self.path.name)
        return f"{family}-w{self.weight}"


FontSource = Path | VariableFace


def load_font(font: FontSource, size: int) -> ImageFont.FreeTypeFont:
    """A font at ``size`` px, at the weight a :class:`VariableFace` names."""
    if isinstance(font, VariableFace):
        return _load_variable_face(font, size)
    return ImageFont.truetype(str(font), size=size)


@lru_cache(maxsize=1024)
def _load_variable_face(face: VariableFace, size: int) -> ImageFont.FreeTypeFont:
    """Cached: FreeType unpacks a WOFF2 file on every open (about 6 ms, 170 times a .ttf's),
    and the generator asks for the same face and size many times. Nothing mutates the result."""
    loaded = ImageFont.truetype(str(face.path), size=size)
    axes = loaded.get_variation_axes()
    loaded.set_variation_by_axes([face.weight if axis["name"] == b"Weight" else axis["default"] for axis in axes])
    return loaded


@lru_cache(maxsize=1)
def available_fonts() -> tuple[Path, ...]:
    """All TrueType fonts on this machine plus those that ship with matplotlib, de-duplicated."""
    found: dict[str, Path] = {}
    roots = [d for d in SYSTEM_FONT_DIRS if d.is_dir()]
    try:
        import matplotlib

        roots.append(Path(matplotlib.get_data_path()) / "fonts" / "ttf")
    except ImportError:  # pragma: no cover - matplotlib is a core dependency
        pass
    for root in roots:
        for path in sorted(root.rglob("*.ttf")):
            # Symbol/maths fonts render Latin text as glyph soup; they are no use for wordmarks.
            lowered = path.name.lower()
            if any(skip in lowered for skip in ("math", "symbol", "cmex", "cmsy", "display", "stixsiz")):
                continue
            if path.name not in found and renders_latin(path):
                found[path.name] = path
    return tuple(sorted(found.values(), key=lambda p: p.name))


@lru_cache(maxsize=1)
def package_faces() -> tuple[VariableFace, ...]:
    """Variable fonts shipped by installed dependencies, at :data:`PACKAGE_FONT_WEIGHTS`."""
    faces = []
    for package, folder, pattern in PACKAGE_FONT_GLOBS:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            continue
        root = Path(next(iter(spec.submodule_search_locations))) / folder
        for path in sorted(root.glob(pattern)):
            if not renders_latin(path) or not _has_weight_axis(path):
                continue
            faces.extend(VariableFace(path, weight) for weight in PACKAGE_FONT_WEIGHTS)
    return tuple(faces)


def _has_weight_axis(path: Path) -> bool:
    try:
        axes = ImageFont.truetype(str(path), 20).get_variation_axes()
    except OSError:  # not a variable font, or FreeType built without variation support
        return False
    return any(axis["name"] == b"Weight" for axis in axes)


def renders_latin(path: Path, probe: str = "ru9.c") -> bool:
    """True when the font draws distinct, non-empty glyphs for the wordmarks' characters.

    Fallback and private-use fonts (LastResort, STIX 'NonUni') draw the same box for every
    letter; a wordmark in such a font would teach the model that a row of boxes is a brand.
    """
    try:
        font = ImageFont.truetype(str(path), 40)
    except OSError:
        return False
    glyphs = []
    for char in probe:
        canvas = Image.new("L", (64, 64), 0)
        ImageDraw.Draw(canvas).text((8, 4), char, font=font, fill=255)
        glyphs.append(np.asarray(canvas))
    if any(glyph.max() == 0 for glyph in glyphs):
        return False
    return all(not np.array_equal(a, b) for i, a in enumerate(glyphs) for b in glyphs[i + 1 :])


def font_split(path: Path) -> str:
    """'test' for roughly one font in four (stable by name), 'train' for the rest."""
    digest = int(hashlib.sha1(path.name.encode()).hexdigest(), 16)
    return "test" if digest % 4 == 0 else "train"


def font_fingerprint() -> str:
    """A short hash of the usable fonts' names and sizes: what the synthetic sets depend on."""
    digest = hashlib.sha1()
    for path in available_fonts():
        digest.update(f"{path.name}:{path.stat().st_size};".encode())
    for face in package_faces():
        digest.update(f"{face.path.name}@{face.weight}:{face.path.stat().st_size};".encode())
    return digest.hexdigest()[:12]


def fonts_for(split: str) -> tuple[FontSource, ...]:
    """Fonts for a synthetic split: test and val use held-out fonts, train the others.

    Train also gets :func:`package_faces`, after the system fonts so that the system fonts keep
    their indices.
    """
    fonts = available_fonts()
    if split in {"test", "val"}:
        return tuple(f for f in fonts if font_split(f) == "test") or fonts
    return tuple(f for f in fonts if font_split(f) == "train") + package_faces() or fonts
