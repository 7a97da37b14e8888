"""Where are the seams of a composed photo, and does a look at each panel find the marks in it?

Issue #30. Collages were the worst variant on validation (v49: F1 0.825 Rumah123, 0.780 99.co).
:class:`wmstudio.runtime.panel_view.PanelView` splits a photo at flat bands and at straight seams
that most rows agree on. Two questions, both on validation only:

1. ``--seams``: how strong is a true seam (the two cuts of each 2×2 collage, the weaker of the
   two) against the strongest boundary inside a plain photo (as published, re-compressed,
   cropped) and inside a collage's cell? The rates at each candidate ``seam`` threshold are the
   evidence for the card's value.
2. ``--spot N``: on the first N synthetic validation photos of each variant, the marks found, missed
   and the false boxes at the version's threshold, with and without the panel view.

    python -m experiments.panel_view [VERSION] [--seams] [--photos 300]
    python -m experiments.panel_view [VERSION] --spot 120 [--panel 0.55,0.2,1.0[,0.05[,0[,1.3]]]]
        [--variants collage,border,crop] [--onnx dynamic.onnx]

A panel size other than the version's training size needs its network with dynamic height and
width: ``--onnx`` runs the version's card on another export of the same network.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from training.release import default_sets
from training.robustness import collage_partners, make_variant, predict_variant
from training.script_errors import exit_on_user_error
from wmstudio.imaging import decode_image
from wmstudio.registry import Registry
from wmstudio.runtime import Detector
from wmstudio.runtime.panel_view import Layout, PanelView, analysis_copy
from wmstudio.runtime.postprocess import iou
from wmstudio.settings import get_settings

THRESHOLDS = (0.45, 0.5, 0.55, 0.6, 0.65, 0.7)


def strongest_boundary(layout: Layout, box: tuple[int, int, int, int], share: float = 0.2) -> float:
    """The best seam score of ``box`` away from its edges (as the split looks for one)."""
    best = 0.0
    for axis in (1, 0):
        scores = layout.seam_scores(box, axis)
        low, high = round(share * len(scores)), round((1 - share) * len(scores))
        best = max(best, float(scores[low:high].max()))
    return best


def seam_statistics(items: Sequence, partners: Sequence) -> dict[str, list[float]]:
    """Seam scores of true collage cuts, of plain photos and of collage cells."""
    found: dict[str, list[float]] = {"true seam (weaker cut)": [], "plain photo": [], "inside a cell": []}
    for item, root in items:
        pool = [p for p in partners if p[0].sha256 != item.sha256]
        for variant in ("original", "jpeg", "crop"):
            pixels, _ = analysis_copy(decode_image(make_variant(variant, item, root, pool).data).image)
            found["plain photo"].append(strongest_boundary(Layout(pixels), (0, 0, pixels.shape[1], pixels.shape[0])))
        pixels, _ = analysis_copy(decode_image(make_variant("collage", item, root, pool).data).image)
        layout, (height, width) = Layout(pixels), pixels.shape[:2]
        columns, rows = layout.seam_scores((0, 0, width, height), 1), layout.seam_scores((0, 0, width, height), 0)
        found["true seam (weaker cut)"].append(
            min(columns[width // 2 - 2 : width // 2 + 3].max(), rows[height // 2 - 2 : height // 2 + 3].max())
        )
        for cell in ((0, 0, width // 2 - 1, height // 2 - 1), (width // 2 + 1, height // 2 + 1, width, height)):
            found["inside a cell"].append(strongest_boundary(layout, cell))
    return found


def print_seams(found: dict[str, list[float]]) -> None:
    for name, scores in found.items():
        percentiles = np.round(np.percentile(scores, [1, 5, 10, 50, 90, 95, 99]), 2)
        print(f"{name}: {len(scores)} photos, percentiles 1/5/10/50/90/95/99 {percentiles.tolist()}")
    true, plain, cell = (np.asarray(found[name]) for name in found)
    print("| seam | true seams missed | plain photos cut | cells cut again |")
    print("| --- | --- | --- | --- |")
    for threshold in THRESHOLDS:
        print(
            f"| {threshold} | {np.mean(true < threshold):.3f} | {np.mean(plain >= threshold):.3f} "
            f"| {np.mean(cell >= threshold):.3f} |"
        )


def marks_found(above: Sequence, truth: Sequence) -> list[bool]:
    """Whether each true box is found: a reported box of its brand overlapping it at IoU 0.5."""
    return [any(d.brand == b.brand and iou(d.box, b.box) >= 0.5 for d in above) for b in truth]


def spot_check(detector: Detector, items: Sequence, partners: Sequence, variants: Sequence[str]) -> None:
    """Marks found and missed, and false boxes, at the version's threshold, per variant."""
    print("| variant | detector | marks found | missed | false boxes | seconds |")
    print("| --- | --- | --- | --- | --- | --- |")
    plain = copy.copy(detector)
    plain.panel_view = None
    for variant in variants:
        for name, candidate in (("without panels", plain), ("with panels", detector)):
            found = missed = false = 0
            started = time.perf_counter()
            for item, root in items:
                pool = [p for p in partners if p[0].sha256 != item.sha256]
                photo = make_variant(variant, item, root, pool)
                above = predict_variant(candidate, photo).prediction.above(candidate.threshold)
                truth = photo.item.boxes
                hits = marks_found(above, truth)
                found, missed = found + sum(hits), missed + len(hits) - sum(hits)
                false += sum(not any(d.brand == b.brand and iou(d.box, b.box) >= 0.5 for b in truth) for d in above)
            seconds = time.perf_counter() - started
            print(f"| {variant} | {name} | {found} | {missed} | {false} | {seconds:.1f} |")


@exit_on_user_error
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("version", nargs="?", default=None)
    parser.add_argument("--seams", action="store_true", help="seam scores of true cuts against plain photos")
    parser.add_argument("--photos", type=int, default=300, help="synthetic validation photos for --seams")
    parser.add_argument("--spot", type=int, default=0, help="photos per variant for the with/without check")
    parser.add_argument(
        "--panel", default="0.55,0.2,1.0", help="SEAM,MIN_SHARE,BELOW[,LOWEST[,SIZE[,GAIN]]] of the panel view tried"
    )
    parser.add_argument("--onnx", type=Path, default=None, help="another export of the version's network")
    parser.add_argument("--variants", default="collage,border,crop")
    args = parser.parse_args()
    try:
        numbers = [float(value) for value in args.panel.split(",")]
        if not 3 <= len(numbers) <= 6:
            raise ValueError(f"three to six numbers, got {len(numbers)}")
        view = PanelView(*numbers)
    except ValueError as exc:
        parser.error(f"--panel takes SEAM,MIN_SHARE,BELOW[,LOWEST[,SIZE[,GAIN]]]: {exc}")
    settings = get_settings()
    folder = Registry.from_settings(settings).resolve(args.version)
    card = json.loads((folder / "model_card.json").read_text()) | {"panel_view": view.to_card()}
    detector = Detector.from_card(args.onnx or folder / "model.onnx", card)
    sets = default_sets(settings.state_dir / "datasets", "val")
    items = sets.get("synthetic", [])
    partners = collage_partners(sets.get("real", []) + items[:450])
    if args.seams or not args.spot:
        print_seams(seam_statistics(sets.get("real", []) + items[: args.photos], partners))
    if args.spot:
        spot_check(detector, items[: args.spot], partners, args.variants.split(","))


if __name__ == "__main__":
    main()
