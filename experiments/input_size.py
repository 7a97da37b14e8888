"""Would the served network do better at another input size? A validation-only trial.

The detector is trained at one size (320 px), but small or tiled marks could be easier to see
if the same weights ran on a larger letterbox; latency grows with the square of the side. For
each size this re-exports the version's weights to a scratch copy (the registry is not
touched), re-picks the operating threshold on validation as a release would, and prints the
validation F1 and per-brand AP50. Test data is never read: a size chosen on test would leak it.

    python -m experiments.input_size [VERSION] [--sizes 320,416,480] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from training.evaluate import evaluate_examples, predict_items
from training.export import export_onnx
from training.release import default_sets
from training.robustness_eval import operating_threshold
from training.script_errors import exit_on_user_error
from wmstudio.registry import Registry
from wmstudio.runtime import Detector
from wmstudio.settings import get_settings


def copy_at_size(version_dir: Path, size: int, work: Path) -> Path:
    """A scratch copy of a version whose ONNX and card run at ``size`` (same weights)."""
    folder = work / f"{version_dir.name}-{size}"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(version_dir, folder, ignore=shutil.ignore_patterns("evaluation"))
    card_path = folder / "model_card.json"
    card = json.loads(card_path.read_text())
    if int(card["imgsz"]) != size:
        export_onnx(folder / "model.pt", size, folder / "model.onnx")
        card["imgsz"] = size
        card_path.write_text(json.dumps(card, indent=2))
    return folder


def validation_figures(detector: Detector, sets: dict) -> dict:
    """Threshold picked on the validation photos by the release's rule, then F1 and AP50 per set and brand."""
    examples = {name: predict_items(detector, items, f"val {name}") for name, items in sets.items() if items}
    pooled = [example for found in examples.values() for example in found]
    threshold, figures = operating_threshold(pooled, detector.classes, get_settings().operating_max_other_fp)
    f1 = figures["f1"]
    results = {name: evaluate_examples(ex, detector.classes, threshold) for name, ex in examples.items()}
    return {"threshold": threshold, "f1": f1, "results": results}


@exit_on_user_error
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("version", nargs="?", default=None, help="model version (default: the champion)")
    parser.add_argument("--sizes", default="320,416,480")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    args = parser.parse_args()
    settings = get_settings()
    version_dir = Registry.from_settings(settings).resolve(args.version)
    sets = default_sets(settings.datasets_dir, "val")
    brands = json.loads((version_dir / "model_card.json").read_text())["classes"]
    rows = []
    with tempfile.TemporaryDirectory(prefix="wmstudio-size-") as scratch:
        work = args.work or Path(scratch)
        for size in (int(s) for s in args.sizes.split(",")):
            detector = Detector.from_version_dir(copy_at_size(version_dir, size, work))
            rows.append((size, validation_figures(detector, sets)))
    print(f"model {version_dir.name}, validation split")
    print(f"{'size':>5} {'threshold':>9} {'val F1':>7} " + " ".join(f"{'synth AP50 ' + b:>20}" for b in brands))
    for size, figures in rows:
        synthetic = figures["results"].get("synthetic", {}).get("per_brand", {})
        aps = " ".join(f"{synthetic.get(b, {}).get('ap50', float('nan')):>20.3f}" for b in brands)
        print(f"{size:>5} {figures['threshold']:>9.2f} {figures['f1']:>7.3f} {aps}")


if __name__ == "__main__":
    main()
