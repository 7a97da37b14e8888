"""Which rule turns Cleanlab's label qualities into flags: measured on planted sets other than the benchmark's.

``benchmarks/bench_planted.py`` (seed 0) is the acceptance figure of issue #32, so the rule is
chosen here on other seeds (other photos flipped and copied) and the benchmark is run once after.
For each seed it plants the problems, runs ``curate duplicates`` and ``curate labels`` through
the CLI (which caches the detector's predictions in the store), then recomputes the out-of-sample
probabilities in-process and scores three rules with the benchmark's own scoring:

- ``quality < 0.5``: the given label's out-of-sample probability under one half;
- ``cleanlab``: Cleanlab's ``find_label_issues`` (prune by noise rate), the library's default;
- ``both``: flagged by both.

    python -m experiments.label_issue_rules [--seeds 1,2,3,4,5]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np
from cleanlab.filter import find_label_issues
from cleanlab.rank import get_label_quality_scores

from benchmarks.bench_planted import curate, plant
from curation.dataset import resolve_dataset
from curation.labels import NONE, detector_features, labelled_brands, out_of_sample_probabilities
from curation.predictions import predict_dataset
from curation.run import load_detector
from wmstudio.settings import get_settings


def rule_flags(labels: list[str], features: np.ndarray, folds: int) -> dict[str, np.ndarray]:
    classes = sorted(set(labels), key=lambda n: (n != NONE, n))
    y = np.array([classes.index(n) for n in labels])
    folds = max(2, min(folds, min(labels.count(c) for c in classes)))
    probabilities = out_of_sample_probabilities(features, y, folds)
    quality = get_label_quality_scores(y, probabilities)
    verdict = find_label_issues(y, probabilities, filter_by="prune_by_noise_rate")
    return {"quality < 0.5": quality < 0.5, "cleanlab": verdict, "both": verdict & (quality < 0.5)}


def one_seed(seed: int, listings: Path, work: Path) -> dict[str, tuple[int, int, int]]:
    folder, state = work / f"seed{seed}" / "planted-listings", work / f"seed{seed}" / "state"
    planted = plant(listings, folder, seed)
    curate("duplicates", folder, state)
    curate("labels", folder, state)
    os.environ["WMSTUDIO_STATE_DIR"] = str(state)  # the store and registry the CLI runs used
    get_settings.cache_clear()
    settings = get_settings()
    dataset = resolve_dataset(str(folder), settings)
    items = dataset.items()
    detector, version = load_detector(settings)
    cached = predict_dataset(dataset, detector, version, None, settings.max_image_pixels)
    predictions = [cached.get(item.sha256) for item in items]
    brands = labelled_brands([item.brand for item in items])
    features = np.stack(
        [detector_features(p, i.width, i.height, brands) for p, i in zip(predictions, items, strict=True)]
    )
    labels = [item.brand or NONE for item in items]
    wrong = planted.flipped | {copy for _, copy in planted.conflicts}
    scores = {}
    for rule, flags in rule_flags(labels, features, settings.curation_folds).items():
        # as the benchmark: a flag names the item's first path (its ``file``), whose label is in force
        flagged = [items[i].labelled_paths()[0][0] for i in np.flatnonzero(flags)]
        right = sum(path in wrong for path in flagged)
        found = sum(path in planted.flipped for path in flagged)
        scores[rule] = (found, right, len(flagged))
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="1,2,3,4,5")
    args = parser.parse_args()
    listings = get_settings().data_dir / "listings"
    work = Path(tempfile.mkdtemp(prefix="wmstudio-label-rules-"))
    totals: dict[str, list[int]] = {}
    for seed in (int(s) for s in args.seeds.split(",")):
        for rule, (found, right, flagged) in one_seed(seed, listings, work).items():
            print(f"seed {seed} {rule:>13}: recall {found}/6, precision {right}/{flagged}")
            total = totals.setdefault(rule, [0, 0, 0, 0])
            total[0] += found
            total[1] += right
            total[2] += flagged
            total[3] += 6
    for rule, (found, right, flagged, planted) in totals.items():
        print(f"all seeds {rule:>13}: recall {found / planted:.2f}, precision {right / max(flagged, 1):.2f}")


if __name__ == "__main__":
    main()
