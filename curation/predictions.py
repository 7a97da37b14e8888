"""The detector's predictions for a dataset, computed once per model and kept in the store.

Label-quality checks need the model's view of every image; running the detector is the slow
part, so predictions are stored per (image, model version) and a re-run (a reviewer's
"dismiss", a new threshold) costs nothing. The version key includes a hash of ``model.onnx``, so a
rebuilt model that reuses a version name is never confused with the old one. Each batch of images
is written in one transaction: a crash keeps finished batches and never half of one.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from curation.dataset import CurationDataset

if TYPE_CHECKING:
    from wmstudio.runtime import Detector, Prediction

log = logging.getLogger(__name__)

MAX_BOXES = 20  # candidates kept per image (the detector keeps everything above 0.01)
BATCH = 32

Box = tuple[float, float, float, float]


@dataclass
class ImagePrediction:
    brand_scores: dict[str, float] = field(default_factory=dict)
    boxes: list[tuple[str, float, Box]] = field(default_factory=list)  # (brand, score, box), best first

    def score(self, brand: str) -> float:
        return self.brand_scores.get(brand, 0.0)


def version_key(folder: Path, version: str) -> str:
    digest = hashlib.sha256()
    with (folder / "model.onnx").open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return f"{version}@{digest.hexdigest()[:12]}"


def _from_detector(prediction: Prediction, brands: list[str]) -> ImagePrediction:
    scores = {brand: 0.0 for brand in brands}
    scores.update(prediction.brand_scores())
    best = sorted(prediction.candidates, key=lambda d: -d.score)[:MAX_BOXES]
    return ImagePrediction(scores, [(d.brand, float(d.score), tuple(float(v) for v in d.box)) for d in best])


def load_cached(session: Session, dataset_name: str, model_version: str) -> dict[str, ImagePrediction]:
    from wmstudio.store.models import Dataset, Image
    from wmstudio.store.models import Prediction as Row

    rows = session.execute(
        select(Image.sha256, Row)
        .join(Row, Row.image_id == Image.id)
        .join(Dataset, Dataset.id == Image.dataset_id)
        .where(Dataset.name == dataset_name, Row.model_version == model_version)
    ).all()
    cached: dict[str, ImagePrediction] = {}
    for sha256, row in rows:
        entry = cached.setdefault(sha256, ImagePrediction())
        if row.box is None:
            entry.brand_scores[row.brand or ""] = row.score
        else:
            entry.boxes.append((row.brand or "", row.score, row.box))
    for entry in cached.values():
        entry.boxes.sort(key=lambda b: -b[1])
    return cached


def _store(
    session: Session, image_ids: dict[str, int], model_version: str, predictions: dict[str, ImagePrediction]
) -> None:
    from wmstudio.store.models import Prediction as Row

    for key, prediction in predictions.items():
        for brand, score in prediction.brand_scores.items():
            session.add(Row(image_id=image_ids[key], model_version=model_version, brand=brand, score=score))
        for brand, score, (x0, y0, x1, y1) in prediction.boxes:
            session.add(
                Row(
                    image_id=image_ids[key],
                    model_version=model_version,
                    brand=brand,
                    score=score,
                    x0=x0,
                    y0=y0,
                    x1=x1,
                    y1=y1,
                )
            )


def predict_dataset(
    dataset: CurationDataset,
    detector: Detector,
    model_version: str,
    url: str | None = None,
    max_pixels: int = 40_000_000,
) -> dict[str, ImagePrediction]:
    """Predictions for every item: from the store where present, else from the detector (then stored)."""
    from wmstudio.imaging import ImageError, decode_image
    from wmstudio.store.models import Dataset, Image
    from wmstudio.store.session import session_factory, transaction

    with session_factory(url)() as session:
        cached = load_cached(session, dataset.name, model_version)
        image_ids = dict(
            session.execute(select(Image.sha256, Image.id).join(Dataset).where(Dataset.name == dataset.name)).all()
        )
    missing = [key for key in sorted(dataset.manifest.items) if key not in cached and key in image_ids]
    if missing:
        log.info("predicting %d of %d images with %s", len(missing), len(dataset.manifest.items), model_version)
    for start in range(0, len(missing), BATCH):
        batch: dict[str, ImagePrediction] = {}
        for key in missing[start : start + BATCH]:
            try:
                image = decode_image(dataset.path_of(key), max_pixels).image
            except ImageError as exc:
                log.warning("cannot read %s: %s", dataset.path_of(key), exc.message)
                continue
            batch[key] = _from_detector(detector.predict(image), list(detector.classes))
        with transaction(url) as session:
            _store(session, image_ids, model_version, batch)
        cached.update(batch)
    return cached
