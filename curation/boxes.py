"""Box label issues with ``cleanlab.object_detection``: missing, shifted and wrong-brand boxes.

For every image the labelled boxes are compared with the detector's candidates. Cleanlab's
ObjectLab gives three per-box scores — *overlooked* (a confident prediction with no labelled box:
a missing box), *badloc* (a labelled box that overlaps a prediction of its brand only partly: a
shifted box) and *swap* (a labelled box where the detector confidently sees the other brand) —
pooled per image with Cleanlab's softmin.

Two departures from ``cleanlab.object_detection.rank.get_label_quality_scores``, both because a
threshold has to mean something here:

- it counts a prediction as confident only from 0.95, which hides most issues when the model is
  weak; the subtype scores are computed with ``box_confident_score`` instead;
- it combines the subtypes by a weighted geometric mean, which suits ranking but dilutes one
  clear problem (a missing box scoring 0.06 becomes 0.39); the image's quality here is its worst
  subtype, so ``box_issue_threshold`` reads as "flag when any box problem scores below this".

Images at or below the threshold (``issues_from_scores``) are flagged, worst first, and the
reason names the subtype and the boxes involved. Cleanlab's own default score is kept in the
details for comparison.
"""

from __future__ import annotations

import warnings

import numpy as np
from cleanlab.object_detection.rank import (
    compute_badloc_box_scores,
    compute_overlooked_box_scores,
    compute_swap_box_scores,
    get_label_quality_scores,
    issues_from_scores,
    pool_box_scores_per_image,
)

from curation.findings import Finding
from curation.predictions import ImagePrediction
from wmstudio.brands import BRANDS
from wmstudio.data.manifest import Item
from wmstudio.runtime.postprocess import iou

SUBTYPES = ("overlooked", "badloc", "swap")
SUBTYPE_WORDS = {"overlooked": "missing box", "badloc": "shifted box", "swap": "wrong brand"}


def cleanlab_inputs(
    items: list[Item], predictions: list[ImagePrediction | None], classes: tuple[str, ...] = BRANDS
) -> tuple[list[dict], list[list[np.ndarray]]]:
    """Labels as ``{"bboxes", "labels"}`` and predictions as per-class ``[x0, y0, x1, y1, score]`` arrays."""
    labels, preds = [], []
    for item, prediction in zip(items, predictions, strict=True):
        boxes = [(b.brand, b.box) for b in item.boxes if b.brand in classes]
        labels.append(
            {
                "bboxes": np.array([box for _, box in boxes], dtype=np.float32).reshape(-1, 4),
                "labels": np.array([classes.index(brand) for brand, _ in boxes], dtype=int),
            }
        )
        per_class = []
        for brand in classes:
            rows = [[*box, score] for b, score, box in (prediction.boxes if prediction else []) if b == brand]
            per_class.append(np.array(rows, dtype=np.float32).reshape(-1, 5))
        preds.append(per_class)
    return labels, preds


def subtype_scores(
    labels: list[dict], preds: list[list[np.ndarray]], confident: float
) -> tuple[dict[str, np.ndarray], dict[str, list[np.ndarray]]]:
    """Per-image pooled scores and per-box scores for each subtype, with our confidence bar."""
    low = min(0.5, confident)
    per_box = {
        "overlooked": compute_overlooked_box_scores(
            labels=labels, predictions=preds, high_probability_threshold=confident
        ),
        "badloc": compute_badloc_box_scores(labels=labels, predictions=preds, low_probability_threshold=low),
        "swap": compute_swap_box_scores(labels=labels, predictions=preds, high_probability_threshold=confident),
    }
    pooled = {name: pool_box_scores_per_image(scores) for name, scores in per_box.items()}
    return pooled, per_box


def combine(pooled: dict[str, np.ndarray]) -> np.ndarray:
    """An image's box quality: its worst subtype."""
    return np.min(np.stack([pooled[name] for name in SUBTYPES]), axis=0)


def _describe(
    subtype: str, index: int, item: Item, prediction: ImagePrediction | None, per_box: dict[str, list[np.ndarray]]
) -> tuple[str, dict]:
    fmt = lambda box: "[" + ", ".join(f"{v:.0f}" for v in box) + "]"  # noqa: E731 - local formatter
    preds = prediction.boxes if prediction else []
    labelled = [(b.brand, tuple(b.box)) for b in item.boxes if b.brand in BRANDS]
    scores = per_box[subtype][index]
    if subtype == "overlooked":
        # per-box scores index the predictions above 0 of every class, in class order.
        ordered = [p for brand in BRANDS for p in preds if p[0] == brand]
        finite = [(s, i) for i, s in enumerate(scores) if not np.isnan(s)]
        if finite and ordered:
            _, at = min(finite)
            brand, score, box = ordered[at]
            return f"detector finds a {brand} mark ({score:.2f}) at {fmt(box)} with no labelled box", {
                "box": list(box),
                "brand": brand,
                "detector_score": round(score, 4),
            }
        return "detector finds a mark with no labelled box", {}
    if not labelled:
        return SUBTYPE_WORDS[subtype], {}
    finite = [(s, i) for i, s in enumerate(scores) if not np.isnan(s)]
    at = min(finite)[1] if finite else 0
    brand, box = labelled[at]
    if subtype == "badloc":
        same = [(iou(box, p[2]), p) for p in preds if p[0] == brand]
        best_iou, best = max(same, key=lambda t: t[0]) if same else (0.0, None)
        where = f"; detector puts it at {fmt(best[2])} ({best[1]:.2f})" if best else ""
        return f"labelled {brand} box {fmt(box)} overlaps the detected mark only partly (IoU {best_iou:.2f}){where}", {
            "box": list(box),
            "iou": round(best_iou, 3),
        }
    others = [(iou(box, p[2]), p) for p in preds if p[0] != brand]
    overlap, other = max(others, key=lambda t: (t[0], t[1][1])) if others else (0.0, None)
    if other is None:
        return f"labelled {brand} box {fmt(box)}: wrong brand?", {"box": list(box)}
    return (
        f"labelled {brand} box {fmt(box)}, but the detector sees {other[0]} ({other[1]:.2f}, IoU {overlap:.2f})",
        {"box": list(box), "suggested": other[0], "detector_score": round(other[1], 4)},
    )


def box_label_issues(
    items: list[Item],
    predictions: list[ImagePrediction | None],
    threshold: float = 0.3,
    confident: float = 0.5,
) -> list[Finding]:
    """Flag images whose box labels disagree with the detector (quality ≤ ``threshold``)."""
    if not items:
        return []
    labels, preds = cleanlab_inputs(items, predictions)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pooled, per_box = subtype_scores(labels, preds, confident)
        default_scores = get_label_quality_scores(labels, preds, verbose=False)
    quality = combine(pooled)
    findings = []
    for index in issues_from_scores(quality, threshold=threshold):
        subtype = min(SUBTYPES, key=lambda name: pooled[name][index])
        text, details = _describe(subtype, int(index), items[index], predictions[index], per_box)
        details |= {
            "subtype": subtype,
            "quality": round(float(quality[index]), 4),
            "subtype_scores": {name: round(float(pooled[name][index]), 4) for name in SUBTYPES},
            "cleanlab_default_quality": round(float(default_scores[index]), 4),
        }
        reason = f"{SUBTYPE_WORDS[subtype]}: {text}"
        findings.append(
            Finding(items[index].sha256, "box_issue", 1.0 - float(quality[index]), reason, None, "cleanlab", details)
        )
    return findings
