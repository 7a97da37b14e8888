"""How far the operating threshold moves when validation is drawn again: same fonts, another seed.

The release picks the lowest threshold whose other-agency alarms, pooled over the validation
variants, stay within the cap. That rests on a few hundred rendered competitor marks, so a
handful of them can move it. This draws the synthetic validation split again with other seeds
(into a scratch folder, beside the real validation photos with variants of the same seed), runs
the version on every variant, and prints the threshold the rule picks there and the figures at
it and at the version's own threshold. Validation only: nothing here reads the test split.

    python -m experiments.threshold_stability [VERSION] [--seeds 1,2] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from training.build import DEFAULT_SYNTH_COUNTS, build_synthetic
from training.release import default_data, evaluation_sets, headline_metrics, pooled
from training.robustness import VARIANTS
from training.robustness_eval import operating_threshold, predict_sets
from training.script_errors import exit_on_user_error
from wmstudio.registry import Registry
from wmstudio.runtime import Detector
from wmstudio.settings import PROJECT_ROOT, get_settings

HEADLINE = ("val_f1", "val_other_fp_rate", "val_real_f1", "val_synthetic_ap50")
VALIDATION_PHOTOS = DEFAULT_SYNTH_COUNTS["val"]  # as many as the default recipe's validation split


def redrawn_figures(detector: Detector, seed: int, out: Path, houses: Path) -> dict:
    """The rule's threshold on validation redrawn with ``seed``, and the figures at it and at the card's."""
    settings = get_settings()
    data = default_data(settings.state_dir)
    folder = out / f"synthetic-s{seed}"
    synthetic = build_synthetic(folder, houses, data.real, data.real_dir, {"val": VALIDATION_PHOTOS}, seed=seed)
    sets = evaluation_sets(data.real, data.real_dir, synthetic, folder, "val")
    predictions = predict_sets(detector, sets, VARIANTS, seed, desc=f"{detector.version} val, seed {seed}")
    threshold, _ = operating_threshold(pooled(predictions), detector.classes, settings.operating_max_other_fp)
    figures = {}
    for name, at in (("card", detector.threshold), ("rule", threshold)):
        metrics = headline_metrics(predictions, detector.classes, at, "val")
        figures[name] = {"threshold": at} | {key: metrics[key] for key in HEADLINE}
    return {"seed": seed, "data": synthetic.version()} | figures


@exit_on_user_error
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("version", nargs="?", default=None, help="model version (default: the champion)")
    parser.add_argument("--seeds", default="1", help="comma-separated seeds to draw validation with")
    parser.add_argument("--out", type=Path, default=Path("/tmp/wmstudio-threshold-stability"))
    parser.add_argument("--houses", type=Path, default=PROJECT_ROOT.parent / "shared" / "data" / "houses")
    args = parser.parse_args()
    registry = Registry.from_settings(get_settings())
    detector = Detector.from_version_dir(registry.resolve(args.version))
    for seed in (int(s) for s in args.seeds.split(",")):
        print(json.dumps(redrawn_figures(detector, seed, args.out, args.houses)), flush=True)


if __name__ == "__main__":
    main()
