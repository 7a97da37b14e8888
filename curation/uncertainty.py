"""Which unlabelled photos should a person look at next? A documented uncertainty score plus diversity.

The score of an image is a weighted sum of three signals, each in [0, 1]:

``near_threshold`` (weight 0.5)
    How close the image-level score (the highest candidate score of any brand) is to the model's
    operating threshold: ``1 - |s - t| / max(t, 1 - t)``. An image scored right at the threshold
    is the one whose decision flips with the smallest change of the model; a photo at 0.01 or
    0.99 teaches it little.
``brand_margin`` (weight 0.2)
    How close the two brands are: ``s2 / s1`` (second-best over best brand score), scaled by
    ``min(1, s1 / t)`` so that two faint candidates do not count as confusion. Rumah123 and 99.co
    marks are both white text logos; an image where both are plausible is worth a label.
``tta_disagreement`` (weight 0.3)
    How much the image-level scores move under small test-time augmentations that should not
    change the answer (a horizontal shift and a down-scale): the largest score range over
    brands, plus 0.5 when the views disagree on the thresholded decision. A stable model gives
    the same score for a shifted photo; an unstable one is guessing.

Diversity, in two steps:

1. Near copies. A listing portal repeats photos (the same room re-uploaded, lightly cropped), and
   50 near copies of one confusing photo waste 49 labels. Images are ranked greedily by score; an
   image whose 64-bit difference hash is within ``near_duplicate_distance`` bits of one already
   ranked (or already labelled) is demoted by ``REDUNDANCY_PENALTY`` and its reason names the copy.
2. Batches that cover the model's doubts (``diverse_batches``). Photos that are not copies can
   still be the same *kind* of doubt (ten faint 99.co marks in the same corner). Each batch is
   drawn from the ``DIVERSE_PREFILTER`` × batch best-ranked photos: k-means (one cluster per
   batch slot) on what the model saw (``queue_features``: brand scores on the photo and its TTA
   views, the top box's place and size, the number of candidates), and the best-ranked photo of
   each cluster is taken. This is the "diverse mini-batch" selection of Zhdanov (2019). In the
   active-learning simulation (REPORT §5b) it cut the labels needed to reach random sampling's
   final F1 from 77–85 % of the budget to 46–54 %.

Everything here is NumPy + Pillow + the torch-free runtime (plus scikit-learn's k-means, imported
only by ``diverse_batches``), so no torch is needed to build the queue.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from wmstudio.runtime import Detection, Detector, Prediction

WEIGHTS = {"near_threshold": 0.5, "brand_margin": 0.2, "tta_disagreement": 0.3}
DIVERSE_PREFILTER = 10  # candidates clustered per batch slot (10 needed fewer labels than 3 or 5 in the simulation)
DIVERSE_BATCHES = 10  # batches laid out by clustering; the rest of the queue stays in score order
REDUNDANCY_PENALTY = 0.1
SHIFT_FRACTION = 0.08  # horizontal shift of the TTA view, as a share of the width
SCALE_FACTOR = 0.85  # down-scale of the TTA view


@dataclass(frozen=True)
class Uncertainty:
    """The score of one image and the parts it is made of (kept for the queue's ``reason``)."""

    score: float
    components: dict[str, float]
    image_score: float  # highest brand score of the un-augmented view
    top_brand: str | None

    def reason(self) -> str:
        parts = ", ".join(f"{k}={v:.2f}" for k, v in self.components.items())
        return f"uncertainty {self.score:.3f} ({parts}); top {self.top_brand or 'none'} {self.image_score:.2f}"


@dataclass
class Ranked:
    """One candidate after diversity ranking."""

    key: str
    uncertainty: Uncertainty
    hash_bits: int
    score: float  # the ranking score: uncertainty, demoted when redundant
    duplicate_of: str | None = None
    extra: dict = field(default_factory=dict)

    def reason(self) -> str:
        text = self.uncertainty.reason()
        if self.duplicate_of:
            text += f"; near copy of {self.duplicate_of[:12]} (demoted)"
        if "diverse_batch" in self.extra:
            text += f"; diverse pick for batch {self.extra['diverse_batch']}"
        return text


def _scores(prediction: Prediction, brands: Sequence[str]) -> np.ndarray:
    found = prediction.brand_scores()
    return np.array([found.get(brand, 0.0) for brand in brands], dtype=float)


def near_threshold(score: float, threshold: float) -> float:
    """1 at the threshold, 0 at the far end of [0, 1]."""
    span = max(threshold, 1.0 - threshold, 1e-6)
    return float(max(0.0, 1.0 - abs(score - threshold) / span))


def brand_margin(scores: np.ndarray, threshold: float) -> float:
    """Second-best over best brand score, counted only when the best is near or above the threshold."""
    if scores.size < 2:
        return 0.0
    ordered = np.sort(scores)[::-1]
    best, second = float(ordered[0]), float(ordered[1])
    if best <= 0.0:
        return 0.0
    return float(second / best * min(1.0, best / max(threshold, 1e-6)))


def tta_disagreement(views: Sequence[np.ndarray], threshold: float) -> float:
    """Largest per-brand score range over the views, plus 0.5 when their decisions differ (capped at 1)."""
    if len(views) < 2:
        return 0.0
    stacked = np.stack(views)  # views × brands
    spread = float((stacked.max(axis=0) - stacked.min(axis=0)).max())
    decisions = {tuple(view >= threshold) for view in stacked}
    return float(min(1.0, spread + (0.5 if len(decisions) > 1 else 0.0)))


def combine(base: Prediction, views: Sequence[Prediction], brands: Sequence[str], threshold: float) -> Uncertainty:
    """The documented score from the base prediction and its augmented views."""
    base_scores = _scores(base, brands)
    best = float(base_scores.max()) if base_scores.size else 0.0
    components = {
        "near_threshold": near_threshold(best, threshold),
        "brand_margin": brand_margin(base_scores, threshold),
        "tta_disagreement": tta_disagreement([base_scores, *(_scores(v, brands) for v in views)], threshold),
    }
    score = sum(WEIGHTS[name] * value for name, value in components.items())
    top = brands[int(base_scores.argmax())] if best > 0 else None
    return Uncertainty(round(score, 6), {k: round(v, 4) for k, v in components.items()}, best, top)


def augmented_views(image: Image.Image) -> list[Image.Image]:
    """Views that should not change the answer: shifted right by a few percent, and down-scaled.

    The shift pads with the edge colour instead of black so that the padding itself does not look
    like an overlay; no horizontal flip, because a mirrored logo is a different picture of text.
    """
    width, height = image.size
    shift = max(1, round(width * SHIFT_FRACTION))
    array = np.asarray(image.convert("RGB"))
    shifted = np.concatenate([np.repeat(array[:, :1], shift, axis=1), array[:, : width - shift]], axis=1)
    scaled = image.resize((max(1, int(width * SCALE_FACTOR)), max(1, int(height * SCALE_FACTOR))), Image.BILINEAR)
    return [Image.fromarray(shifted), scaled]


def score_image(detector: Detector, image: Image.Image, tta: bool = True) -> tuple[Prediction, Uncertainty, np.ndarray]:
    """Run the detector on the photo (and its TTA views): base prediction, score and ``queue_features``."""
    base = detector.predict(image)
    views = [detector.predict(view) for view in augmented_views(image)] if tta else []
    uncertainty = combine(base, views, detector.classes, detector.threshold)
    return base, uncertainty, queue_features(base, views, detector.classes)


# --- diversity -------------------------------------------------------------------------------


def dhash(image: Image.Image, size: int = 8) -> int:
    """64-bit difference hash: robust to re-encoding and resizing, cheap, no extra dependency."""
    small = np.asarray(image.convert("L").resize((size + 1, size), Image.BILINEAR), dtype=np.int16)
    bits = (small[:, 1:] > small[:, :-1]).flatten()
    return int(sum(1 << i for i, bit in enumerate(bits) if bit))


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def rank_diverse(
    candidates: Iterable[tuple[str, Uncertainty, int]],
    max_distance: int = 10,
    known_hashes: Iterable[tuple[str, int]] = (),
) -> list[Ranked]:
    """Greedy ranking: best score first, near copies of anything ranked before (or known) demoted.

    ``known_hashes`` are images already sent or labelled: a copy of a photo someone has labelled
    is as redundant as a copy inside the batch.
    """
    ordered = sorted(candidates, key=lambda c: (-c[1].score, c[0]))
    kept: list[tuple[str, int]] = list(known_hashes)
    ranked: list[Ranked] = []
    for key, uncertainty, bits in ordered:
        copy_of = next((other for other, other_bits in kept if hamming(bits, other_bits) <= max_distance), None)
        score = uncertainty.score * (REDUNDANCY_PENALTY if copy_of else 1.0)
        ranked.append(Ranked(key, uncertainty, bits, round(score, 6), copy_of))
        if copy_of is None:
            kept.append((key, bits))
    ranked.sort(key=lambda r: (-r.score, r.key))
    return ranked


def queue_features(base: Prediction, views: Sequence[Prediction], brands: Sequence[str]) -> np.ndarray:
    """What the model saw in a photo, as numbers for diversity clustering.

    Brand scores on the photo and on each TTA view, the top candidate's centre and size relative
    to the photo, and the number of candidates at 0.1 or more (over 10): two photos close in this
    space are the same kind of doubt, whatever their pixels look like.
    """
    top = max(base.candidates, key=lambda d: d.score, default=None)
    geometry = [0.0, 0.0, 0.0, 0.0]
    if top is not None and base.width and base.height:
        x0, y0, x1, y1 = top.box
        w, h = base.width, base.height
        geometry = [(x0 + x1) / 2 / w, (y0 + y1) / 2 / h, (x1 - x0) / w, (y1 - y0) / h]
    count = sum(d.score >= 0.1 for d in base.candidates) / 10.0
    return np.concatenate([_scores(base, brands), *(_scores(v, brands) for v in views), geometry, [count]])


def diverse_batches(
    ranked: Sequence[Ranked],
    features: Mapping[str, np.ndarray],
    batch: int,
    batches: int = DIVERSE_BATCHES,
    prefilter: int = DIVERSE_PREFILTER,
) -> list[Ranked]:
    """Re-order ``ranked`` so that each of the first ``batches`` batches covers distinct doubts.

    For each batch: cluster the ``prefilter * batch`` best remaining photos into ``batch``
    clusters (standardised ``features``) and take the best-ranked photo of each; the picks keep
    their rank order. Clusters can come out empty when many photos are identical in feature
    space; their slots go to the best remaining photos. Deterministic (fixed k-means seed).
    """
    from sklearn.cluster import KMeans

    remaining = list(ranked)
    if batch < 2 or len(remaining) <= batch:
        return remaining
    matrix = np.stack([features[r.key] for r in remaining]).astype(float)
    scale = matrix.std(axis=0)
    matrix = (matrix - matrix.mean(axis=0)) / np.where(scale > 0, scale, 1.0)
    standardised = {r.key: row for r, row in zip(remaining, matrix, strict=True)}
    ordered: list[Ranked] = []
    for number in range(batches):
        if len(remaining) <= batch:
            break
        top = remaining[: prefilter * batch]
        points = np.stack([standardised[r.key] for r in top])
        distinct = len(np.unique(points.round(9), axis=0))
        labels = KMeans(min(batch, distinct), n_init=3, random_state=0).fit(points).labels_
        picked = {int(np.flatnonzero(labels == c)[0]) for c in set(labels.tolist())}  # best of each cluster
        fill = [i for i in range(len(top)) if i not in picked][: batch - len(picked)]  # empty clusters' slots
        chosen = [top[i] for i in sorted(picked.union(fill))]
        for entry in chosen:
            entry.extra["diverse_batch"] = number + 1
        ordered += chosen
        keys = {r.key for r in chosen}
        remaining = [r for r in remaining if r.key not in keys]
    return ordered + remaining


def preannotation_boxes(prediction: Prediction, threshold: float, floor_ratio: float = 0.5) -> list[Detection]:
    """Model boxes worth showing an annotator: at or above half the threshold (near misses included)."""
    return [d for d in prediction.candidates if d.score >= threshold * floor_ratio]
