"""Train the second-stage verifier (``wmstudio.runtime.verifier``) for a registered version.

1. Mine: run the version's network alone on *train* photos and their robustness variants and
   keep its top candidates. A candidate overlapping a mark of its brand (IoU ≥ 0.5) is a positive;
   one clear of every mark of its brand (IoU < 0.3) is a negative: other agencies' logos, phone
   numbers, signs, window frames, wrong-brand guesses. In between is ambiguous and left out.
2. Train a small CNN on the candidates' strips plus the detector's score, brand and box shape.
3. Export it to ONNX beside the version's model and name it in the card; the release then picks
   the operating threshold on validation again, with the verifier in the loop.

No validation or test photo is seen before the threshold is chosen.
"""

from __future__ import annotations

import argparse
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from training.robustness import VARIANTS, collage_partners, make_variant
from wmstudio.data.manifest import Item
from wmstudio.imaging import decode_image
from wmstudio.runtime import Detector
from wmstudio.runtime.postprocess import iou_matrix
from wmstudio.runtime.verifier import CROP_HEIGHT, CROP_WIDTH, FEATURES, crop_strip, side_features, to_tensor

log = logging.getLogger(__name__)

POSITIVE_IOU = 0.5
NEGATIVE_IOU = 0.3
MINE_FLOOR = 0.02  # mine below the serving floor, so the verifier also sees weak candidates
VERIFIER_FILE = "verifier.onnx"


@dataclass
class Mined:
    """Candidate strips with their side features and labels (1: a mark of the candidate's brand)."""

    strips: np.ndarray  # N × H × W × 3 uint8
    features: np.ndarray  # N × FEATURES float32
    labels: np.ndarray  # N float32

    def __len__(self) -> int:
        return len(self.labels)


def label_candidates(
    boxes: np.ndarray, classes: np.ndarray, truths: Sequence[tuple[int, tuple[float, ...]]]
) -> list[float | None]:
    """1.0 / 0.0 / None (ambiguous) per candidate, against the truth boxes of its own brand."""
    labels: list[float | None] = []
    for box, brand in zip(boxes, classes, strict=True):
        same = np.asarray([t for b, t in truths if b == int(brand)], dtype=np.float64).reshape(-1, 4)
        best = float(iou_matrix(np.asarray([box]), same).max()) if len(same) else 0.0
        labels.append(1.0 if best >= POSITIVE_IOU else 0.0 if best < NEGATIVE_IOU else None)
    return labels


def mine(
    detector: Detector,
    items: Sequence[tuple[Item, Path]],
    variants_per_photo: int,
    seed: int = 0,
    max_candidates: int = 8,
) -> Mined:
    """The network's candidates on ``variants_per_photo`` seeded variants of each photo."""
    network = detector.network_only()
    partners = collage_partners(items)
    rng = random.Random(seed)
    strips, features, labels = [], [], []
    for item, root in tqdm(items, desc="mine candidates", unit="photo"):
        chosen = ["original", *rng.sample(VARIANTS[1:], max(0, variants_per_photo - 1))]
        for variant in chosen:
            pool = [p for p in partners if p[0].sha256 != item.sha256]
            photo = make_variant(variant, item, root, pool, seed)
            decoded = decode_image(photo.data, draft_size=network.decode_size)
            sx, sy = decoded.scale
            image = decoded.image
            runs = [network.candidates_at(image, size) for size in network.input_sizes]
            boxes, scores, classes = (np.concatenate(parts) for parts in zip(*runs, strict=True))
            order = [i for i in np.argsort(-scores) if scores[i] >= MINE_FLOOR][:max_candidates]
            truths = [
                (network.classes.index(b.brand), (b.box[0] / sx, b.box[1] / sy, b.box[2] / sx, b.box[3] / sy))
                for b in photo.item.boxes
                if b.brand in network.classes
            ]
            for index, label in zip(order, label_candidates(boxes[order], classes[order], truths), strict=True):
                if label is None:
                    continue
                box = tuple(float(v) for v in boxes[index])
                strips.append(crop_strip(image, box))
                features.append(side_features(float(scores[index]), int(classes[index]), box, image.height))
                labels.append(label)
    if not labels:
        return Mined(
            np.zeros((0, CROP_HEIGHT, CROP_WIDTH, 3), np.uint8), np.zeros((0, FEATURES), np.float32), np.zeros(0)
        )
    return Mined(np.stack(strips), np.stack(features), np.asarray(labels, dtype=np.float32))


def build_network():
    """A small CNN over the strip, joined with the side features before the last layers."""
    import torch
    from torch import nn

    class StripVerifier(nn.Module):
        def __init__(self) -> None:
            super().__init__()

            def block(cin: int, cout: int) -> nn.Sequential:
                return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())

            self.body = nn.Sequential(
                block(3, 16), nn.MaxPool2d(2), block(16, 32), nn.MaxPool2d(2), block(32, 64), nn.MaxPool2d(2),
                block(64, 64), nn.AdaptiveAvgPool2d((1, 4)), nn.Flatten(),
            )  # fmt: skip
            self.head = nn.Sequential(nn.Linear(64 * 4 + FEATURES, 64), nn.ReLU(), nn.Dropout(0.2), nn.Linear(64, 1))

        def forward(self, crop: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
            return self.head(torch.cat([self.body(crop), features], dim=1))

    return StripVerifier()


def _photometric(batch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Brightness, contrast and noise jitter: listing photos differ in all three."""
    x = batch.astype(np.float32)
    gain = rng.uniform(0.75, 1.25, (len(x), 1, 1, 1))
    shift = rng.uniform(-25, 25, (len(x), 1, 1, 1))
    noise = rng.normal(0, rng.uniform(0, 6), x.shape)
    return np.clip(x * gain + shift + noise, 0, 255).astype(np.uint8)


def train_network(mined: Mined, epochs: int = 8, batch: int = 128, seed: int = 0, threads: int | None = None):
    """Fit the verifier with class-balanced weights; returns the torch module in eval mode."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = build_network()
    optimiser = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    steps = epochs * max(1, int(np.ceil(len(mined) / batch)))
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=2e-3, total_steps=steps)
    positives = float(mined.labels.sum())
    weight = torch.tensor((len(mined) - positives) / max(positives, 1.0))
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=weight)
    model.train()
    for epoch in range(epochs):
        order = rng.permutation(len(mined))
        total = 0.0
        for start in range(0, len(order), batch):
            chosen = order[start : start + batch]
            crop = torch.from_numpy(to_tensor(_photometric(mined.strips[chosen], rng)))
            features = torch.from_numpy(mined.features[chosen])
            target = torch.from_numpy(mined.labels[chosen]).reshape(-1, 1)
            loss = loss_fn(model(crop, features), target)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            total += float(loss.detach()) * len(chosen)
        log.info("verifier epoch %d/%d: loss %.4f", epoch + 1, epochs, total / len(mined))
    return model.eval()


def export(model, path: Path) -> Path:
    """ONNX with a dynamic number of candidates (the legacy exporter: no onnxscript needed)."""
    import torch

    crop = torch.zeros(2, 3, CROP_HEIGHT, CROP_WIDTH)
    features = torch.zeros(2, FEATURES)
    torch.onnx.export(
        model,
        (crop, features),
        str(path),
        input_names=["crop", "features"],
        output_names=["logit"],
        dynamic_axes={"crop": {0: "n"}, "features": {0: "n"}, "logit": {0: "n"}},
        opset_version=17,
        dynamo=False,
    )
    return path


def train_split_items(real, real_dir: Path, synthetic, synthetic_dir: Path, synthetic_limit: int, seed: int) -> list:
    """Every real train photo and a seeded sample of the synthetic train photos."""
    synthetic_items = [(item, synthetic_dir) for item in synthetic.split("train")]
    random.Random(seed).shuffle(synthetic_items)
    return [(item, real_dir) for item in real.split("train")] + synthetic_items[:synthetic_limit]


def attach_verifier(
    registry,
    version: str,
    data,
    synthetic_limit: int = 1500,
    variants_per_photo: int = 2,
    real_variants: int = len(VARIANTS),
    epochs: int = 8,
    seed: int = 0,
) -> dict:
    """Mine, train and export the verifier into ``version``'s folder and name it in the card."""
    from training.export import update_card

    folder = registry.path(version)
    detector = Detector.from_version_dir(folder)
    real_items = [(item, data.real_dir) for item in data.real.split("train")]
    synthetic_items = train_split_items(
        data.real, data.real_dir, data.synthetic, data.synthetic_dir, synthetic_limit, seed
    )
    synthetic_items = synthetic_items[len(real_items) :]
    mined_real = mine(detector, real_items, real_variants, seed)
    mined_synthetic = mine(detector, synthetic_items, variants_per_photo, seed)
    mined = Mined(
        np.concatenate([mined_real.strips, mined_synthetic.strips]),
        np.concatenate([mined_real.features, mined_synthetic.features]),
        np.concatenate([mined_real.labels, mined_synthetic.labels]),
    )
    log.info("verifier: %d candidates mined, %d positives", len(mined), int(mined.labels.sum()))
    model = train_network(mined, epochs=epochs, seed=seed)
    export(model, folder / VERIFIER_FILE)
    entry = {
        "file": VERIFIER_FILE,
        "floor": 0.05,
        "max_candidates": 8,
        "trained_on": {
            "candidates": len(mined),
            "positives": int(mined.labels.sum()),
            "real_train_photos": len(real_items),
            "synthetic_train_photos": len(synthetic_items),
            "variants_per_synthetic_photo": variants_per_photo,
            "epochs": epochs,
            "seed": seed,
        },
    }
    return update_card(registry, version, verifier=entry)


def main(argv: list[str] | None = None) -> None:
    from training.release import calibrate_and_evaluate, default_data
    from wmstudio.registry import Registry
    from wmstudio.settings import get_settings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("version")
    parser.add_argument("--synthetic-photos", type=int, default=1500)
    parser.add_argument("--variants-per-photo", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=8)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    settings = get_settings()
    registry = Registry(settings.registry_dir)
    data = default_data(settings.state_dir)
    attach_verifier(registry, args.version, data, args.synthetic_photos, args.variants_per_photo, epochs=args.epochs)
    card = calibrate_and_evaluate(registry, args.version, data)
    print({k: card[k] for k in ("version", "threshold", "validation_f1")})


if __name__ == "__main__":
    main()
