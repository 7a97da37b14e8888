"""Score a model version on every robustness variant: the table behind `wmstudio evaluate`.

Per evaluation set (real, synthetic), variant and brand: precision, recall and F1 of the
image-level decision at the operating threshold, box AP50, and the share of photos carrying
another agency's mark on which a brand is reported. ``stages`` maps a name to a detector, so
the full pipeline and the network alone are scored on the same pixels.

The operating threshold is chosen here too, on validation variants only
(:func:`operating_threshold`): the lowest threshold whose other-agency false-alarm rate,
pooled over every validation variant, stays within the cap. The lowest such threshold is the
one with the highest recall, which is what the listing systems asked for.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from training.evaluate import THRESHOLD_GRID, Example, evaluate_examples, image_f1_at, other_mark_fp_rate_at
from training.robustness import VARIANTS, variant_examples
from wmstudio.data.manifest import Item
from wmstudio.runtime import Detector

ItemSets = Mapping[str, Sequence[tuple[Item, Path]]]


def predict_sets(
    detector: Detector, sets: ItemSets, variants: Sequence[str] = VARIANTS, seed: int = 0, desc: str = "variants"
) -> dict[str, dict[str, list[Example]]]:
    """Predictions per set and variant, with one progress bar over all of them."""
    total = sum(len(items) for items in sets.values()) * len(variants)
    with tqdm(total=total, desc=desc, unit="img") as bar:
        return {name: variant_examples(detector, items, variants, seed, bar.update) for name, items in sets.items()}


def operating_threshold(
    examples: Sequence[Example], brands: Sequence[str], max_other_fp: float
) -> tuple[float, dict[str, float]]:
    """The lowest grid threshold whose pooled other-agency false-alarm rate is within the cap.

    With no photo carrying another agency's mark, the cap cannot be measured and the F1-best
    threshold is taken instead. Returns the threshold and the validation figures at it.
    """
    pooled = list(examples)
    rates = {float(t): other_mark_fp_rate_at(pooled, float(t)) for t in THRESHOLD_GRID}
    measurable = [t for t, rate in rates.items() if not np.isnan(rate)]
    if measurable:
        within = [t for t in measurable if rates[t] <= max_other_fp]
        threshold = min(within) if within else max(measurable)
    else:
        threshold = max((float(t) for t in THRESHOLD_GRID), key=lambda t: (image_f1_at(pooled, brands, t), t))
    figures = {
        "other_mark_fp_rate": rates[threshold],
        "f1": image_f1_at(pooled, brands, threshold),
        "max_other_fp": max_other_fp,
    }
    return threshold, figures


def summarise(result: dict) -> dict:
    """The figures of one (set, variant) that go into the table: no curves, no error lists."""
    keys = ("precision", "recall", "f1", "ap50", "positives")
    return {
        "images": result["images"],
        "per_brand": {brand: {k: figures[k] for k in keys} for brand, figures in result["per_brand"].items()},
        "other_mark_images": result["other_mark_images"],
        "other_mark_fp_rate": result["other_mark_fp_rate"],
        "negative_fp_rate": result["negative_fp_rate"],
    }


def score_variants(
    predictions: Mapping[str, Mapping[str, list[Example]]], brands: Sequence[str], threshold: float
) -> dict[str, dict[str, dict]]:
    """``{set: {variant: summary}}`` at ``threshold``."""
    return {
        name: {
            variant: summarise(evaluate_examples(examples, brands, threshold))
            for variant, examples in by_variant.items()
        }
        for name, by_variant in predictions.items()
    }


def robustness_report(
    stages: Mapping[str, Detector],
    sets: ItemSets,
    thresholds: Mapping[str, float],
    variants: Sequence[str] = VARIANTS,
    seed: int = 0,
) -> dict:
    """Every stage scored on every variant of every set, each at its own operating threshold."""
    report: dict = {"thresholds": dict(thresholds), "seed": seed, "variants": list(variants), "stages": {}}
    for stage, detector in stages.items():
        predictions = predict_sets(detector, sets, variants, seed, desc=f"robustness {stage}")
        report["stages"][stage] = score_variants(predictions, detector.classes, thresholds[stage])
    return report


def table_rows(report: dict) -> list[dict]:
    """One flat row per stage, set, variant and brand (for REPORT tables and MLflow metrics)."""
    rows = []
    for stage, sets in report["stages"].items():
        for name, by_variant in sets.items():
            for variant, summary in by_variant.items():
                for brand, figures in summary["per_brand"].items():
                    if not figures["positives"]:
                        continue
                    rows.append(
                        {
                            "stage": stage,
                            "set": name,
                            "variant": variant,
                            "brand": brand,
                            **{k: figures[k] for k in ("precision", "recall", "f1", "ap50", "positives")},
                            "other_mark_fp_rate": summary["other_mark_fp_rate"],
                        }
                    )
    return rows


def format_table(report: dict) -> str:
    """A Markdown table of the report, for the console and REPORT.md."""
    lines = [
        "| stage | set | variant | brand | P | R | F1 | AP50 | other-agency FP |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in table_rows(report):
        fp = row["other_mark_fp_rate"]
        lines.append(
            f"| {row['stage']} | {row['set']} | {row['variant']} | {row['brand']} | {row['precision']:.3f} | "
            f"{row['recall']:.3f} | {row['f1']:.3f} | {row['ap50']:.3f} | {'–' if np.isnan(fp) else f'{fp:.3f}'} |"
        )
    return "\n".join(lines)


def save_report(report: dict, out_dir: Path, name: str = "robustness") -> Path:
    """``<name>.json``, ``<name>.md`` and an F1 heat map ``<name>_f1.png``."""
    from training.plots import plot_variant_f1

    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    path.write_text(json.dumps(report, indent=1, default=float))
    (out_dir / f"{name}.md").write_text(format_table(report) + "\n")
    at = ", ".join(f"{stage} {t:.2f}" for stage, t in report["thresholds"].items())
    plot_variant_f1(table_rows(report), out_dir / f"{name}_f1.png", title=f"{name} (thresholds: {at})")
    return path
