"""Image-level label issues: Cleanlab on out-of-sample predicted probabilities.

A small classifier (standardised features → logistic regression) predicts each image's label
("none", "rumah123", "99co") from what the detector says: per-brand scores and the geometry of
its best box (without a detector: the compact image descriptors of :mod:`curation.features`,
which are weak). ``cross_val_predict`` gives every image a probability from a model that never
saw its label. Image descriptors are not added next to the detector's view: on the benchmark
they only added noise (lower precision at the same recall).

An image is flagged when Cleanlab's ``find_label_issues`` (prune by noise rate: it estimates
how often each label is wrong and prunes that many of the least likely) calls its label an issue
and its quality from ``get_label_quality_scores`` (the out-of-sample probability of the given
label) is below ``label_issue_threshold``; flags are ranked worst first. The quality bar alone
flagged correct labels the detector happens to score low: on planted sets other than the
benchmark's (``python -m experiments.label_issue_rules``, seeds 1-5) it reached precision 0.65
against 0.73 with Cleanlab's verdict, at the same recall 0.90.

Caveat: the detector may have been trained on some of these very labels (the real set's train
split). If a label was wrong then, the detector learnt it and agrees with it; if it was right
and broke later, the detector's memory makes the error easy to see. Only images the detector
never saw give an unbiased view.
"""

from __future__ import annotations

import logging

import numpy as np
from cleanlab.filter import find_label_issues
from cleanlab.rank import get_label_quality_scores
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from curation.findings import Finding
from curation.predictions import ImagePrediction
from wmstudio.brands import BRANDS

log = logging.getLogger(__name__)

NONE = "none"
CONFIDENT = 0.25  # candidate score counted as "a box" in the count features


def detector_features(
    prediction: ImagePrediction | None, width: float = 1.0, height: float = 1.0, brands: tuple[str, ...] = BRANDS
) -> np.ndarray:
    """What the detector says about an image, per brand.

    The best score, its log-odds and how many candidates pass a low bar, plus where the best box
    sits and how big it is (each weighted by its score): a portal's mark has a fixed place and
    size, other agencies' logos and signs do not, so geometry separates some of the detector's
    confident mistakes from real marks.
    """
    values: list[float] = []
    candidates = prediction.boxes if prediction else []
    for brand in brands:
        score = prediction.score(brand) if prediction else 0.0
        clipped = min(max(score, 1e-3), 1 - 1e-3)
        own = [c for c in candidates if c[0] == brand]
        count = sum(1 for _, s, _ in own if s >= CONFIDENT)
        values += [score, float(np.log(clipped / (1 - clipped))), float(min(count, 3))]
        if own:
            _, best, (x0, y0, x1, y1) = own[0]
            cx, cy = (x0 + x1) / 2 / width, (y0 + y1) / 2 / height
            values += [best * abs(cx - 0.5), best * abs(cy - 0.5), best * (x1 - x0) / height, best * (y1 - y0) / height]
        else:
            values += [0.0, 0.0, 0.0, 0.0]
    return np.asarray(values, dtype=np.float32)


def labelled_brands(labels: list[str | None], brands: tuple[str, ...] = BRANDS) -> tuple[str, ...]:
    """Brands with at least two labelled images: the only ones whose scores the classifier can learn.

    Another brand's detector scores are pure noise to a classifier that never sees that brand as
    a label (the provided listings have no 99.co photo): with 64 images, a dozen such features let
    it fit coincidences and flag correct labels.
    """
    kept = tuple(brand for brand in brands if labels.count(brand) >= 2)
    return kept or brands


def out_of_sample_probabilities(features: np.ndarray, labels: np.ndarray, folds: int, seed: int = 0) -> np.ndarray:
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=2000))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return cross_val_predict(model, features, labels, cv=splitter, method="predict_proba")


def image_label_issues(
    keys: list[str],
    given: list[str | None],
    features: np.ndarray,
    threshold: float = 0.5,
    folds: int = 5,
    detector_scores: list[dict[str, float]] | None = None,
) -> tuple[list[Finding], dict]:
    """Flag images Cleanlab calls label issues whose out-of-sample quality is below ``threshold``.

    Also returns diagnostics, above all the out-of-sample balanced accuracy: when the classifier
    cannot predict the labels (no useful model), its disagreements are noise, not label issues.
    """
    names = [label or NONE for label in given]
    counts = {name: names.count(name) for name in sorted(set(names))}
    usable = [name for name, count in counts.items() if count >= 2]
    if len(usable) < 2:
        log.warning("label issues need two labels with at least two images each; got %s", counts)
        return [], {"skipped": f"need two labels with two images each, got {counts}"}
    if len(usable) < len(counts):
        log.warning("skipping labels with fewer than two images: %s", [n for n in counts if n not in usable])
    rows = [i for i, name in enumerate(names) if name in usable]
    classes = sorted(usable, key=lambda n: (n != NONE, n))  # "none" first, then brands
    y = np.array([classes.index(names[i]) for i in rows])
    folds = max(2, min(folds, min(counts[name] for name in usable)))
    probabilities = out_of_sample_probabilities(features[rows], y, folds)
    quality = get_label_quality_scores(y, probabilities)
    cleanlab_verdict = find_label_issues(y, probabilities, filter_by="prune_by_noise_rate")
    info = {
        "classes": classes,
        "folds": folds,
        "balanced_accuracy": round(float(balanced_accuracy_score(y, probabilities.argmax(axis=1))), 3),
        "cleanlab_find_label_issues": int(cleanlab_verdict.sum()),
    }
    findings = []
    for position, index in enumerate(rows):
        if quality[position] >= threshold or not cleanlab_verdict[position]:
            continue
        best = int(np.argmax(probabilities[position]))
        given_name, best_name = classes[y[position]], classes[best]
        reason = (
            f"labelled {given_name}, but an out-of-sample model says {best_name} "
            f"({probabilities[position, best]:.0%}; {given_name} {quality[position]:.0%})"
        )
        if detector_scores is not None:
            shown = ", ".join(f"{b} {s:.2f}" for b, s in sorted(detector_scores[index].items()))
            reason += f"; detector max score {shown or 'none'}"
        details = {
            "given": given_name,
            "suggested": best_name,
            "quality": round(float(quality[position]), 4),
            "probabilities": {c: round(float(p), 4) for c, p in zip(classes, probabilities[position], strict=True)},
        }
        findings.append(
            Finding(keys[index], "label_issue", 1.0 - float(quality[position]), reason, None, "cleanlab", details)
        )
    return sorted(findings, key=lambda f: -f.score), info
