"""How sure is an AP50? Bootstrap intervals over photos, and paired ones between versions.

A synthetic test set holds ~100 photos per brand, so one AP50 moves by several hundredths when a
handful of photos change, and two fine-tunes can swap places between validation and test. The
gate (``wmstudio.gate.gate``) allows 0.01; this shows how that compares with the sampling noise.
Photos are resampled with replacement (percentile intervals, 95 % by default). For two versions
the *same* resampled photos score both, so the interval of their difference is much narrower
than two separate intervals suggest: a paired interval that excludes 0 is a real difference on
this kind of data, one that includes 0 is not shown to be.

    python -m experiments.bootstrap v9 v12 [--split test] [--set synthetic] [--resamples 2000] [--by-layout]

Read test intervals only to describe versions already chosen on validation.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from training.evaluate import Example, brand_boxes, predict_items
from training.metrics import ap_from_matches, match_detections
from training.release import default_sets
from training.script_errors import exit_on_user_error
from wmstudio.registry import Registry
from wmstudio.runtime import Detector
from wmstudio.settings import get_settings

CONFIDENCE = 0.95


@dataclass(frozen=True)
class PhotoMatches:
    """One brand's matched detections, split by photo so photos can be resampled as units."""

    scores: tuple[np.ndarray, ...]  # per photo: its detections' scores
    hits: tuple[np.ndarray, ...]  # per photo: whether each detection hit a truth at IoU 0.5
    truths: np.ndarray  # per photo: how many truth boxes of the brand it holds

    def ap50(self, photos: np.ndarray | None = None) -> float:
        """AP50 over the given photo indices (repeats allowed), or over all photos."""
        photos = np.arange(len(self.truths)) if photos is None else photos
        scores = np.concatenate([self.scores[i] for i in photos]) if len(photos) else np.zeros(0)
        hits = np.concatenate([self.hits[i] for i in photos]) if len(photos) else np.zeros(0, bool)
        return ap_from_matches(scores, hits, int(self.truths[photos].sum()))

    def subset(self, keep: np.ndarray) -> PhotoMatches:
        """Only the photos where ``keep`` is true (a boolean mask over photos)."""
        chosen = np.flatnonzero(keep)
        return PhotoMatches(
            tuple(self.scores[i] for i in chosen), tuple(self.hits[i] for i in chosen), self.truths[chosen]
        )

    def layouts(self) -> dict[str, np.ndarray]:
        """Photo masks by how many marks of the brand a photo holds; photos without any are in both.

        A tiled photo holds up to dozens of boxes, so the few tiled photos can outweigh all the
        single marks in a box-level AP; scoring the layouts apart shows which one a gap is in. The
        photos without the brand stay in both, since their false alarms count against either.
        """
        return {"one mark": self.truths <= 1, "repeated marks": self.truths != 1}


def photo_matches(examples: Sequence[Example], brand: str) -> PhotoMatches:
    """Match once (as ``evaluate_examples`` does) and keep the result per photo."""
    truths, detections = brand_boxes(examples, brand)
    images, scores, hits = match_detections(detections, truths, 0.5)
    return PhotoMatches(
        tuple(scores[images == i] for i in range(len(examples))),
        tuple(hits[images == i] for i in range(len(examples))),
        np.array([len(truths[i]) for i in range(len(examples))], dtype=int),
    )


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.estimate:.3f} [{self.low:.3f}, {self.high:.3f}]"


def bootstrap_ap50(
    versions: Sequence[PhotoMatches], resamples: int = 2000, seed: int = 0, confidence: float = CONFIDENCE
) -> tuple[list[Interval], list[Interval]]:
    """Per-version AP50 intervals, and each later version's paired difference from the first.

    All versions must hold the same photos in the same order: every resample draws one set of
    photo indices and scores every version on it.
    """
    count = len(versions[0].truths)
    if any(len(v.truths) != count or not np.array_equal(v.truths, versions[0].truths) for v in versions):
        raise ValueError("versions must be scored on the same photos, in the same order")
    rng = np.random.default_rng(seed)
    samples = np.empty((len(versions), resamples))
    for r in range(resamples):
        photos = rng.integers(0, count, count)
        samples[:, r] = [v.ap50(photos) for v in versions]
    tail = (1 - confidence) / 2 * 100

    def interval(estimate: float, values: np.ndarray) -> Interval:
        values = values[~np.isnan(values)]
        low, high = np.percentile(values, [tail, 100 - tail]) if len(values) else (np.nan, np.nan)
        return Interval(estimate, float(low), float(high))

    estimates = [v.ap50() for v in versions]
    singles = [interval(e, s) for e, s in zip(estimates, samples, strict=True)]
    paired = [interval(e - estimates[0], s - samples[0]) for e, s in zip(estimates[1:], samples[1:], strict=True)]
    return singles, paired


@exit_on_user_error
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("versions", nargs="+", help="the first is the reference for the paired differences")
    parser.add_argument("--split", default="test", choices=("val", "test"))
    parser.add_argument("--set", default="synthetic", choices=("synthetic", "real"))
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--by-layout", action="store_true", help="also score one-mark and repeated-mark photos apart")
    args = parser.parse_args()
    settings = get_settings()
    registry = Registry.from_settings(settings)
    folders = [registry.path(version) for version in args.versions]  # unknown versions fail first
    items = default_sets(settings.state_dir / "datasets", args.split).get(args.set)
    if not items:
        raise FileNotFoundError(f"no {args.set} {args.split} data: run `wmstudio train` first")
    detectors = [Detector.from_version_dir(folder) for folder in folders]
    examples = [
        predict_items(detector, items, f"{version} {args.set} {args.split}")
        for version, detector in zip(args.versions, detectors, strict=True)
    ]
    print(f"{args.set} {args.split}: {len(items)} photos, {args.resamples} resamples, {CONFIDENCE:.0%} intervals")
    for brand in detectors[0].classes:
        matches = [photo_matches(version_examples, brand) for version_examples in examples]
        groups = {"all photos": np.ones(len(matches[0].truths), dtype=bool)}
        if args.by_layout:
            groups |= matches[0].layouts()
        for group, keep in groups.items():
            print_group(f"{brand} AP50, {group}", [m.subset(keep) for m in matches], args)


def print_group(title: str, matches: list[PhotoMatches], args: argparse.Namespace) -> None:
    """One brand and photo group: each version's interval, then the paired differences."""
    marked = matches[0].truths > 0
    if not marked.any():
        return  # no mark of the brand in this group: AP50 is undefined
    singles, paired = bootstrap_ap50(matches, args.resamples, args.seed)
    print(f"\n{title} ({int(marked.sum())} photos, {int(matches[0].truths.sum())} boxes)")
    for version, single in zip(args.versions, singles, strict=True):
        print(f"  {version:>6}: {single}")
    for version, difference in zip(args.versions[1:], paired, strict=True):
        print(f"  {version} - {args.versions[0]} (paired): {difference}")


if __name__ == "__main__":
    main()
