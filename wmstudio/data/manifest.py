"""The canonical dataset manifest: one JSON file listing every image with its labels.

Every ingest format and the synthetic generator end here, so training, evaluation, EDA and
curation read one shape. Images are stored once, named by their content hash, which makes
re-ingesting the same files a no-op and lets duplicates be spotted across sources.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from wmstudio.atomic import atomic_write

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Box:
    """A labelled box in original image pixels (x0, y0, x1, y1)."""

    brand: str
    box: list[float]


@dataclass
class Item:
    """One image of the dataset and its labels."""

    sha256: str
    path: str  # relative to the dataset folder
    width: int
    height: int
    brand: str | None  # image-level label; None = no rumah123/99co mark
    boxes: list[Box] = field(default_factory=list)
    source: str = "import"  # import | synthetic | human | model
    origin: str = ""  # where the file came from
    split: str | None = None
    group: str = ""  # near-duplicate group: items of a group always share a split
    notes: list[str] = field(default_factory=list)

    @property
    def watermarked(self) -> bool:
        return self.brand is not None

    @classmethod
    def from_dict(cls, data: dict) -> Item:
        boxes = [Box(**b) for b in data.pop("boxes", [])]
        return cls(boxes=boxes, **data)


@dataclass
class Manifest:
    """A dataset: items keyed by content hash plus the reports of how it was built."""

    name: str
    items: dict[str, Item] = field(default_factory=dict)
    reports: list[dict] = field(default_factory=list)
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def add(self, item: Item) -> bool:
        """Add an item; returns False when the same content is already present."""
        if item.sha256 in self.items:
            return False
        self.items[item.sha256] = item
        return True

    def version(self) -> str:
        """A short hash of the content and labels: the data version in model cards."""
        payload = json.dumps([asdict(self.items[k]) for k in sorted(self.items)], sort_keys=True).encode()
        return sha256_bytes(payload)[:12]

    def split(self, name: str) -> list[Item]:
        """The split's items in content-hash order: the order a saved manifest loads in.

        Insertion order would make a just-ingested manifest list its items differently from the
        same manifest loaded from disk, and everything drawn from a split (the synthetic sets'
        backgrounds) would then depend on whether this machine had ingested before.
        """
        return [self.items[key] for key in sorted(self.items) if self.items[key].split == name]

    def to_dict(self) -> dict:
        return {
            "manifest_version": MANIFEST_VERSION,
            "name": self.name,
            "created": self.created,
            "data_version": self.version(),
            "items": [asdict(self.items[k]) for k in sorted(self.items)],
            "reports": self.reports,
        }

    def save(self, folder: Path) -> Path:
        """Write atomically, so a crash never leaves a half-written manifest."""
        return atomic_write(Path(folder) / MANIFEST_NAME, json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, folder: Path) -> Manifest:
        data = json.loads((folder / MANIFEST_NAME).read_text())
        items = {d["sha256"]: Item.from_dict(dict(d)) for d in data.get("items", [])}
        return cls(name=data["name"], items=items, reports=data.get("reports", []), created=data["created"])

    @classmethod
    def load_or_new(cls, folder: Path, name: str) -> Manifest:
        return cls.load(folder) if (folder / MANIFEST_NAME).exists() else cls(name=name)
