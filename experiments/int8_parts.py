"""Which parts of the network to keep in float when it is quantized to int8, judged on validation.

Issue #30. v52 (the head, the attention block and the first convolution in float) ran 31 % faster
than v51 and lost 0.0014 validation F1, so the gate refused it. A release takes 45 minutes; this
script ranks choices in two: each is quantized as ``--int8`` would (:mod:`training.quantize`) and
the network alone is run on validation photos (real ones and the first synthetic ones, each as
published, in a collage, as a thumbnail and with the mark in a corner) beside the float network.
The nearer its per-brand best scores stay to the float network's, and the fewer photos change
side of the threshold, the less a release can lose. One network run is timed for each.

    python -m experiments.int8_parts v51 --parts /model.0/,/model.10/,/model.23/ \
        /model.0/,/model.1/,/model.2/,/model.10/,/model.23/
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from training.quantize import CALIBRATION_PHOTOS, quantize_network
from training.release import default_data, default_sets
from training.robustness import collage_partners, make_variant
from training.script_errors import exit_on_user_error
from training.warm_start import calibration_photos
from wmstudio.imaging import decode_image
from wmstudio.registry import Registry
from wmstudio.runtime import Detector
from wmstudio.settings import get_settings

VARIANTS = ("original", "collage", "thumbnail", "corner")


def validation_photos(datasets_dir: Path, synthetic: int, size: int) -> list[Image.Image]:
    """The real validation photos and the first ``synthetic`` synthetic ones, in each of ``VARIANTS``."""
    sets = default_sets(datasets_dir, "val")
    items = sets.get("real", []) + sets.get("synthetic", [])[:synthetic]
    partners = collage_partners(sets.get("real", []) + sets.get("synthetic", [])[:450])
    photos = []
    for variant in VARIANTS:
        for item, root in items:
            pool = [p for p in partners if p[0].sha256 != item.sha256]
            photos.append(decode_image(make_variant(variant, item, root, pool).data, draft_size=size).image)
    return photos


def best_scores(detector: Detector, photos: Sequence[Image.Image]) -> np.ndarray:
    """Per photo and brand, the network alone's best score (0 when it has no candidate)."""
    network = detector.network_only()
    rows = []
    for photo in photos:
        scores = network.predict(photo).brand_scores()
        rows.append([scores.get(brand, 0.0) for brand in network.classes])
    return np.asarray(rows)


def one_run_ms(detector: Detector, runs: int = 30) -> float:
    """Median milliseconds of one network call on a 416 px input."""
    tensor = np.random.default_rng(0).random((1, 3, detector.imgsz, detector.imgsz), dtype=np.float32)
    detector.raw(tensor)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        detector.raw(tensor)
        times.append(time.perf_counter() - started)
    return 1000 * float(np.median(times))


@exit_on_user_error
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("version", nargs="?", default=None, help="a version with a float network (default: champion)")
    parser.add_argument("--parts", nargs="+", required=True, help="comma-separated node-name prefixes kept in float")
    parser.add_argument("--synthetic", type=int, default=100, help="synthetic validation photos per variant")
    args = parser.parse_args()
    settings = get_settings()
    folder = Registry.from_settings(settings).resolve(args.version)
    card = json.loads((folder / "model_card.json").read_text())
    threshold = float(card.get("network_threshold", card["threshold"]))
    photos = validation_photos(settings.state_dir / "datasets", args.synthetic, int(card["imgsz"]))
    calibration = calibration_photos(default_data(settings.state_dir), CALIBRATION_PHOTOS)
    reference = Detector.from_version_dir(folder)
    expected = best_scores(reference, photos)
    print(f"{len(photos)} validation photos; the network alone's threshold {threshold}")
    print("| float parts | mean abs diff | p99 | max | photos changing side | one run |")
    print("| --- | --- | --- | --- | --- | --- |")
    print(f"| all (float) | 0 | 0 | 0 | 0 | {one_run_ms(reference):.1f} ms |")
    with tempfile.TemporaryDirectory(prefix="wmstudio-int8-parts-") as scratch:
        for index, parts in enumerate(args.parts):
            prefixes = [part for part in parts.split(",") if part]
            out = quantize_network(
                folder / "model.onnx", Path(scratch) / f"{index}.onnx", calibration, card["imgsz"], prefixes
            )
            detector = Detector(out, card["classes"], int(card["imgsz"]), threshold, card["version"], 2, card)
            got = best_scores(detector, photos)
            difference = np.abs(got - expected)
            flips = int(((got >= threshold) != (expected >= threshold)).any(axis=1).sum())
            print(
                f"| {' '.join(prefixes)} | {difference.mean():.4f} | {np.percentile(difference, 99):.3f} "
                f"| {difference.max():.3f} | {flips} | {one_run_ms(detector):.1f} ms |"
            )


if __name__ == "__main__":
    main()
