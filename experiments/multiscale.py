"""Run a version's network at a second, larger input size too: chosen on validation, then registered.

Error analysis of v12 on synthetic validation found most lost AP in marks never found at any
score, and most of those small or faint. A network trained at 320 px sees a mark 4 % of the
photo's height as about 13 px of text. Run at a larger size as well, it gets more pixels for
those, while tiled and large marks are still seen at the size it was trained on; one NMS over
both sizes' candidates keeps one box per mark. It costs no training, only inference time (the
ONNX file gets dynamic height and width; the runtime pools the sizes, see
:class:`wmstudio.runtime.Detector`).

    python -m experiments.multiscale v12 [--sizes 384 416 448 480]   # compare on validation only
    python -m experiments.multiscale v12 --register 448              # v12's network at 320 + 448 px

The comparison reads validation only (synthetic AP50 per brand, F1 at the best threshold);
``--register`` then releases the new version the usual way: mark checks, threshold on
validation, test figures with it frozen. Promote it only if it passes the gate against its source.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from experiments.input_size import validation_figures
from training.export import export_onnx, register_model
from training.release import calibrate_and_evaluate, default_data, default_sets
from training.script_errors import exit_on_user_error
from wmstudio import tracking
from wmstudio.registry import Registry
from wmstudio.runtime import Detector
from wmstudio.settings import get_settings

DEFAULT_TRIAL_SIZES = [384, 416, 448, 480]


@dataclass(frozen=True)
class SizeTrial:
    """One choice of input sizes, scored on validation."""

    sizes: tuple[int, ...]
    ap50: dict[str, float]  # synthetic validation AP50 per brand
    threshold: float
    f1: float  # image-level F1 over all validation photos at that threshold
    other_fp: float  # synthetic other-agency false-positive rate at that threshold

    @property
    def worst_ap50(self) -> float:
        """The headline figure is the weaker brand's, as in the model card."""
        return min(self.ap50.values())


def score_on_validation(detector: Detector, val_sets: dict) -> SizeTrial:
    """The release's threshold rule, then the figures at it (see :mod:`experiments.input_size`)."""
    figures = validation_figures(detector, val_sets)
    synthetic = figures["results"]["synthetic"]
    ap50 = {brand: round(values["ap50"], 4) for brand, values in synthetic["per_brand"].items()}
    return SizeTrial(
        detector.input_sizes, ap50, figures["threshold"], round(figures["f1"], 4), synthetic["other_mark_fp_rate"]
    )


def compare_sizes(registry: Registry, version: str, extra_sizes: Sequence[int], datasets_dir: Path) -> list[SizeTrial]:
    """The version as registered, then with each extra size, all on validation."""
    source = registry.path(version)
    val_sets = default_sets(datasets_dir, "val")
    base = Detector.from_version_dir(source)
    trials = [score_on_validation(base, val_sets)]
    with tempfile.TemporaryDirectory() as scratch:
        onnx = export_onnx(registry.weights(version), base.imgsz, Path(scratch) / "dynamic.onnx", dynamic=True)
        for size in extra_sizes:
            detector = Detector(onnx, base.classes, base.imgsz, base.threshold, version, 2, base.card, (size,))
            trials.append(score_on_validation(detector, val_sets))
    return trials


def register_multiscale(registry: Registry, version: str, extra_sizes: Sequence[int], state_dir: Path) -> dict:
    """A new version: the source's network and recipe, run at its size plus ``extra_sizes``."""
    card = registry.card(version)
    data = default_data(state_dir)
    new = register_model(
        registry,
        registry.weights(version),
        card["classes"],
        int(card["imgsz"]),
        float(card["threshold"]),
        card["data_version"],  # the network, and so the data it learnt from, is the source's
        {**card["recipe"], "multiscale_from": version},
        parent=version,
        extra_sizes=extra_sizes,
    )
    calibrate_and_evaluate(registry, new, data)
    tracking.log_release(registry, new)  # a release like any other: a run and a registered model version
    return registry.card(new)


def print_trials(version: str, trials: list[SizeTrial]) -> None:
    brands = list(trials[0].ap50)
    print(f"{version} on validation (synthetic AP50 per brand; F1 and other-agency FP at the best threshold)")
    print(f"{'input sizes':>14} " + " ".join(f"{b:>9}" for b in brands) + f" {'thr':>5} {'F1':>6} {'other FP':>8}")
    for trial in trials:
        sizes = "+".join(map(str, trial.sizes))
        aps = " ".join(f"{trial.ap50[b]:9.3f}" for b in brands)
        print(f"{sizes:>14} {aps} {trial.threshold:5.2f} {trial.f1:6.3f} {trial.other_fp:8.1%}")
    best = max(trials, key=lambda t: t.worst_ap50)
    print(f"best on validation (weaker brand's AP50): {'+'.join(map(str, best.sizes))}")


@exit_on_user_error
def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("version")
    action = parser.add_mutually_exclusive_group()
    action.add_argument(
        "--sizes", type=int, nargs="+", default=DEFAULT_TRIAL_SIZES, help="extra input sizes to compare on validation"
    )
    action.add_argument("--register", type=int, nargs="+", metavar="SIZE", help="register with these extra sizes")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    settings = get_settings()
    registry = Registry.from_settings(settings)
    requested = args.register or args.sizes
    if any(size < 32 or size % 32 for size in requested):
        parser.error("input sizes must be multiples of 32 (the network's stride), at least 32")
    if not args.register:
        print_trials(args.version, compare_sizes(registry, args.version, args.sizes, settings.datasets_dir))
        return
    card = register_multiscale(registry, args.version, args.register, settings.state_dir)
    print(f"registered {card['version']}: threshold {card['threshold']}, test metrics {card['metrics']}")


if __name__ == "__main__":
    main()
