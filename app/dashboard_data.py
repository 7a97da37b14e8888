"""Every read and write the dashboard makes outside the API: manifests, registry and the store.

Kept in one small module so that when the store's schema or the curation helpers change, the
pages do not: they receive plain dataclasses and dicts from here, never ORM rows (which would
also tie Streamlit's reruns to open database sessions).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import delete, func, select

from wmstudio.data.manifest import MANIFEST_NAME, Manifest
from wmstudio.settings import Settings, get_settings
from wmstudio.store.models import Dataset, DatasetVersion, Flag, Image, Label, Prediction, QueueItem
from wmstudio.store.session import transaction

# --- datasets on disk --------------------------------------------------------------------------


def dataset_names(settings: Settings) -> list[str]:
    """Datasets under ``datasets_dir`` (folders with a manifest), sorted."""
    root = settings.datasets_dir
    return sorted(p.parent.name for p in root.glob(f"*/{MANIFEST_NAME}")) if root.is_dir() else []


def load_manifest(settings: Settings, name: str) -> Manifest | None:
    folder = settings.datasets_dir / name
    return Manifest.load(folder) if (folder / MANIFEST_NAME).exists() else None


def sync_dataset_to_store(name: str, folder: Path) -> None:
    """Mirror a manifest into the store (idempotent), so flags and the queue can refer to it."""
    from wmstudio.store.sync import import_manifest

    with transaction() as session:
        import_manifest(session, Manifest.load(folder), name, Path(folder).resolve())


# --- store reads -------------------------------------------------------------------------------


@dataclass(frozen=True)
class FlagRow:
    id: int
    kind: str
    score: float
    cluster: str | None
    reason: str
    status: str
    decided_by: str | None
    sha256: str
    path: Path
    details: dict = field(default_factory=dict)


@dataclass(frozen=True)
class QueueRow:
    id: int
    score: float
    reason: str
    status: str
    task_id: int | None
    model_version: str | None
    sha256: str
    path: Path
    dataset: str


@dataclass(frozen=True)
class VersionRow:
    dataset: str
    version: str
    images: int
    labels: int
    note: str
    created: datetime


def _image_path(settings: Settings, dataset: Dataset, image: Image) -> Path:
    root = Path(dataset.root) if dataset.root else settings.datasets_dir / dataset.name
    return root / image.path


def store_status() -> tuple[bool, str]:
    """Whether the store can be opened, and why not (shown instead of a traceback)."""
    try:
        with transaction() as session:
            count = session.scalar(select(func.count()).select_from(Image)) or 0
        return True, f"{count} images in the store"
    except Exception as exc:
        return False, f"the dataset store cannot be opened: {exc}"


def dataset_versions() -> list[VersionRow]:
    with transaction() as session:
        rows = session.execute(select(DatasetVersion, Dataset).join(Dataset).order_by(DatasetVersion.created)).all()
        return [VersionRow(d.name, v.version, v.image_count, v.label_count, v.note, v.created) for v, d in rows]


def flags(dataset: str | None = None, kinds: Iterable[str] | None = None) -> list[FlagRow]:
    """Curation findings, most likely problems first."""
    settings = get_settings()
    with transaction() as session:
        query = select(Flag, Image, Dataset).join(Image, Flag.image_id == Image.id).join(Dataset)
        if dataset:
            query = query.where(Dataset.name == dataset)
        if kinds is not None:
            query = query.where(Flag.kind.in_(list(kinds)))
        rows = session.execute(query.order_by(Flag.score.desc(), Flag.id)).all()
        return [
            FlagRow(
                f.id,
                f.kind,
                f.score,
                f.cluster,
                f.reason,
                f.status,
                f.decided_by,
                i.sha256,
                _image_path(settings, d, i),
                dict(f.details or {}),
            )
            for f, i, d in rows
        ]


def decide_flag(flag_id: int, status: str, reviewer: str) -> None:
    """Store a reviewer's decision (accepted / dismissed / open again) on one flag.

    Goes through ``curation.decisions.decide`` so the dashboard and ``wmstudio curate decide``
    record decisions identically.
    """
    from curation.decisions import decide

    decision = {"accepted": "accept", "dismissed": "dismiss", "open": "reopen"}[status]
    with transaction() as session:
        decide(session, flag_id, decision, reviewer)


def queue(dataset: str | None = None) -> list[QueueRow]:
    """The labelling queue, highest priority first."""
    settings = get_settings()
    with transaction() as session:
        query = select(QueueItem, Image, Dataset).join(Image, QueueItem.image_id == Image.id).join(Dataset)
        if dataset:
            query = query.where(Dataset.name == dataset)
        rows = session.execute(query.order_by(QueueItem.score.desc(), QueueItem.id)).all()
        return [
            QueueRow(
                q.id,
                q.score,
                q.reason,
                q.status,
                q.label_studio_task_id,
                q.model_version,
                i.sha256,
                _image_path(settings, d, i),
                d.name,
            )
            for q, i, d in rows
        ]


# --- predictions -------------------------------------------------------------------------------


def save_predictions(dataset: str, records: dict[str, dict], model_version: str) -> int:
    """Replace the stored predictions of these images for this model version.

    One image-level row per brand (its best score) plus one row per box, the store's convention,
    so the uncertainty queue can rank images the dashboard predicted.
    """
    with transaction() as session:
        images = {
            image.sha256: image
            for image in session.scalars(
                select(Image).join(Dataset).where(Dataset.name == dataset, Image.sha256.in_(list(records)))
            )
        }
        for sha, record in records.items():
            image = images.get(sha)
            if image is None:
                continue
            session.execute(
                delete(Prediction).where(Prediction.image_id == image.id, Prediction.model_version == model_version)
            )
            best: dict[str, float] = {}
            for detection in record.get("detections", []):
                best[detection["brand"]] = max(best.get(detection["brand"], 0.0), float(detection["score"]))
                x0, y0, x1, y1 = (float(v) for v in detection["box"])
                session.add(
                    Prediction(
                        image_id=image.id,
                        model_version=model_version,
                        brand=detection["brand"],
                        score=float(detection["score"]),
                        x0=x0,
                        y0=y0,
                        x1=x1,
                        y1=y1,
                    )
                )
            for brand in ("rumah123", "99co"):
                session.add(
                    Prediction(image_id=image.id, model_version=model_version, brand=brand, score=best.get(brand, 0.0))
                )
        return len(images)


def load_predictions(dataset: str, model_version: str) -> dict[str, dict]:
    """Stored predictions as API-shaped records ``{sha: {"detections": [...]}}``."""
    with transaction() as session:
        rows = session.execute(
            select(Prediction, Image.sha256)
            .join(Image, Prediction.image_id == Image.id)
            .join(Dataset)
            .where(Dataset.name == dataset, Prediction.model_version == model_version)
        ).all()
    records: dict[str, dict] = {}
    for prediction, sha in rows:
        record = records.setdefault(sha, {"detections": [], "model_version": model_version})
        if prediction.box is not None:
            record["detections"].append(
                {"brand": prediction.brand, "score": prediction.score, "box": list(prediction.box)}
            )
    for record in records.values():
        record["detections"].sort(key=lambda d: -d["score"])
        record["watermarked"] = bool(record["detections"])
    return records


# --- the unlabelled pool -----------------------------------------------------------------------


def pool_name(settings: Settings) -> str:
    """The store dataset of unlabelled photos (``queue build`` ranks it into the labelling queue)."""
    return str(getattr(settings, "queue_pool_dataset", "pool") or "pool")


def add_to_pool(settings: Settings, data: bytes, filename: str, record: dict | None) -> tuple[str, bool]:
    """Store an uploaded photo as an unlabelled image (no label rows) with its prediction.

    The file goes under ``datasets_dir/<pool>`` (Label Studio serves photos from there) but gets
    no manifest: the pool is not a labelled dataset. Returns (sha256, added); re-adding the same
    photo is a no-op, like ingest.
    """
    from wmstudio.data.ingest import store_image
    from wmstudio.store.sync import get_or_create_dataset

    name = pool_name(settings)
    folder = settings.datasets_dir / name
    digest, relative, width, height, _ = store_image(data, folder, settings.max_image_pixels)
    with transaction() as session:
        dataset = get_or_create_dataset(session, name, folder.resolve())
        exists = session.scalar(select(Image).where(Image.dataset_id == dataset.id, Image.sha256 == digest))
        if exists is not None:
            return digest, False
        session.add(Image(dataset=dataset, sha256=digest, path=relative, width=width, height=height, origin=filename))
    if record is not None and record.get("model_version"):
        save_predictions(name, {digest: record}, record["model_version"])
    return digest, True


def pool_size(settings: Settings) -> int:
    """Images in the pool that have no label yet."""
    with transaction() as session:
        labelled = select(Label.image_id)
        query = (
            select(func.count())
            .select_from(Image)
            .join(Dataset)
            .where(Dataset.name == pool_name(settings), Image.id.not_in(labelled))
        )
        return session.scalar(query) or 0


# --- registry evaluation files -----------------------------------------------------------------


def evaluation(version_dir: Path, name: str) -> dict | None:
    """``evaluation/<name>.json`` of a model version (e.g. ``test_real``), or None."""
    path = version_dir / "evaluation" / f"{name}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
