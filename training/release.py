"""Turn a trained checkpoint into a registered, evaluated model version.

Order matters: export → score every validation variant → pick the operating threshold on those
validation figures → evaluate the test variants once with that threshold frozen → write the
card. Test data never influences the threshold, the gate or the choice of version: the card's
``metrics`` keep the validation figures the gate reads (``val_*``) apart from the test figures
that are only reported (``test_*``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from training.evaluate import Example, evaluate_examples, image_f1_at, save_evaluation
from training.export import register_model, update_card
from training.pipeline import PreparedData, ValidationDraws, default_dirs, load_validation_draws
from training.robustness import VARIANTS
from training.robustness_eval import operating_threshold, predict_sets, save_report, score_variants
from training.script_errors import exit_on_user_error
from wmstudio import tracking
from wmstudio.brands import BRANDS
from wmstudio.data.manifest import Manifest
from wmstudio.gate import EVALUATION_DATA, same_evaluation_data
from wmstudio.registry import Registry
from wmstudio.runtime import Detector
from wmstudio.settings import get_settings

log = logging.getLogger(__name__)

Predictions = Mapping[str, Mapping[str, list[Example]]]


def _items(manifest: Manifest, root: Path, split: str) -> list:
    return [(item, root) for item in manifest.split(split)]


def _synthetic_items(synthetic: Manifest, synthetic_dir: Path, split: str, draws: ValidationDraws) -> list:
    """The synthetic photos of ``split``; validation pools every draw, test stays one draw."""
    items = _items(synthetic, synthetic_dir, split)
    if split == "val":
        items += [pair for manifest, folder in draws for pair in _items(manifest, folder, split)]
    return items


def evaluation_sets(
    real: Manifest, real_dir: Path, synthetic: Manifest, synthetic_dir: Path, split: str, draws: ValidationDraws = ()
) -> dict:
    sets = {
        "real": _items(real, real_dir, split),
        "synthetic": _synthetic_items(synthetic, synthetic_dir, split, draws),
    }
    return {name: items for name, items in sets.items() if items}


def evaluation_data_version(real: Manifest, synthetic: Manifest, draws: ValidationDraws = ()) -> str:
    """What the gate compares before it compares figures: the manifests the variants are drawn from."""
    return "+".join(manifest.version() for manifest in (real, synthetic, *(m for m, _ in draws)))


def pooled(predictions: Predictions, set_name: str | None = None) -> list[Example]:
    """Every variant's examples in one list (of one set, or of all)."""
    return [
        example
        for name, by_variant in predictions.items()
        if set_name in (None, name)
        for examples in by_variant.values()
        for example in examples
    ]


def headline_metrics(predictions: Predictions, classes: list[str], threshold: float, prefix: str) -> dict:
    """The few numbers the gate, the dashboard and MLflow compare, pooled over every variant.

    ``<prefix>_f1`` is the image-level F1 over both sets and brands; ``<prefix>_real_f1`` the
    Rumah123 F1 on real photos; ``<prefix>_synthetic_ap50`` the worse brand's box AP50 on
    synthetic photos; ``<prefix>_other_fp_rate`` the share of other-agency photos with an alarm.
    The worst variant's F1 per set is kept too, so a version that gains on average but breaks on
    one kind of photo shows it.
    """
    everything = evaluate_examples(pooled(predictions), classes, threshold)
    metrics = {
        f"{prefix}_f1": round(image_f1_at(pooled(predictions), classes, threshold), 4),
        f"{prefix}_other_fp_rate": round(everything["other_mark_fp_rate"], 4),
        f"{prefix}_negative_fp_rate": round(everything["negative_fp_rate"], 4),
    }
    for name in predictions:
        result = evaluate_examples(pooled(predictions, name), classes, threshold)
        worst = min(
            (evaluate_examples(examples, classes, threshold)["per_brand"][brand]["f1"], variant)
            for variant, examples in predictions[name].items()
            for brand in classes
            if any(e.item.brand == brand for e in examples)
        )
        metrics[f"{prefix}_{name}_worst_variant_f1"] = round(worst[0], 4)
        metrics[f"{prefix}_{name}_worst_variant"] = worst[1]
        for brand, figures in result["per_brand"].items():
            if figures["positives"]:
                metrics[f"{prefix}_{name}_f1_{brand}"] = round(figures["f1"], 4)
                metrics[f"{prefix}_{name}_ap50_{brand}"] = round(figures["ap50"], 4)
        if name == "real":
            metrics[f"{prefix}_real_f1"] = metrics.get(f"{prefix}_real_f1_rumah123", 0.0)
            metrics[f"{prefix}_real_other_fp_rate"] = round(result["other_mark_fp_rate"], 4)
        if name == "synthetic":
            aps = [figures["ap50"] for figures in result["per_brand"].values() if figures["positives"]]
            metrics[f"{prefix}_synthetic_ap50"] = round(min(aps), 4) if aps else float("nan")
    return metrics


def release_model(
    registry: Registry,
    weights: Path,
    data: PreparedData,
    recipe: dict,
    parent: str | None = None,
    version: str | None = None,
) -> str:
    """Export, choose the threshold on validation, evaluate on test once and register."""
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
    calibrate_and_evaluate(registry, version, data)
    tracking.log_release(registry, version)  # MLflow: metrics, evaluation files, ONNX; registers the version
    return version


def calibrate_and_evaluate(registry: Registry, version: str, data: PreparedData, seed: int = 0) -> dict:
    """Pick the operating threshold on the validation variants, then measure the test variants once.

    A version that reads its candidates' text (``text_rescoring``) is also scored as "the network
    alone" (same network, no reading), at a threshold chosen by the same rule, so the reports
    show what the reading adds. Without it the pipeline *is* the network alone.
    """
    folder = registry.path(version)
    detector = Detector.from_version_dir(folder)
    classes = detector.classes
    stages = {"pipeline": detector}
    if detector.text_rescoring is not None:
        stages["network"] = detector.network_only()
    cap = get_settings().operating_max_other_fp
    val_sets = evaluation_sets(
        data.real, data.real_dir, data.synthetic, data.synthetic_dir, "val", data.validation_draws
    )
    test_sets = evaluation_sets(data.real, data.real_dir, data.synthetic, data.synthetic_dir, "test")
    thresholds, validation, test, metrics = {}, {}, {}, {}
    for stage, stage_detector in stages.items():
        val_predictions = predict_sets(stage_detector, val_sets, VARIANTS, seed, desc=f"{version} {stage} validation")
        threshold, figures = operating_threshold(pooled(val_predictions), classes, cap)
        log.info(
            "%s %s: operating threshold %.2f, validation other-agency alarms %.3f (cap %.2f), F1 %.3f",
            version,
            stage,
            threshold,
            figures["other_mark_fp_rate"],
            cap,
            figures["f1"],
        )
        test_predictions = predict_sets(stage_detector, test_sets, VARIANTS, seed, desc=f"{version} {stage} test")
        thresholds[stage] = threshold
        validation[stage] = score_variants(val_predictions, classes, threshold)
        test[stage] = score_variants(test_predictions, classes, threshold)
        metrics[stage] = headline_metrics(val_predictions, classes, threshold, "val") | headline_metrics(
            test_predictions, classes, threshold, "test"
        )
        if stage == "pipeline":  # full curves of the photos as published (dashboard)
            for name, by_variant in test_predictions.items():
                result = evaluate_examples(by_variant["original"], classes, threshold)
                save_evaluation(result, folder / "evaluation", f"test_{name}")
    for name, scored in (("validation", validation), ("test", test)):
        report = {"thresholds": thresholds, "seed": seed, "variants": list(VARIANTS), "stages": scored}
        save_report(report, folder / "evaluation", name)
    draws = f" and {1 + len(data.validation_draws)} synthetic draws" if data.validation_draws else ""
    rule = f"lowest with validation other-agency alarms <= {cap:.2f}, pooled over {len(VARIANTS)} variants{draws}"
    return update_card(
        registry,
        version,
        threshold=thresholds["pipeline"],
        threshold_rule=rule,
        validation_f1=metrics["pipeline"]["val_f1"],
        metrics=metrics["pipeline"],
        network_threshold=thresholds.get("network"),
        network_metrics=metrics.get("network"),
        **{EVALUATION_DATA: evaluation_data_version(data.real, data.synthetic, data.validation_draws)},
    )


def default_sets(datasets_dir: Path, split: str, seed: int = 0) -> dict:
    """The default recipe's real and synthetic items of ``split``, for those that exist (validation
    with every synthetic draw on disk, as the release pools them)."""
    sets = {}
    real_dir, synthetic_dir = default_dirs(datasets_dir, seed)
    if (real_dir / "manifest.json").exists():
        sets["real"] = _items(Manifest.load(real_dir), real_dir, split)
    if (synthetic_dir / "manifest.json").exists():
        draws = load_validation_draws(synthetic_dir, get_settings().validation_draws)
        sets["synthetic"] = _synthetic_items(Manifest.load(synthetic_dir), synthetic_dir, split, draws)
    if not sets:
        raise FileNotFoundError(f"no datasets under {datasets_dir}: run `wmstudio train` or `wmstudio ingest` first")
    return sets


def evaluate_version(
    registry: Registry,
    version: str,
    state_dir: Path,
    split: str = "test",
    out_dir: Path | None = None,
    seed: int = 0,
    variants: tuple[str, ...] = VARIANTS,
    recalibrate: bool = False,
) -> dict:
    """Re-evaluate a registered version on every variant of the default real and synthetic data.

    At the card's threshold by default. ``recalibrate`` (validation only) chooses the threshold
    on these photos by the release's rule instead: the operating point a release on this data
    would give it. The gate re-measures a champion so, because its card's threshold was chosen on
    other renderings and may break the alarm cap on these; compared there, a challenger making
    the champion's very decisions could lose (docs/training.md, "The promotion gate").
    """
    if recalibrate and split != "val":
        raise ValueError(f"only validation may choose a threshold, not {split!r}")
    folder = registry.path(version)  # an unknown version is named before missing data
    sets = default_sets(state_dir / "datasets", split, seed)
    detector = Detector.from_version_dir(folder)
    predictions = predict_sets(detector, sets, variants, seed, desc=f"{version} {split} variants")
    threshold = detector.threshold
    if recalibrate:
        threshold, _ = operating_threshold(pooled(predictions), detector.classes, get_settings().operating_max_other_fp)
    report = {
        "version": version,
        "split": split,
        "data_version": current_evaluation_data(state_dir),
        "thresholds": {"pipeline": threshold},
        "card_threshold": detector.threshold,
        "recalibrated": recalibrate,
        "seed": seed,
        "variants": list(variants),
        "stages": {"pipeline": score_variants(predictions, detector.classes, threshold)},
        "metrics": headline_metrics(predictions, detector.classes, threshold, split),
    }
    save_report(report, out_dir or folder / "evaluation", f"evaluate_{split}")
    return report


def current_evaluation_data(state_dir: Path) -> str | None:
    """The evaluation data version of the default datasets on this machine (None if not built)."""
    try:
        data = default_data(state_dir)
    except FileNotFoundError:
        return None
    return evaluation_data_version(data.real, data.synthetic, data.validation_draws)


def champion_on_challenger_data(registry: Registry, challenger: str, state_dir: Path, out_dir: Path) -> dict | None:
    """The champion's validation figures re-measured on the data ``challenger`` was measured on,
    at the threshold the release's rule picks there (:func:`evaluate_version`'s ``recalibrate``).

    None when the two cards' figures already compare, or when that data is not on this machine
    (the gate then refuses to compare them): every promotion path calls this, not its own copy.
    """
    champion = registry.champion()
    if champion is None or champion == challenger:
        return None
    challenger_card = registry.card(challenger)
    if same_evaluation_data(challenger_card, registry.card(champion)):
        return None
    if current_evaluation_data(state_dir) != challenger_card.get(EVALUATION_DATA):
        return None
    log.info(
        "re-measuring %s on the validation data %s was measured on, its threshold by the same rule",
        champion,
        challenger,
    )
    return evaluate_version(registry, champion, state_dir, "val", out_dir, recalibrate=True)["metrics"]


def default_data(state_dir: Path) -> PreparedData:
    """The default recipe's real and synthetic sets as they are on disk (built by `wmstudio train`)."""
    real_dir, synthetic_dir = default_dirs(state_dir / "datasets")
    if not all((folder / "manifest.json").exists() for folder in (real_dir, synthetic_dir)):
        raise FileNotFoundError(f"no default datasets under {real_dir.parent}: run `wmstudio train` first")
    draws = load_validation_draws(synthetic_dir, get_settings().validation_draws)
    return PreparedData(Manifest.load(real_dir), real_dir, Manifest.load(synthetic_dir), synthetic_dir, Path(), draws)


def rerelease(version: str) -> dict:
    """Recalibrate and re-evaluate a registered version under the current rules (the network unchanged)."""
    settings = get_settings()
    registry = Registry.from_settings(settings)
    registry.path(version)  # an unknown version is named before missing data
    card = calibrate_and_evaluate(registry, version, default_data(settings.state_dir))
    tracking.log_release(registry, version, settings)  # MLflow: a new run and model version for the re-release
    return card


@exit_on_user_error
def main() -> None:
    import json
    import sys

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    card = rerelease(sys.argv[1])
    print(json.dumps({k: card[k] for k in ("version", "threshold", "validation_f1", "metrics")}, indent=1))


if __name__ == "__main__":
    main()
