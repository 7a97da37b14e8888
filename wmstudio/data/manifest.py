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
class Origin:
    """One user file holding an item's content, with the label that file was given.

    A photo stored once (content hash) may come from several files: byte-identical copies,
    possibly labelled differently. Each keeps its own path and label here, so no copy and no
    label is dropped; the item's own ``brand``/``boxes`` are the label in force (the first
    seen, until a reviewer decides: ``wmstudio curate decide FLAG accept --label X``).
    """

    path: str
    brand: str | None
    boxes: list[Box] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: dict) -> Origin:
        return cls(data["path"], data.get("brand"), [Box(**b) for b in data.get("boxes", [])])


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
    origin: str = ""  # where the file came from (the first of ``origins``; kept for older readers)
    split: str | None = None
    group: str = ""  # near-duplicate group: items of a group always share a split
    notes: list[str] = field(default_factory=list)
    origins: list[Origin] = field(default_factory=list)  # every user file with this content, and its label

    def __post_init__(self) -> None:
        if not self.origins and self.origin:
            self.origins = [Origin(self.origin, self.brand, [Box(b.brand, list(b.box)) for b in self.boxes])]
        elif self.origins and not self.origin:
            self.origin = self.origins[0].path

    @property
    def watermarked(self) -> bool:
        return self.brand is not None

    @property
    def paths(self) -> list[str]:
        """Every user path of this content, first seen first (empty for generated images)."""
        return [o.path for o in self.origins]

    @property
    def label_conflict(self) -> bool:
        """Copies of this very content were given different image-level labels."""
        return len({o.brand for o in self.origins}) > 1

    def labelled_paths(self) -> list[tuple[str, str | None]]:
        """(user path, label) of every copy; a lone copy carries the label in force.

        With one file there is nothing to disagree with, so code that edits ``brand`` directly
        (benchmarks planting errors, older tools) is still read right; copies keep their own.
        """
        if len(self.origins) <= 1:
            return [(self.origin, self.brand)]
        return [(o.path, o.brand) for o in self.origins]

    def merge_origin(self, origin: Origin) -> bool:
        """Record another file with this content; False when that path is already known.

        A known path keeps the label it had: re-ingesting a folder never undoes a reviewer's
        decision on it.
        """
        if origin.path in self.paths:
            return False
        self.origins.append(origin)
        return True

    def set_label(self, brand: str | None, note: str) -> None:
        """A reviewer's label for this content and every copy of it (the conflict is resolved)."""
        if brand is None:
            boxes: list[Box] = []
        else:
            agreeing = next((o.boxes for o in self.origins if o.brand == brand and o.boxes), None)
            boxes = [Box(brand, list(b.box)) for b in (agreeing or self.boxes)]
        self.brand, self.boxes, self.source = brand, boxes, "human"
        for origin in self.origins:
            origin.brand, origin.boxes = brand, [Box(b.brand, list(b.box)) for b in boxes]
        self.notes.append(note)

    @classmethod
    def from_dict(cls, data: dict) -> Item:
        boxes = [Box(**b) for b in data.pop("boxes", [])]
        origins = [Origin.from_dict(o) for o in data.pop("origins", [])]
        return cls(boxes=boxes, origins=origins, **data)


@dataclass
class Manifest:
    """A dataset: items keyed by content hash plus the reports of how it was built."""

    name: str
    items: dict[str, Item] = field(default_factory=dict)
    reports: list[dict] = field(default_factory=list)
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    sources: list[str] = field(default_factory=list)  # resolved paths ingested into it: the dataset's identity

    def add(self, item: Item) -> bool:
        """Add an item; returns False when the same content is already present.

        A file whose content is already present is not lost: its path and label join the
        stored item's ``origins``.
        """
        present = self.items.get(item.sha256)
        if present is not None:
            for origin in item.origins:
                present.merge_origin(origin)
            return False
        self.items[item.sha256] = item
        return True

    def version(self) -> str:
        """A short hash of the content and labels in force: the data version in model cards.

        Origins are provenance, not training data, so a copy found in another folder does not
        change the version (and manifests written before origins existed keep theirs).
        """
        rows = [asdict(self.items[k]) for k in sorted(self.items)]
        for row in rows:
            row.pop("origins", None)
        return sha256_bytes(json.dumps(rows, sort_keys=True).encode())[:12]

    def label_conflicts(self) -> list[Item]:
        """Items whose byte-identical copies carry different labels, in key order."""
        return [self.items[k] for k in sorted(self.items) if self.items[k].label_conflict]

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
            "sources": self.sources,
        }

    def save(self, folder: Path) -> Path:
        """Write atomically, so a crash never leaves a half-written manifest."""
        return atomic_write(Path(folder) / MANIFEST_NAME, json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, folder: Path) -> Manifest:
        data = json.loads((folder / MANIFEST_NAME).read_text())
        items = {d["sha256"]: Item.from_dict(dict(d)) for d in data.get("items", [])}
        return cls(
            name=data["name"],
            items=items,
            reports=data.get("reports", []),
            created=data["created"],
            sources=data.get("sources") or _reported_sources(data.get("reports", [])),
        )

    @classmethod
    def load_or_new(cls, folder: Path, name: str) -> Manifest:
        return cls.load(folder) if (folder / MANIFEST_NAME).exists() else cls(name=name)


def _reported_sources(reports: list[dict]) -> list[str]:
    """Sources of a manifest written before ``sources`` existed: the absolute ones its reports name."""
    found: list[str] = []
    for report in reports:
        source = Path(str(report.get("source", "")))
        if source.is_absolute() and str(source.resolve()) not in found:
            found.append(str(source.resolve()))
    return found
