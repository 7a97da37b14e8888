"""The one shape every curation method reports in, before it becomes a flag in the store."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

KINDS = ("exact_duplicate", "near_duplicate", "outlier", "label_issue", "box_issue", "label_conflict")
DUPLICATE_KINDS = ("exact_duplicate", "near_duplicate", "outlier", "label_conflict")  # what `curate duplicates` checks
LABEL_KINDS = ("label_issue", "box_issue")


@dataclass
class Finding:
    """A suspected problem with one image.

    ``score`` is in [0, 1] and higher means more likely a real problem, whatever the method, so
    one ranked list can mix kinds. ``group`` ties the members of a duplicate cluster together.
    """

    key: str  # the image's key in the manifest (its content hash)
    kind: str
    score: float
    reason: str
    group: str | None = None
    method: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown finding kind {self.kind!r}")
        self.score = float(min(1.0, max(0.0, self.score)))
