"""The detector's classes. Their order is the class index in every model this project trains."""

from __future__ import annotations

BRANDS: tuple[str, ...] = ("rumah123", "99co")
"""Brands the detector reports. A new brand is appended, never inserted, so that a warm start
from an earlier model keeps the meaning of every existing class index."""

BRAND_ALIASES: dict[str, str] = {
    "rumah123": "rumah123",
    "rumah_123": "rumah123",
    "r123": "rumah123",
    "99co": "99co",
    "99.co": "99co",
    "99_co": "99co",
    "99": "99co",
}

NO_WATERMARK_NAMES = frozenset({"", "none", "no_watermark", "nowatermark", "clean", "negative", "0"})


def normalise_brand(name: str | None) -> str | None:
    """Map a brand spelling from any source to its canonical name, or None for 'no mark'.

    Raises ValueError for an unknown brand so that a typo is reported rather than
    silently dropped.
    """
    key = (name or "").strip().lower().replace(" ", "").replace("-", "_")
    if key in NO_WATERMARK_NAMES:
        return None
    if key in BRAND_ALIASES:
        return BRAND_ALIASES[key]
    raise ValueError(f"unknown brand {name!r}; expected one of {', '.join(BRANDS)}")
