"""Would one operating threshold per brand find more marks under the same alarm cap?

Issue #30 ("better calibrated scores"). A release picks one threshold: the lowest whose
other-agency alarm rate, pooled over every validation variant, is within the cap (2 %). The
alarms need not come evenly from both brands: if other agencies' wordmarks mostly pass for one
brand, that brand's scores set the threshold and the other brand's recall pays for it. Here every
pair of per-brand thresholds on the release's grid is tried on the same pooled validation
predictions: the pair with the best pooled F1 whose alarm rate is within the cap, against the
single threshold. Validation only. To see whether the pair is stable rather than fitted to these
photos, it is also chosen on each half of the synthetic photos (split by photo, every variant
of a photo in the same half) and scored on the other half. A sweep of one shared threshold shows what
any threshold could buy if the cap were looser, and a table per variant shows where the marked
synthetic photos' own-brand scores lie: under the reading floor (never read, so no threshold
finds them), between the floor and the threshold, or above it.

The predictions take most of the time (a release's validation pass); ``--cache`` keeps them.

    python -m experiments.brand_thresholds [VERSION] [--stage pipeline|network] [--cache FILE]
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training.evaluate import THRESHOLD_GRID, Example, carries_other_mark
from training.release import default_sets
from training.robustness import VARIANTS
from training.robustness_eval import predict_sets
from training.script_errors import exit_on_user_error
from wmstudio.registry import Registry
from wmstudio.runtime import Detector
from wmstudio.settings import get_settings

SWEEP = (0.3, 0.45, 0.5, 0.55, 0.6, 0.65)


@dataclass(frozen=True)
class Scores:
    """Per-photo brand scores and truths as arrays, so thousands of threshold pairs are cheap."""

    brands: list[str]
    scores: np.ndarray  # photo x brand: the image-level score
    truth: np.ndarray  # photo x brand: the photo carries that brand's mark
    other: np.ndarray  # photo: another agency's mark and no brand's

    @classmethod
    def from_examples(cls, examples: Sequence[Example], brands: Sequence[str]) -> Scores:
        return cls(
            list(brands),
            np.array([[e.prediction.brand_scores().get(b, 0.0) for b in brands] for e in examples]),
            np.array([[e.item.brand == b for b in brands] for e in examples], dtype=bool),
            np.array([e.item.brand is None and carries_other_mark(e.item) for e in examples], dtype=bool),
        )

    def subset(self, mask: np.ndarray) -> Scores:
        return Scores(self.brands, self.scores[mask], self.truth[mask], self.other[mask])

    def figures(self, thresholds: Sequence[float]) -> dict[str, float]:
        """Micro F1 over brands, recall per brand and the other-agency alarm rate."""
        decided = self.scores >= np.asarray(thresholds)[None, :]
        tp = int((decided & self.truth).sum())
        fp = int((decided & ~self.truth).sum())
        fn = int((~decided & self.truth).sum())
        f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
        recall = {b: float(decided[self.truth[:, i], i].mean()) for i, b in enumerate(self.brands)}
        alarms = float(decided[self.other].any(axis=1).mean()) if self.other.any() else float("nan")
        return {"f1": f1, "alarms": alarms, **{f"recall_{b}": r for b, r in recall.items()}}


def best_pair(scores: Scores, cap: float, grid: np.ndarray = THRESHOLD_GRID) -> tuple[float, ...]:
    """The per-brand thresholds with the best F1 within the alarm cap (ties: the higher pair)."""
    best: tuple[tuple[float, float], tuple[float, ...]] | None = None
    for pair in itertools.product(grid.tolist(), repeat=len(scores.brands)):
        figures = scores.figures(pair)
        if figures["alarms"] > cap:
            continue
        key = (round(figures["f1"], 9), sum(pair))
        if best is None or key > best[0]:
            best = (key, pair)
    if best is None:
        raise ValueError(f"no threshold pair keeps alarms within {cap}")
    return best[1]


def single(scores: Scores, cap: float, grid: np.ndarray = THRESHOLD_GRID) -> float:
    """The release's rule: the lowest threshold within the cap."""
    within = [t for t in grid.tolist() if scores.figures([t] * len(scores.brands))["alarms"] <= cap]
    return min(within) if within else float(grid.max())


def score_bands(predictions: dict, floor: float, threshold: float) -> None:
    """Per variant, the share of marked synthetic photos whose own brand scores under ``floor``,
    from ``floor`` to under ``threshold``, and from ``threshold``."""
    print(f"| variant | marked photos | under {floor} | {floor} to {threshold} | from {threshold} |")
    print("| --- | --- | --- | --- | --- |")
    for variant, examples in predictions.get("synthetic", {}).items():
        own = np.array([e.prediction.brand_scores().get(e.item.brand, 0.0) for e in examples if e.item.brand])
        if own.size:
            bands = (own < floor).mean(), ((own >= floor) & (own < threshold)).mean(), (own >= threshold).mean()
            print(f"| {variant} | {own.size} | " + " | ".join(f"{share:.3f}" for share in bands) + " |")


def half_of(example: Example) -> bool:
    """A photo's half, by a hash of its file, so every variant of a photo lands in the same half."""
    return hashlib.sha256(example.item.sha256.encode()).digest()[0] % 2 == 0


def line(name: str, thresholds: Sequence[float], figures: dict[str, float]) -> str:
    shown = " / ".join(f"{t:.2f}" for t in thresholds)
    rest = " | ".join(f"{value:.4f}" for key, value in figures.items() if key != "f1")
    return f"| {name} | {shown} | {figures['f1']:.4f} | {rest} |"


@exit_on_user_error
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("version", nargs="?", default=None)
    parser.add_argument("--stage", choices=("pipeline", "network"), default="pipeline")
    parser.add_argument("--cache", type=Path, default=None, help="pickle of the validation predictions")
    args = parser.parse_args()
    settings = get_settings()
    folder = Registry.from_settings(settings).resolve(args.version)
    detector = Detector.from_version_dir(folder)
    if args.stage == "network":
        detector = detector.network_only()
    if args.cache and args.cache.exists():
        try:
            predictions = pickle.loads(args.cache.read_bytes())
        except (pickle.UnpicklingError, EOFError, AttributeError, ImportError) as exc:
            parser.error(f"--cache {args.cache} is not a predictions file from this script ({exc}); remove it")
    else:
        sets = default_sets(settings.state_dir / "datasets", "val")
        predictions = predict_sets(detector, sets, VARIANTS, 0, desc=f"{folder.name} {args.stage} validation")
        if args.cache:
            args.cache.write_bytes(pickle.dumps(predictions))
    examples = [e for by_variant in predictions.values() for group in by_variant.values() for e in group]
    cap = settings.operating_max_other_fp
    scores = Scores.from_examples(examples, detector.classes)
    columns = " | ".join(["alarms", *(f"recall {b}" for b in detector.classes)])
    print(f"{len(examples)} validation predictions of {folder.name} ({args.stage}), alarm cap {cap}")
    print(f"| rule | thresholds ({' / '.join(detector.classes)}) | F1 | {columns} |")
    print("| --- | --- | --- | --- |" + " --- |" * len(detector.classes))
    one = single(scores, cap)
    print(line("one threshold", [one] * len(detector.classes), scores.figures([one] * len(detector.classes))))
    pair = best_pair(scores, cap)
    print(line("one per brand", pair, scores.figures(pair)))
    halves = np.array([half_of(e) for e in examples])
    for name, chosen_on in (("first", halves), ("second", ~halves)):
        fit, held = scores.subset(chosen_on), scores.subset(~chosen_on)
        one_fit, pair_fit = [single(fit, cap)] * len(detector.classes), best_pair(fit, cap)
        print(line(f"one, chosen on the {name} half, scored on the other", one_fit, held.figures(one_fit)))
        print(line(f"per brand, chosen on the {name} half, scored on the other", pair_fit, held.figures(pair_fit)))
    for threshold in SWEEP:  # what any threshold buys: how flat F1 is around the chosen one
        shared = [threshold] * len(detector.classes)
        print(line(f"one threshold at {threshold:.2f}", shared, scores.figures(shared)))
    rescoring = detector.text_rescoring
    score_bands(predictions, rescoring.floor if rescoring else 0.05, one)


if __name__ == "__main__":
    main()
