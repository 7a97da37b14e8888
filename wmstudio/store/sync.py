"""Mirror a manifest into the store: an idempotent upsert of its images and labels.

Syncing the same manifest twice changes nothing; a manifest whose labels changed replaces only
the labels that came from the manifest (author ``MANIFEST_AUTHOR``), so corrections that
reviewers made in the store are kept beside them. The caller owns the transaction, so a failure
anywhere in the batch rolls all of it back.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from wmstudio.data.manifest import Item, Manifest
from wmstudio.store.models import Dataset, DatasetVersion, Image, Label

log = logging.getLogger(__name__)

MANIFEST_AUTHOR = "manifest"
LabelKey = tuple[str | None, tuple[float, float, float, float] | None]


@dataclass
class SyncReport:
    dataset: str
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    labels_replaced: int = 0
    version: str = ""


def get_or_create_dataset(session: Session, name: str, root: Path | str | None = None) -> Dataset:
    dataset = session.scalar(select(Dataset).where(Dataset.name == name))
    if dataset is None:
        dataset = Dataset(name=name, root=str(root or ""))
        session.add(dataset)
        session.flush()
    elif root is not None and dataset.root != str(root):
        dataset.root = str(root)
    return dataset


def _label_source(item: Item) -> str:
    return item.source if item.source in {"human", "import", "synthetic", "model"} else "import"


def desired_labels(item: Item) -> set[LabelKey]:
    """The label rows a manifest item stands for: one image-level row plus one row per box."""
    rows: set[LabelKey] = {(item.brand, None)}
    for box in item.boxes:
        x0, y0, x1, y1 = (float(v) for v in box.box)
        rows.add((box.brand, (x0, y0, x1, y1)))
    return rows


def _key(label: Label) -> LabelKey:
    return (label.brand, label.box)


def _update_image(image: Image, item: Item) -> bool:
    fields = {
        "path": item.path,
        "width": item.width,
        "height": item.height,
        "split": item.split,
        "cluster": item.group,
        "origin": item.origin,
    }
    changed = False
    for name, value in fields.items():
        if getattr(image, name) != value:
            setattr(image, name, value)
            changed = True
    return changed


def import_manifest(
    session: Session, manifest: Manifest, dataset_name: str | None = None, root: Path | str | None = None
) -> SyncReport:
    """Upsert every item of ``manifest`` into dataset ``dataset_name`` (default: the manifest's name)."""
    name = dataset_name or manifest.name
    dataset = get_or_create_dataset(session, name, root)
    report = SyncReport(dataset=name)
    existing = {
        image.sha256: image for image in session.scalars(select(Image).where(Image.dataset_id == dataset.id)).all()
    }
    manifest_labels: dict[int, list[Label]] = {}
    if existing:
        rows = session.scalars(
            select(Label).join(Image).where(Image.dataset_id == dataset.id, Label.author == MANIFEST_AUTHOR)
        ).all()
        for label in rows:
            manifest_labels.setdefault(label.image_id, []).append(label)
    for key in sorted(manifest.items):
        item = manifest.items[key]
        image = existing.get(key)
        wanted = desired_labels(item)
        if image is None:
            image = Image(dataset=dataset, sha256=key, path=item.path, width=item.width, height=item.height)
            _update_image(image, item)
            session.add(image)
            report.added += 1
            current: list[Label] = []
        else:
            current = manifest_labels.get(image.id, [])
            changed = _update_image(image, item)
            same_labels = {_key(label) for label in current} == wanted and len(current) == len(wanted)
            if same_labels and not changed:
                report.unchanged += 1
                continue
            report.updated += 1
            if same_labels:
                continue
            for label in current:
                session.delete(label)
            report.labels_replaced += 1
        source = _label_source(item)
        for brand, box in sorted(wanted, key=lambda k: (k[1] is not None, k[0] or "", k[1] or ())):
            x0, y0, x1, y1 = box if box is not None else (None, None, None, None)
            image.labels.append(Label(brand=brand, x0=x0, y0=y0, x1=x1, y1=y1, source=source, author=MANIFEST_AUTHOR))
    session.flush()
    report.version = manifest.version()
    known = session.scalar(
        select(DatasetVersion).where(DatasetVersion.dataset_id == dataset.id, DatasetVersion.version == report.version)
    )
    if known is None:
        session.add(
            DatasetVersion(
                dataset_id=dataset.id,
                version=report.version,
                image_count=len(manifest.items),
                label_count=sum(len(desired_labels(item)) for item in manifest.items.values()),
                note=f"synced: {report.added} added, {report.updated} updated",
            )
        )
        session.flush()
    return report


def sync_after_ingest(manifest: Manifest, dataset_dir: Path) -> SyncReport | None:
    """The ingest hook: mirror a dataset of ``datasets_dir`` into the store; never raises.

    Only datasets under the project's ``datasets_dir`` are mirrored (what ``wmstudio ingest``
    and training create), so scratch ingests into temporary folders (tests, one-off scripts) do
    not fill the shared store. A store failure is logged: the manifest on disk is already saved.
    """
    from wmstudio.settings import get_settings
    from wmstudio.store.session import transaction

    settings = get_settings()
    if not settings.store_sync_on_ingest:
        return None
    try:
        Path(dataset_dir).resolve().relative_to(settings.datasets_dir.resolve())
    except ValueError:
        return None
    try:
        with transaction() as session:
            report = import_manifest(session, manifest, manifest.name, Path(dataset_dir).resolve())
        log.info("store: synced %s (%d added, %d updated)", report.dataset, report.added, report.updated)
        return report
    except Exception:  # the ingest itself succeeded; the store can be re-synced later
        log.exception("store: could not sync dataset %s after ingest; run `wmstudio store sync`", manifest.name)
        return None
