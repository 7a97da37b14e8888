"""Evaluate a model version on a manifest split with the torch-free runtime.

Image-level metrics answer the listing systems' question (is this photo watermarked, by
which brand?); box metrics (AP50, AP50-95, IoU) answer "where". The operating threshold is
chosen on validation data only (``training.robustness_eval.operating_threshold``) and then applied
unchanged to test.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from training.metrics import (
    COCO_IOU_THRESHOLDS,
    ScoredBox,
    average_precision,
    matched_ious,
    pr_curve,
    precision_recall_f1,
)
from wmstudio.data.manifest import Item
from wmstudio.imaging import decode_image
from wmstudio.runtime import Detection, Detector, Prediction

THRESHOLD_GRID = np.round(np.arange(0.05, 0.955, 0.01), 2)  # where operating thresholds are chosen


@dataclass(frozen=True)
class Example:
    item: Item
    prediction: Prediction


def predict_items(detector: Detector, items: Sequence[tuple[Item, Path]], desc: str = "predict") -> list[Example]:
    examples = []
    for item, root in tqdm(items, desc=desc, unit="img"):
        # The same decode path as the API (draft JPEG decoding), so evaluation measures what is served.
        decoded = decode_image(root / item.path, draft_size=detector.decode_size)
        prediction = detector.predict(decoded.image)
        sx, sy = decoded.scale
        candidates = tuple(
            Detection(d.brand, d.score, (d.box[0] * sx, d.box[1] * sy, d.box[2] * sx, d.box[3] * sy))
            for d in prediction.candidates
        )
        examples.append(Example(item, Prediction(decoded.width, decoded.height, candidates)))
    return examples


def _image_truth_and_scores(examples: list[Example], brand: str) -> tuple[np.ndarray, np.ndarray]:
    truth = np.array([e.item.brand == brand for e in examples], dtype=bool)
    scores = np.array([e.prediction.brand_scores().get(brand, 0.0) for e in examples])
    return truth, scores


def image_f1_at(examples: list[Example], brands: Sequence[str], threshold: float) -> float:
    """Micro F1 over brands of the image-level decision at ``threshold``."""
    truth_all, pred_all = [], []
    for brand in brands:
        truth, scores = _image_truth_and_scores(examples, brand)
        truth_all.append(truth)
        pred_all.append(scores >= threshold)
    return precision_recall_f1(np.concatenate(truth_all), np.concatenate(pred_all))["f1"]


def carries_other_mark(item: Item) -> bool:
    """Whether the photo holds another agency's mark (real negatives all carry one)."""
    return "other_mark" in item.notes or (item.brand is None and item.source == "import")


def _other_mark_examples(examples: list[Example]) -> list[Example]:
    """Photos with no brand mark but another agency's mark."""
    return [e for e in examples if e.item.brand is None and carries_other_mark(e.item)]


def other_mark_fp_rate_at(examples: list[Example], threshold: float) -> float:
    """Share of other-agency photos that a brand is reported on at ``threshold`` (NaN: none)."""
    with_other = _other_mark_examples(examples)
    if not with_other:
        return float("nan")
    return sum(bool(e.prediction.above(threshold)) for e in with_other) / len(with_other)


def choose_threshold(
    examples: list[Example], brands: Sequence[str], max_other_fp: float | None = None
) -> tuple[float, float]:
    """The threshold with the best validation F1; ties go to the higher (fewer false alarms).

    With ``max_other_fp``, only thresholds whose other-agency false-positive rate is at most that
    are eligible: listing systems must not be flooded with false alarms from other agencies'
    marks, and a point of F1 bought with such alarms is a bad trade for them. When no threshold
    meets the cap (or no validation photo has another mark), every threshold is eligible.
    """
    eligible = [float(t) for t in THRESHOLD_GRID]
    if max_other_fp is not None:
        capped = [t for t in eligible if other_mark_fp_rate_at(examples, t) <= max_other_fp]
        eligible = capped or eligible
    best_threshold, best_f1 = 0.5, -1.0
    for threshold in eligible:
        f1 = image_f1_at(examples, brands, threshold)
        if f1 >= best_f1:
            best_threshold, best_f1 = threshold, f1
    return best_threshold, best_f1


def brand_boxes(examples: Sequence[Example], brand: str) -> tuple[dict[int, np.ndarray], list[ScoredBox]]:
    """One brand's truth boxes per photo index, and every candidate of that brand with its photo."""
    truths = {
        i: np.asarray([b.box for b in e.item.boxes if b.brand == brand]).reshape(-1, 4) for i, e in enumerate(examples)
    }
    detections = [
        ScoredBox(i, d.score, d.box)
        for i, e in enumerate(examples)
        for d in e.prediction.candidates
        if d.brand == brand
    ]
    return truths, detections


def evaluate_examples(examples: list[Example], brands: Sequence[str], threshold: float) -> dict:
    """All metrics for one evaluation set at the given operating threshold."""
    result: dict = {"threshold": threshold, "images": len(examples), "per_brand": {}}
    for brand in brands:
        truth, scores = _image_truth_and_scores(examples, brand)
        image_level = precision_recall_f1(truth, scores >= threshold)
        truths, detections = brand_boxes(examples, brand)
        reported = [d for d in detections if d.score >= threshold]
        aps = [average_precision(detections, truths, float(t)) for t in COCO_IOU_THRESHOLDS]
        ious = matched_ious(reported, truths)
        result["per_brand"][brand] = {
            **image_level,
            "positives": int(truth.sum()),
            "boxes": int(sum(len(t) for t in truths.values())),
            "ap50": aps[0],
            "ap50_95": float(np.mean(aps)) if not np.isnan(aps[0]) else float("nan"),
            "mean_iou": float(np.mean(ious)) if ious else float("nan"),
            "pr_curve": pr_curve(truth, scores, THRESHOLD_GRID),
        }
    negatives = [e for e in examples if e.item.brand is None]
    flagged = [e for e in negatives if e.prediction.above(threshold)]
    result["negatives"] = len(negatives)
    result["negative_fp_rate"] = len(flagged) / len(negatives) if negatives else float("nan")
    with_other = _other_mark_examples(examples)
    result["other_mark_images"] = len(with_other)
    result["other_mark_fp_rate"] = other_mark_fp_rate_at(with_other, threshold)  # filtering again is a no-op
    result["confusion"] = confusion_matrix(examples, brands, threshold)
    result["errors"] = [
        {
            "file": e.item.origin or e.item.path,
            "truth": e.item.brand,
            "predicted": _top_brand(e.prediction, threshold),
            "score": round(max(e.prediction.brand_scores().values(), default=0.0), 4),
        }
        for e in examples
        if _top_brand(e.prediction, threshold) != e.item.brand
    ]
    return result


def _top_brand(prediction: Prediction, threshold: float) -> str | None:
    scores = {b: s for b, s in prediction.brand_scores().items() if s >= threshold}
    return max(scores, key=scores.get) if scores else None


def confusion_matrix(examples: list[Example], brands: Sequence[str], threshold: float) -> dict:
    labels = [*brands, "none"]
    matrix = np.zeros((len(labels), len(labels)), dtype=int)
    for example in examples:
        truth = example.item.brand or "none"
        predicted = _top_brand(example.prediction, threshold) or "none"
        matrix[labels.index(truth), labels.index(predicted)] += 1
    return {"labels": labels, "matrix": matrix.tolist()}


def save_evaluation(result: dict, out_dir: Path, name: str) -> Path:
    """Write ``<name>.json`` plus PR-curve and confusion-matrix PNGs."""
    from training.plots import plot_confusion, plot_pr_curves

    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    path.write_text(json.dumps(result, indent=1, default=float))
    plot_pr_curves(result, out_dir / f"{name}_pr.png", title=name)
    plot_confusion(result, out_dir / f"{name}_confusion.png", title=name)
    return path


def summary_row(result: dict, brand: str) -> dict:
    """The REPORT table row for one brand."""
    brand_result = result["per_brand"][brand]
    keys = ("precision", "recall", "f1", "ap50", "ap50_95", "mean_iou", "positives")
    return {k: brand_result[k] for k in keys} | {"other_mark_fp_rate": result["other_mark_fp_rate"]}
