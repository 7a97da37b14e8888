"""Does fine-tuning on altered train photos (the robustness variants) find marks where v37's network misses?

Issue #30. With the text stage saturated (pooled validation F1 0.868-0.878 for every reading rule
tried on v37's candidates), the misses left are the network's: on collages about a third of the
synthetic marks have no candidate at all or one under the reading floor, on corner crops a fifth.
The network was fine-tuned on photos as published (mosaic off), so marks at a corner or shrunk
into a collage are rarer in its training than in what listing systems pass on.

This fine-tune warm-starts from the champion's network (rebuilt from its ONNX file when its
``model.pt`` is not at hand) on the default train layout plus one seeded variant of every
synthetic train photo and every variant of the real train photos, drawn by the same code as the
evaluation variants but from the **train split** and other seeds. The result is registered and
released like any version (threshold and gate on validation only); with ``--text-from`` the new
network gets that version's text rescoring.

    python -m experiments.variant_finetune [--hours 1.2] [--text-from v38] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import logging
import random
from pathlib import Path

import yaml
from tqdm import tqdm

from training.export import register_model
from training.release import calibrate_and_evaluate, default_data, default_sets
from training.robustness import VARIANTS, collage_partners, make_variant
from training.script_errors import exit_on_user_error
from training.train import TrainRecipe, train
from training.warm_start import start_weights
from training.yolo_data import yolo_label_lines
from wmstudio import tracking
from wmstudio.registry import Registry
from wmstudio.settings import get_settings

log = logging.getLogger(__name__)
ALTERED = tuple(v for v in VARIANTS if v != "original")
VARIANT_SEED = 1000  # evaluation variants use seed 0 on val and test; these are train photos anyway


def write_variant_layout(state_dir: Path, classes: list[str], out_dir: Path) -> Path:
    """The default YOLO layout's lists plus seeded variants of the train photos; returns data.yaml."""
    default_yaml = state_dir / "yolo" / "default-s0" / "data.yaml"
    if not default_yaml.exists():
        raise FileNotFoundError(f"{default_yaml} is missing: run `wmstudio train` once to lay out the default data")
    default_dir = default_yaml.parent
    sets = default_sets(state_dir / "datasets", "train")
    rng = random.Random(VARIANT_SEED)
    train_lines = (default_dir / "train.txt").read_text().split()
    images, labels = out_dir / "images" / "train", out_dir / "labels" / "train"
    images.mkdir(parents=True, exist_ok=True)
    labels.mkdir(parents=True, exist_ok=True)
    jobs = []
    for set_name, items in sets.items():
        for item, root in items:
            chosen = ALTERED if set_name == "real" else (rng.choice(ALTERED),)
            jobs += [(set_name, variant, item, root, collage_partners(items)) for variant in chosen]
    for set_name, variant, item, root, partners in tqdm(jobs, desc="train variants", unit="img"):
        pool = [p for p in partners if p[0].sha256 != item.sha256]
        photo = make_variant(variant, item, root, pool, seed=VARIANT_SEED)
        stem = f"{set_name}_{variant}_{item.sha256[:32]}"
        (images / f"{stem}.jpg").write_bytes(photo.data)
        (labels / f"{stem}.txt").write_text("\n".join(yolo_label_lines(photo.item, classes)) + "\n")
        train_lines.append(str((images / f"{stem}.jpg").resolve()))
    (out_dir / "train.txt").write_text("\n".join(train_lines) + "\n")
    data = yaml.safe_load(default_yaml.read_text())
    data |= {"path": str(out_dir.resolve()), "train": "train.txt", "val": str(default_dir / "val.txt")}
    (out_dir / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    log.info("%d train images (%d variants)", len(train_lines), len(jobs))
    return out_dir / "data.yaml"


@exit_on_user_error
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", default=None, help="version to fine-tune (default: the champion)")
    parser.add_argument("--hours", type=float, default=1.2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--text-from", default=None, help="give the new network this version's text rescoring")
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    settings = get_settings()
    registry = Registry.from_settings(settings)
    source = args.source or registry.champion()
    card = registry.card(source)
    run_dir = settings.runs_dir / f"variant-finetune-{source}"
    run_dir.mkdir(parents=True, exist_ok=True)
    data_yaml = write_variant_layout(
        settings.state_dir, list(card["classes"]), settings.state_dir / "yolo" / "variants-s0"
    )
    data = default_data(settings.state_dir)
    recipe = TrainRecipe(
        model=card["architecture"],
        imgsz=card["imgsz"],
        epochs=40,
        time_hours=args.hours,
        warm_start=str(start_weights(registry, source, data, settings)),
        mosaic=0.0,
        threads=args.threads,
    )
    best = train(data_yaml, run_dir, recipe, resume=args.resume)
    recorded = recipe.to_dict() | {
        "fine_tuned_from": source,
        "train_variants": list(ALTERED),
        "variant_seed": VARIANT_SEED,
        "script": "experiments/variant_finetune.py",
    }
    version = register_model(
        registry,
        best,
        list(card["classes"]),
        card["imgsz"],
        0.5,
        data.real.version() + "+" + data.synthetic.version(),
        recorded,
        parent=source,
    )
    if args.text_from:
        new_card = registry.card(version)
        new_card["text_rescoring"] = registry.card(args.text_from)["text_rescoring"]
        registry.write_card(version, new_card)
    released = calibrate_and_evaluate(registry, version, data)
    tracking.log_release(registry, version, settings)
    print(json.dumps({k: released[k] for k in ("version", "threshold", "validation_f1", "metrics")}, indent=1))


if __name__ == "__main__":
    main()
