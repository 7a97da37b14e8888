"""Fonts available offline, split so that some renderings are never seen in training.

The hidden test set holds renderings we have never seen, so the synthetic test split is drawn
with fonts the training split never used; its score then measures generalisation to a new
rendering rather than memory of a glyph shape.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

SYSTEM_FONT_DIRS = (Path("/usr/share/fonts"), Path("/usr/local/share/fonts"))


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
    return digest.hexdigest()[:12]


def fonts_for(split: str) -> tuple[Path, ...]:
    """Fonts for a synthetic split: test and val use held-out fonts, train the others."""
    fonts = available_fonts()
    wanted = "test" if split in {"test", "val"} else "train"
    chosen = tuple(f for f in fonts if font_split(f) == wanted)
    return chosen or fonts
