"""Fonts available offline, split so that some renderings are never seen in training.

The hidden test set holds renderings we have never seen, so the synthetic test split is drawn
with fonts the training split never used; its score then measures generalisation to a new
rendering rather than memory of a glyph shape.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

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
            found.setdefault(path.name, path)
    return tuple(sorted(found.values(), key=lambda p: p.name))


def font_split(path: Path) -> str:
    """'test' for roughly one font in four (stable by name), 'train' for the rest."""
    digest = int(hashlib.sha1(path.name.encode()).hexdigest(), 16)
    return "test" if digest % 4 == 0 else "train"


def fonts_for(split: str) -> tuple[Path, ...]:
    """Fonts for a synthetic split: test and val use held-out fonts, train the others."""
    fonts = available_fonts()
    wanted = "test" if split in {"test", "val"} else "train"
    chosen = tuple(f for f in fonts if font_split(f) == wanted)
    return chosen or fonts
