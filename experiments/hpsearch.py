"""Hyperparameter search: short, equal-budget trials compared on *validation* data only.

Usage: python -m experiments.hpsearch [--minutes 10] [--trials base,imgsz416,...] [--from-scratch]
       [--out docs/hpsearch]

Each trial trains for the same wall-clock budget, is exported to ONNX, and is scored on the
validation sets (real + synthetic): image-level F1 at its best validation threshold and
synthetic box AP50. Test data is never touched, so the winner is chosen without peeking.
Results go to ``results.json``, ``results.md`` and ``results.png``.

By default every trial is a fine-tune of the champion. On 2 CPU cores a from-scratch trial
that fits a session gets ~3 epochs, where every recipe still scores near zero and the ranking
is noise; fine-tunes from the same starting point measure what each knob does to a model that
already works. ``--from-scratch`` runs the other kind (and model-scale trials need it, since a
different architecture cannot start from the champion's weights).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from training.evaluate import choose_threshold, evaluate_examples, predict_items
from training.export import export_onnx
from training.pipeline import REAL_NEGATIVE_REPEATS, REAL_POSITIVE_REPEATS, prepare_default_data
from training.train import TrainRecipe, train
from training.yolo_data import Source, write_yolo_dataset
from wmstudio.brands import BRANDS
from wmstudio.registry import Registry
from wmstudio.runtime import Detector
from wmstudio.settings import get_settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Trial:
    name: str
    recipe: dict = field(default_factory=dict)
    real_positive_repeats: int = REAL_POSITIVE_REPEATS
    synth_fraction: float = 1.0  # share of the synthetic train images used


TRIALS = {
    "base": Trial("base"),
    "imgsz256": Trial("imgsz256", {"imgsz": 256}),
    "imgsz416": Trial("imgsz416", {"imgsz": 416}),
    "aug_light": Trial("aug_light", {"augmentation": "light"}),
    "aug_strong": Trial("aug_strong", {"augmentation": "strong"}),
    "yolov8n": Trial("yolov8n", {"model": "yolov8n.yaml"}),
    "real_heavy": Trial("real_heavy", real_positive_repeats=15),
    "synth_half": Trial("synth_half", synth_fraction=0.5),
}


def run_trial(trial: Trial, minutes: float, out_dir: Path, warm_start: str | None) -> dict:
    settings = get_settings()
    data = prepare_default_data(settings.data_dir, settings.state_dir)
    synthetic = data.synthetic
    if trial.synth_fraction < 1.0:
        train_items = [i for i in synthetic.items.values() if i.split == "train"]
        for item in train_items[int(len(train_items) * trial.synth_fraction) :]:
            item.split = "unused"
    data_yaml = write_yolo_dataset(
        [
            Source(data.real, data.real_dir, trial.real_positive_repeats, REAL_NEGATIVE_REPEATS),
            Source(synthetic, data.synthetic_dir),
        ],
        settings.state_dir / "yolo" / f"hp-{trial.name}",
    )
    recipe = TrainRecipe(time_hours=minutes / 60, warm_start=warm_start, **trial.recipe)
    start = time.time()
    best = train(data_yaml, settings.runs_dir / f"hp-{trial.name}", recipe)
    onnx = export_onnx(best, recipe.imgsz, settings.runs_dir / f"hp-{trial.name}" / "model.onnx")
    detector = Detector(onnx, list(BRANDS), recipe.imgsz, 0.5, f"hp-{trial.name}")
    real_val = predict_items(detector, [(i, data.real_dir) for i in data.real.split("val")], "real val")
    synth_val = predict_items(detector, [(i, data.synthetic_dir) for i in synthetic.split("val")], "synth val")
    threshold, f1 = choose_threshold(real_val + synth_val, BRANDS)
    synthetic_result = evaluate_examples(synth_val, BRANDS, threshold)
    real_result = evaluate_examples(real_val, BRANDS, threshold)
    return {
        "trial": trial.name,
        "start": "fine-tune" if warm_start else "scratch",
        "recipe": recipe.to_dict(),
        "real_positive_repeats": trial.real_positive_repeats,
        "synth_fraction": trial.synth_fraction,
        "minutes": round((time.time() - start) / 60, 1),
        "val_threshold": threshold,
        "val_f1": round(f1, 4),
        "real_val_f1_rumah123": round(real_result["per_brand"]["rumah123"]["f1"], 4),
        "real_val_fp_rate": round(real_result["negative_fp_rate"], 4),
        "synthetic_val_ap50": {b: round(v["ap50"], 4) for b, v in synthetic_result["per_brand"].items()},
    }


def write_results(results: list[dict], out_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(results, indent=1))
    lines = [
        "| trial | minutes | val F1 | real val F1 | real val FP | synth val AP50 r123 | synth val AP50 99co |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in sorted(results, key=lambda r: -r["val_f1"]):
        ap = r["synthetic_val_ap50"]
        lines.append(
            f"| {r['trial']} | {r['minutes']} | {r['val_f1']:.3f} | {r['real_val_f1_rumah123']:.3f} | "
            f"{r['real_val_fp_rate']:.3f} | {ap.get('rumah123', 0):.3f} | {ap.get('99co', 0):.3f} |"
        )
    (out_dir / "results.md").write_text("\n".join(lines) + "\n")
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.bar([r["trial"] for r in results], [r["val_f1"] for r in results], color="#4c72b0")
    ax.set(ylabel="validation F1", title="Equal-budget trials", ylim=(0, 1))
    ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    fig.savefig(out_dir / "results.png")
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--trials", default="base,imgsz416,aug_light,aug_strong,real_heavy,synth_half")
    parser.add_argument("--from-scratch", action="store_true", help="train each trial from the YAML")
    parser.add_argument("--out", type=Path, default=Path("docs/hpsearch"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    results_path = args.out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else []
    done = {r["trial"] for r in results}
    warm_start = None
    if not args.from_scratch:
        registry = Registry.from_settings(get_settings())
        warm_start = str(registry.weights(registry.champion_path().name))
    for name in args.trials.split(","):
        if name in done:
            continue  # resumable: finished trials are kept
        results.append(run_trial(TRIALS[name], args.minutes, args.out, warm_start))
        write_results(results, args.out)
    write_results(results, args.out)
    print((args.out / "results.md").read_text())


if __name__ == "__main__":
    main()
