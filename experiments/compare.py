"""Choose between candidate versions on validation, with the champion/challenger gate's metrics.

Two fine-tunes that both beat the champion still have to be ranked, and ranking them on test
figures would turn the test set into a selection set. This evaluates each version on the
*validation* split (real + synthetic), prints the gate's agreed metrics (real F1, worst-brand
synthetic AP50, other-agency false alarms) and runs ``wmstudio.gate.gate`` for every ordered
pair, so a promotion can cite a validation decision made by the same rule ``wmstudio loop``
applies.

    python -m experiments.compare v3 v4 v5 [--split val]
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
from pathlib import Path

from training.release import evaluate_version, headline_metrics
from training.script_errors import exit_on_user_error
from wmstudio.gate import GateConfig, gate
from wmstudio.registry import Registry
from wmstudio.settings import get_settings

COLUMNS = (
    ("real_test_f1", "real F1"),
    ("real_other_fp_rate", "real other FP"),
    ("synthetic_test_ap50_rumah123", "synth AP50 r123"),
    ("synthetic_test_ap50_99co", "synth AP50 99co"),
    ("synthetic_other_fp_rate", "synth other FP"),
)


def split_metrics(registry: Registry, versions: list[str], state_dir: Path, split: str) -> dict[str, dict]:
    """The gate's metrics of each version on ``split`` (plots go to a scratch folder)."""
    metrics = {}
    with tempfile.TemporaryDirectory(prefix="wmstudio-compare-") as scratch:
        for version in versions:
            results = evaluate_version(registry, version, state_dir, split, Path(scratch) / version)
            metrics[version] = headline_metrics(results)
    return metrics


@exit_on_user_error
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("versions", nargs="+")
    parser.add_argument("--split", default="val", choices=("val", "test"))
    args = parser.parse_args()
    settings = get_settings()
    registry = Registry(settings.registry_dir)
    metrics = split_metrics(registry, args.versions, settings.state_dir, args.split)
    print(f"{args.split} split, each version at its own operating threshold")
    print(f"{'version':>8} " + " ".join(f"{title:>16}" for _, title in COLUMNS))
    for version, values in metrics.items():
        print(f"{version:>8} " + " ".join(f"{values.get(key, float('nan')):>16.3f}" for key, _ in COLUMNS))
    config = GateConfig.from_settings(settings)
    print(f"\ngate ({config}):")
    for challenger, champion in itertools.permutations(args.versions, 2):
        decision = gate(metrics[challenger], metrics[champion], config)
        print(f"  {challenger} over {champion}: {'passes' if decision.passed else 'fails'} ({decision.summary()})")


if __name__ == "__main__":
    main()
