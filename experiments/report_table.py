"""Print the REPORT.md metrics table of a registered model version from its evaluation files.

Usage: python -m experiments.report_table [vN]   (default: the champion)
"""

from __future__ import annotations

import json
import math
import sys

from training.script_errors import exit_on_user_error
from wmstudio.registry import Registry
from wmstudio.settings import get_settings

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


@exit_on_user_error
def main() -> None:
    print(table(sys.argv[1] if len(sys.argv) > 1 else None))


if __name__ == "__main__":
    main()
