"""Precision, recall and false alarms at several ``min_score`` values, on validation by default.

Listing systems choose how many false alarms they accept: this prints what each ``min_score``
costs and buys, so they can pass one to the API or ``wmstudio predict``. It reads validation
data unless told otherwise; choosing a threshold from test figures would leak the test set.

    python -m experiments.operating_points [VERSION] [--split val] [--scores 0.2,0.3,0.4]
"""

from __future__ import annotations

import argparse

from training.evaluate import evaluate_examples, image_f1_at, predict_items
from training.release import default_sets
from training.script_errors import exit_on_user_error
from wmstudio.registry import Registry
from wmstudio.runtime import Detector
from wmstudio.settings import get_settings

DEFAULT_SCORES = (0.1, 0.13, 0.16, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6)


@exit_on_user_error
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("version", nargs="?", default=None, help="model version (default: the champion)")
    parser.add_argument("--split", default="val", choices=("val", "test"))
    parser.add_argument("--scores", default=",".join(str(s) for s in DEFAULT_SCORES))
    args = parser.parse_args()
    settings = get_settings()
    registry = Registry.from_settings(settings)
    detector = Detector.from_version_dir(registry.resolve(args.version))
    sets = default_sets(settings.datasets_dir, args.split)
    items = [entry for items in sets.values() for entry in items]
    examples = predict_items(detector, items, args.split)
    print(f"model {detector.version}, {args.split} split, {len(examples)} photos, default {detector.threshold}")
    print(f"{'min_score':>9} {'F1':>6} " + " ".join(f"{b + ' P/R':>14}" for b in detector.classes) + "  other-mark FP")
    for score in (float(s) for s in args.scores.split(",")):
        result = evaluate_examples(examples, detector.classes, score)
        cells = " ".join(
            f"{result['per_brand'][b]['precision']:>6.2f} / {result['per_brand'][b]['recall']:.2f}"
            for b in detector.classes
        )
        fp = f"{result['other_mark_fp_rate']:.3f} of {result['other_mark_images']}"
        print(f"{score:>9.2f} {image_f1_at(examples, detector.classes, score):>6.3f} {cells}  {fp}")


if __name__ == "__main__":
    main()
