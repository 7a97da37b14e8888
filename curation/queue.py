"""The labelling queue in the store: pool photos in, uncertainty-ranked ``queue_items`` out.

A queue item moves ``pending`` (scored, waiting) → ``sent`` (a Label Studio task exists) →
``labelled`` (a human answer is stored as ``labels`` rows with source ``human``) or ``skipped``
(the annotator skipped it). Re-building the queue re-scores only pending items, so work already
in Label Studio or done by people is never touched. Every function takes the caller's session:
the caller's ``transaction()`` decides what commits together.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
from sqlalchemy import delete, exists, select
from sqlalchemy.orm import Session

from curation.uncertainty import Uncertainty, dhash, diverse_batches, preannotation_boxes, rank_diverse, score_image
from wmstudio.imaging import ImageError, decode_image
from wmstudio.runtime import Detection, Detector, Prediction
from wmstudio.store.models import Dataset, Image, Label, QueueItem
from wmstudio.store.models import Prediction as PredictionRow

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
OPEN_STATUSES = ("sent", "labelled", "skipped")  # items a rebuild must not touch
LS_AUTHOR_PREFIX = "label-studio:"


class ScoredPhoto(NamedTuple):
    """One candidate of a queue build: the stored photo and what ranking needs of it."""

    image: Image
    uncertainty: Uncertainty
    hash_bits: int
    features: np.ndarray


@dataclass
class BuildReport:
    model_version: str
    scored: int = 0
    queued: int = 0
    demoted_copies: int = 0
    unreadable: list[str] = field(default_factory=list)
    top: list[dict] = field(default_factory=list)


def add_pool_folder(session: Session, folder: Path, pool_dir: Path, dataset: str = "pool") -> int:
    """Copy the photos of ``folder`` into the pool dataset (content-addressed, no labels); idempotent."""
    from wmstudio.data.ingest import store_image  # shared with ingest: same hashing, normalisation and checks
    from wmstudio.store.sync import get_or_create_dataset

    row = get_or_create_dataset(session, dataset, pool_dir.resolve())
    known = set(session.scalars(select(Image.sha256).where(Image.dataset_id == row.id)))
    added = 0
    for path in sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES):
        try:
            digest, relative, width, height, _ = store_image(path.read_bytes(), pool_dir, 40_000_000)
        except (ImageError, OSError) as exc:
            log.warning("pool: skipped %s: %s", path, exc)
            continue
        if digest in known:
            continue
        image = Image(dataset_id=row.id, sha256=digest, path=relative, width=width, height=height, origin=str(path))
        session.add(image)
        known.add(digest)
        added += 1
    session.flush()
    return added


def image_file(image: Image) -> Path:
    return Path(image.dataset.root) / image.path


def candidate_images(session: Session, datasets: list[str]) -> list[Image]:
    """Images of ``datasets`` with no non-model label and no queue item past ``pending``."""
    labelled = exists().where(Label.image_id == Image.id, Label.source != "model")
    in_work = exists().where(QueueItem.image_id == Image.id, QueueItem.status.in_(OPEN_STATUSES))
    query = select(Image).join(Dataset).where(Dataset.name.in_(datasets), ~labelled, ~in_work).order_by(Image.id)
    return list(session.scalars(query))


def _predict_file(detector: Detector, image: Image, tta: bool) -> tuple[Prediction, Uncertainty, int, np.ndarray]:
    """Score one stored photo; boxes are mapped back to original pixels (draft decoding shrinks JPEGs)."""
    decoded = decode_image(image_file(image), draft_size=detector.decode_size)
    prediction, uncertainty, features = score_image(detector, decoded.image, tta)
    sx, sy = decoded.scale
    candidates = tuple(
        Detection(d.brand, d.score, (d.box[0] * sx, d.box[1] * sy, d.box[2] * sx, d.box[3] * sy))
        for d in prediction.candidates
    )
    return Prediction(decoded.width, decoded.height, candidates), uncertainty, dhash(decoded.image), features


def _known_hashes(session: Session) -> list[tuple[str, int]]:
    """Hashes of photos already sent or labelled, so the new batch does not repeat them."""
    hashes = []
    query = select(Image).join(QueueItem).where(QueueItem.status.in_(OPEN_STATUSES)).distinct()
    for image in session.scalars(query):
        try:
            hashes.append((image.sha256, dhash(decode_image(image_file(image), draft_size=64).image)))
        except ImageError:
            continue
    return hashes


def store_predictions(session: Session, image: Image, prediction: Prediction, detector: Detector) -> None:
    """Replace this version's prediction rows of the image: one image-level row per brand + pre-annotation boxes."""
    session.execute(
        delete(PredictionRow).where(PredictionRow.image_id == image.id, PredictionRow.model_version == detector.version)
    )
    scores = prediction.brand_scores()
    for brand in detector.classes:
        session.add(
            PredictionRow(image_id=image.id, model_version=detector.version, brand=brand, score=scores.get(brand, 0.0))
        )
    for d in preannotation_boxes(prediction, detector.threshold):
        x0, y0, x1, y1 = (round(v, 2) for v in d.box)
        session.add(
            PredictionRow(
                image_id=image.id,
                model_version=detector.version,
                brand=d.brand,
                score=d.score,
                x0=x0,
                y0=y0,
                x1=x1,
                y1=y1,
            )
        )


def build_queue(
    session: Session,
    detector: Detector,
    datasets: list[str],
    tta: bool = True,
    max_distance: int = 10,
    batch_size: int = 20,
) -> BuildReport:
    """Score every candidate with ``detector``, rank with diversity, and upsert pending queue items.

    The stored ``score`` is the priority that ``queue push`` follows: the ranking score, capped
    so that it never rises along the diversified order (a diverse pick can come before a photo
    with a higher uncertainty, and the photos after it must then not overtake it).
    """
    report = BuildReport(detector.version)
    scored = {}
    for image in candidate_images(session, datasets):
        try:
            prediction, uncertainty, bits, features = _predict_file(detector, image, tta)
        except ImageError as exc:
            report.unreadable.append(f"{image.path}: {exc.message}")
            continue
        store_predictions(session, image, prediction, detector)
        scored[image.sha256 + f"#{image.id}"] = ScoredPhoto(image, uncertainty, bits, features)
    report.scored = len(scored)
    entries = ((key, photo.uncertainty, photo.hash_bits) for key, photo in scored.items())
    ranked = rank_diverse(entries, max_distance, _known_hashes(session))
    ranked = diverse_batches(ranked, {key: photo.features for key, photo in scored.items()}, batch_size)
    pending = {item.image_id: item for item in session.scalars(select(QueueItem).where(QueueItem.status == "pending"))}
    priority = float("inf")
    for entry in ranked:
        image = scored[entry.key].image
        item = pending.get(image.id) or QueueItem(image_id=image.id, status="pending")
        priority = min(entry.score, priority - 1e-6)
        entry.score = round(priority, 6)
        item.score, item.reason, item.model_version = entry.score, entry.reason(), detector.version
        session.add(item)
        report.queued += 1
        report.demoted_copies += entry.duplicate_of is not None
    session.flush()
    report.top = [{"image": scored[e.key].image.path, "score": e.score, "reason": e.reason()} for e in ranked[:10]]
    return report


def pending_items(session: Session, limit: int) -> list[QueueItem]:
    query = select(QueueItem).where(QueueItem.status == "pending").order_by(QueueItem.score.desc(), QueueItem.id)
    return list(session.scalars(query.limit(limit)))


def queue_counts(session: Session) -> dict[str, int]:
    counts: dict[str, int] = {}
    for status in session.scalars(select(QueueItem.status)):
        counts[status] = counts.get(status, 0) + 1
    return counts
