"""Print the REPORT.md metrics tables of a registered model version from its evaluation files.

Usage: python -m experiments.report_table [vN] [--variants]   (default: the champion)

``--variants`` prints REPORT section 3's table instead: per robustness variant of the test split,
the pipeline's F1 beside the network alone's, box AP50 and other-agency alarms.
"""

from __future__ import annotations

import json
import math
import sys

from training.script_errors import exit_on_user_error
from wmstudio.registry import Registry
from wmstudio.settings import get_settings

SETS = ("real", "synthetic")
COLUMNS = ("precision", "recall", "f1", "ap50", "ap50_95", "mean_iou")


def _fmt(value: float) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


def table(version: str | None = None) -> str:
    registry = Registry.from_settings(get_settings())
    version = version or registry.champion()
    folder = registry.path(version)
    card = registry.card(version)
    lines = [
        f"Model {version}, operating threshold {card['threshold']} (chosen on validation), input {card['imgsz']} px.",
        "",
        "| test set | brand | photos with mark | precision | recall | F1 | AP50 | AP50-95 | mean IoU "
        "| other-mark FP rate |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name in ("real", "synthetic"):
        path = folder / "evaluation" / f"test_{name}.json"
        if not path.exists():
            continue
        result = json.loads(path.read_text())
        for brand, row in result["per_brand"].items():
            if row["positives"] == 0:  # no mark of this brand in the set: only its false alarms mean anything
                cells = f"{row['fp']} false alarm(s) | n/a | n/a | n/a | n/a | n/a"
            else:
                cells = " | ".join(_fmt(row[k]) for k in COLUMNS)
            fp = f"{_fmt(result['other_mark_fp_rate'])} ({result['other_mark_images']} photos)"
            lines.append(f"| {name} ({result['images']} photos) | {brand} | {row['positives']} | {cells} | {fp} |")
    return "\n".join(lines)


def _brand_figures(report: dict, stage: str, name: str, variant: str, brand: str) -> dict:
    return report["stages"][stage][name][variant]["per_brand"][brand]


def variants_table(version: str | None = None) -> str:
    """Per test variant: real Rumah123 F1 (recall) and the network's; per synthetic brand F1, the
    network's, AP50 (the network's); other-agency alarms (real / synthetic; the network's)."""
    registry = Registry.from_settings(get_settings())
    version = version or registry.champion()
    report = json.loads((registry.path(version) / "evaluation" / "test.json").read_text())
    network = "network" if "network" in report["stages"] else "pipeline"
    lines = [
        f"Model {version}, thresholds {report['thresholds']} (chosen on validation).",
        "",
        "| variant | real Rumah123 F1 (recall); network | synth Rumah123 F1; network / AP50 "
        "| synth 99.co F1; network / AP50 | other-agency FP real / synth; network |",
        "| --- | --- | --- | --- | --- |",
    ]
    for variant in report["variants"]:
        real, real_net = (_brand_figures(report, stage, "real", variant, "rumah123") for stage in ("pipeline", network))
        cells = [f"{real['f1']:.2f} ({real['recall']:.2f}); {real_net['f1']:.2f}"]
        for brand in ("rumah123", "99co"):
            ours, net = (_brand_figures(report, stage, "synthetic", variant, brand) for stage in ("pipeline", network))
            cells.append(f"{ours['f1']:.2f}; {net['f1']:.2f} / {ours['ap50']:.2f} ({net['ap50']:.2f})")
        alarms = [report["stages"]["pipeline"][name][variant]["other_mark_fp_rate"] for name in SETS]
        net_alarms = max(report["stages"][network][name][variant]["other_mark_fp_rate"] for name in SETS)
        cells.append(f"{alarms[0]:.3f} / {alarms[1]:.3f}; {net_alarms:.3f}")
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


@exit_on_user_error
def main() -> None:
    args = [arg for arg in sys.argv[1:] if arg != "--variants"]
    version = args[0] if args else None
    print(variants_table(version) if "--variants" in sys.argv else table(version))


if __name__ == "__main__":
    main()
