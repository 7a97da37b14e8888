"""Outcome of a prediction against the ground truth at a threshold (pure, so it is unit-tested).

Image level, per brand, like the evaluation's precision/recall: a photo is a true positive when
its labelled brand is predicted, a false negative when it is not, a false positive when a brand
it does not carry is predicted (a wrong brand is both), a true negative when clean and quiet.
"""

from __future__ import annotations

from dataclasses import dataclass

OUTCOMES = ("TP", "FP", "FN", "TN")


@dataclass(frozen=True)
class Judged:
    truth: str | None
    predicted: dict[str, float]  # brand -> best score at or above the threshold
    top_score: float  # best score of any candidate (below the threshold too)
    outcomes: tuple[str, ...]


def judge(truth: str | None, detections: list[dict], threshold: float) -> Judged:
    predicted: dict[str, float] = {}
    for detection in detections:
        if detection["score"] >= threshold:
            predicted[detection["brand"]] = max(predicted.get(detection["brand"], 0.0), float(detection["score"]))
    top = max((float(d["score"]) for d in detections), default=0.0)
    outcomes: list[str] = []
    if truth is not None:
        outcomes.append("TP" if truth in predicted else "FN")
    if any(brand != truth for brand in predicted):
        outcomes.append("FP")
    if truth is None and not predicted:
        outcomes.append("TN")
    return Judged(truth, predicted, top, tuple(outcomes))
