"""Turn a trained checkpoint into a registered, evaluated model version.

Order matters: export → build the mark checks from real train photos → pick the threshold on
*validation* (real + synthetic val) → evaluate on test with that threshold frozen → write the
card. Test data never influences the threshold, the checks or the choice of checkpoint.
"""

from __future__ import annotations

import logging
from pathlib import Path

from training.evaluate import choose_threshold, evaluate_examples, predict_items, save_evaluation
from training.export import register_model, update_card
from training.mark_checks import attach_mark_checks
from training.pipeline import PreparedData, default_dirs
from training.script_errors import exit_on_user_error
from wmstudio.brands import BRANDS
from wmstudio.data.manifest import Manifest
from wmstudio.registry import Registry
from wmstudio.runtime import Detector
from wmstudio.settings import get_settings

log = logging.getLogger(__name__)


def _items(manifest: Manifest, root: Path, split: str) -> list:
    return [(item, root) for item in manifest.split(split)]


def evaluation_sets(real: Manifest, real_dir: Path, synthetic: Manifest, synthetic_dir: Path, split: str) -> dict:
    return {"real": _items(real, real_dir, split), "synthetic": _items(synthetic, synthetic_dir, split)}


def evaluate_detector(detector: Detector, sets: dict, threshold: float, out_dir: Path | None, prefix: str) -> dict:
    results = {}
    for name, items in sets.items():
        if not items:
            continue
        examples = predict_items(detector, items, desc=f"{prefix} {name}")
        results[name] = evaluate_examples(examples, detector.classes, threshold)
        if out_dir is not None:
            save_evaluation(results[name], out_dir, f"{prefix}_{name}")
    return results


def headline_metrics(results: dict) -> dict:
    """The few numbers the champion/challenger gate and the dashboard compare."""
    metrics = {}
    real = results.get("real")
    if real:
        r123 = real["per_brand"]["rumah123"]
        metrics |= {
            "real_test_f1": round(r123["f1"], 4),
            "real_test_ap50": round(r123["ap50"], 4),
            "real_test_precision": round(r123["precision"], 4),
            "real_test_recall": round(r123["recall"], 4),
            "real_other_fp_rate": round(real["other_mark_fp_rate"], 4),
        }
    synthetic = results.get("synthetic")
    if synthetic:
        aps = {b: v["ap50"] for b, v in synthetic["per_brand"].items()}
        metrics |= {f"synthetic_test_ap50_{b}": round(v, 4) for b, v in aps.items()}
        metrics["synthetic_test_ap50"] = round(min(aps.values()), 4)
        metrics["synthetic_other_fp_rate"] = round(synthetic["other_mark_fp_rate"], 4)
    return metrics


def release_model(
    registry: Registry,
    weights: Path,
    data: PreparedData,
    recipe: dict,
    parent: str | None = None,
    version: str | None = None,
) -> str:
    """Export, calibrate on val, evaluate on test and register; returns the version name."""
    version = register_model(
        registry,
        weights,
        list(BRANDS),
        int(recipe["imgsz"]),
        0.5,
        data.real.version() + "+" + data.synthetic.version(),
        recipe,
        parent=parent,
        version=version,
    )
    add_mark_checks(registry, version, data)
    calibrate_and_evaluate(registry, version, data)
    return version


def add_mark_checks(registry: Registry, version: str, data: PreparedData) -> list[dict]:
    """Give the version its template checks (built from real train photos) in its card."""
    card = registry.card(version)
    entries = attach_mark_checks(registry.path(version), data.real, data.real_dir, card["classes"], int(card["imgsz"]))
    update_card(registry, version, mark_checks=entries)
    return entries


def threshold_on_validation(detector: Detector, val_sets: dict) -> tuple[float, float, dict[str, list]]:
    """The operating threshold with the best F1 over all validation photos, that F1, and the
    per-set validation predictions (so callers can score them without predicting twice)."""
    examples = {name: predict_items(detector, items, f"val {name}") for name, items in val_sets.items() if items}
    cap = get_settings().operating_max_other_fp
    threshold, f1 = choose_threshold([e for ex in examples.values() for e in ex], detector.classes, cap)
    return threshold, f1, examples


def calibrate_and_evaluate(registry: Registry, version: str, data: PreparedData) -> dict:
    """Pick the operating threshold on validation, then evaluate on test with it frozen."""
    folder = registry.path(version)
    detector = Detector.from_version_dir(folder)
    val_sets = evaluation_sets(data.real, data.real_dir, data.synthetic, data.synthetic_dir, "val")
    threshold, val_f1, _ = threshold_on_validation(detector, val_sets)
    log.info("operating threshold %.2f (validation F1 %.3f)", threshold, val_f1)
    detector.threshold = threshold
    test_sets = evaluation_sets(data.real, data.real_dir, data.synthetic, data.synthetic_dir, "test")
    results = evaluate_detector(detector, test_sets, threshold, folder / "evaluation", "test")
    return update_card(
        registry, version, threshold=threshold, validation_f1=round(val_f1, 4), metrics=headline_metrics(results)
    )


def default_sets(datasets_dir: Path, split: str, seed: int = 0) -> dict:
    """The default recipe's real and synthetic items of ``split``, for those that exist."""
    sets = {}
    for name, folder in zip(("real", "synthetic"), default_dirs(datasets_dir, seed), strict=True):
        if (folder / "manifest.json").exists():
            sets[name] = _items(Manifest.load(folder), folder, split)
    if not sets:
        raise FileNotFoundError(f"no datasets under {datasets_dir}: run `wmstudio train` or `wmstudio ingest` first")
    return sets


def evaluate_version(
    registry: Registry, version: str, state_dir: Path, split: str = "test", out_dir: Path | None = None, seed: int = 0
) -> dict:
    """Re-evaluate a registered version on the default real and synthetic data."""
    folder = registry.path(version)  # an unknown version is named before missing data
    sets = default_sets(state_dir / "datasets", split, seed)
    detector = Detector.from_version_dir(folder)
    return evaluate_detector(detector, sets, detector.threshold, out_dir or folder / "evaluation", split)


def default_data(state_dir: Path) -> PreparedData:
    """The default recipe's real and synthetic sets as they are on disk (built by `wmstudio train`)."""
    real_dir, synthetic_dir = default_dirs(state_dir / "datasets")
    if not all((folder / "manifest.json").exists() for folder in (real_dir, synthetic_dir)):
        raise FileNotFoundError(f"no default datasets under {real_dir.parent}: run `wmstudio train` first")
    return PreparedData(Manifest.load(real_dir), real_dir, Manifest.load(synthetic_dir), synthetic_dir, Path())


def rerelease(version: str) -> dict:
    """Rebuild a registered version's mark checks, then recalibrate and re-evaluate it.

    For a version registered before it had checks (or after the real data changed): the
    network stays as it is; the checks, the operating threshold and the test figures are redone
    in the same order as :func:`release_model`.
    """
    settings = get_settings()
    registry = Registry(settings.registry_dir)
    registry.path(version)  # an unknown version is named before missing data
    data = default_data(settings.state_dir)
    add_mark_checks(registry, version, data)
    return calibrate_and_evaluate(registry, version, data)


@exit_on_user_error
def main() -> None:
    import json
    import sys

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    card = rerelease(sys.argv[1])
    print(json.dumps({k: card[k] for k in ("version", "threshold", "validation_f1", "metrics")}, indent=1))


if __name__ == "__main__":
    main()
