"""Build a model version's mark checks from the labelled real photos (see ``wmstudio.runtime.mark_check``).

Only the real *train* split shapes the check (the matte, by Dekel's multi-image estimate, and
the placement, from the boxes); its threshold is calibrated on train + val photos, decoded
exactly as the API and the evaluation decode them. Test photos are never looked at.
"""

from __future__ import annotations

import logging
from pathlib import Path

from tqdm import tqdm

from training.build import template_from_manifest
from wmstudio.data.manifest import Manifest
from wmstudio.imaging import ImageError, decode_image
from wmstudio.runtime.mark_check import MarkCheck, Placement, calibrate_threshold

log = logging.getLogger(__name__)

MIN_TRAIN_POSITIVES = 3  # the template estimate needs at least three photos of the mark


def build_mark_check(real: Manifest, real_dir: Path, brand: str, imgsz: int) -> MarkCheck | None:
    """The brand's check, or None when the real train split has too few single-mark photos."""
    template = template_from_manifest(real, real_dir, brand)
    boxes = [
        (tuple(item.boxes[0].box), item.width, item.height)
        for item in real.split("train")
        if item.brand == brand and len(item.boxes) == 1
    ]
    if template is None or len(boxes) < MIN_TRAIN_POSITIVES:
        log.info("no %s mark check: %d single-mark train photos", brand, len(boxes))
        return None
    x0, y0, x1, y1 = template.inner_box
    matte = template.alpha[y0:y1, x0:x1].clip(0, 1)
    check = MarkCheck(brand, matte, Placement.from_boxes(boxes), threshold=0.0)
    positives, negatives = [], []
    items = real.split("train") + real.split("val")
    for item in tqdm(items, desc=f"calibrate {brand} check", unit="img"):
        try:
            decoded = decode_image(real_dir / item.path, draft_size=imgsz)
        except ImageError as exc:
            log.warning("skipping %s: %s", item.path, exc.message)
            continue
        correlation, _ = check.correlation(decoded.image)
        (positives if item.brand == brand else negatives).append(correlation)
    check.threshold = calibrate_threshold(positives, negatives)
    log.info(
        "%s check: threshold %.3f; train+val correlations, marked %.3f–%.3f (%d), others up to %.3f (%d)",
        brand,
        check.threshold,
        min(positives),
        max(positives),
        len(positives),
        max(negatives, default=0.0),
        len(negatives),
    )
    return check


def attach_mark_checks(folder: Path, real: Manifest, real_dir: Path, brands: list[str], imgsz: int) -> list[dict]:
    """Write each buildable check's matte next to the model and return the card entries."""
    entries = []
    for brand in brands:
        check = build_mark_check(real, real_dir, brand, imgsz)
        if check is None:
            continue
        matte_file = f"{brand}_matte.png"
        check.save_matte(folder / matte_file)
        entries.append(check.to_card(matte_file))
    return entries
