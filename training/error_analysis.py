"""Why a version misses marks: each missed box sorted into a cause, by brand and mark size.

AP and F1 say how often the detector is wrong, not why, and the fix depends on the why. A miss
found in the right place with the right brand but under the threshold calls for better
generalisation (the glyphs look unfamiliar); one called the wrong brand calls for telling the
brands apart; one not found at all calls for more small or faint marks in training. Hard
negatives that raise an alarm are listed with the brand they were mistaken for.

The causes are tabled by mark size and again by layout (one mark or tiled) and shape (stacked
logo, compact, wordmark, long wordmark), each row with the median score of its marks. Before
the causes it prints each brand's AP50 budget:
how much of the AP is lost to marks the network never proposes at all and how much to false
candidates ranked above true ones, and where those false candidates sit. The first calls for
more varied training marks, the second for harder negatives.

Run it on validation (the default): choosing what to change by looking at test errors would
turn the test set into a tuning set.

    python -m training.error_analysis v5 [--split val] [--show 10] [--sheet misses.png] [--cause "not found"]

``--sheet`` also draws the misses as a contact sheet (labelled box in yellow, the detector's
boxes above the threshold in brand colours): a look at the missed marks says more than their
count (it is how v9's misses of large marks in unfamiliar fonts were spotted).
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw

from training.evaluate import Example, brand_boxes, carries_other_mark, predict_items
from training.metrics import ap_from_matches, by_score, match_detections
from training.release import default_sets
from training.script_errors import exit_on_user_error
from wmstudio.data.manifest import Item
from wmstudio.imaging import decode_image
from wmstudio.registry import Registry
from wmstudio.runtime import Detector
from wmstudio.runtime.postprocess import iou
from wmstudio.runtime.render import draw_boxes
from wmstudio.settings import get_settings

MATCH_IOU = 0.5
SIZE_BUCKETS = ((0.05, "small (<5% of height)"), (0.09, "medium (5-9%)"), (float("inf"), "large (>=9%)"))
# Width over height: a stacked logo (icon above the word) is near square, a long wordmark
# ("99.co Indonesia", "rumah123.com") five times wider than high. v21 found none of the single
# stacked 99.co marks on validation while finding tiled ones: a miss the size table hid.
SHAPE_BUCKETS = (
    (1.6, "stacked (w/h<1.6)"),
    (3.0, "compact (1.6-3)"),
    (5.0, "wordmark (3-5)"),
    (float("inf"), "long (>=5)"),
)
CAUSES = ("found", "low score", "wrong brand", "not found")


@dataclass(frozen=True)
class BoxOutcome:
    """What became of one labelled box."""

    path: str
    brand: str
    size: str
    cause: str
    best_score: float  # the best same-place candidate's score (any brand), 0 if none
    box: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)  # the labelled box, in pixels
    shape: str = ""  # a SHAPE_BUCKETS name
    layout: str = "single"  # "tiled" when the photo holds more than one labelled box


def shape_bucket(box: Sequence[float]) -> str:
    ratio = (box[2] - box[0]) / max(box[3] - box[1], 1e-9)
    return next(name for limit, name in SHAPE_BUCKETS if ratio < limit)


def size_bucket(box_height: float, image_height: int) -> str:
    share = box_height / image_height
    return next(name for limit, name in SIZE_BUCKETS if share < limit)


def box_outcomes(examples: list[Example], threshold: float) -> list[BoxOutcome]:
    """Sort every labelled box by what the detector made of it at ``threshold``."""
    outcomes = []
    for example in examples:
        item, candidates = example.item, example.prediction.candidates
        for truth in item.boxes:
            same_place = [d for d in candidates if iou(d.box, tuple(truth.box)) >= MATCH_IOU]
            right = [d for d in same_place if d.brand == truth.brand]
            best_right = max((d.score for d in right), default=0.0)
            best_any = max(same_place, key=lambda d: d.score, default=None)
            if best_right >= threshold:
                cause = "found"
            elif best_any is not None and best_any.brand != truth.brand and best_any.score >= threshold:
                cause = "wrong brand"
            elif best_right > 0:
                cause = "low score"
            else:
                cause = "not found"
            outcomes.append(
                BoxOutcome(
                    item.path,
                    truth.brand,
                    size_bucket(truth.box[3] - truth.box[1], item.height),
                    cause,
                    round(best_any.score if best_any else 0.0, 3),
                    tuple(truth.box),
                    shape_bucket(truth.box),
                    "tiled" if len(item.boxes) > 1 else "single",
                )
            )
    return outcomes


def false_alarms(examples: list[Example], threshold: float) -> list[tuple[str, str, float]]:
    """(path, brand, score) of the top alarm on every photo with no brand mark."""
    alarms = []
    for example in examples:
        if example.item.boxes or example.item.brand:
            continue
        above = example.prediction.above(threshold)
        if above:
            top = max(above, key=lambda d: d.score)
            alarms.append((example.item.path, top.brand, round(top.score, 3)))
    return alarms


def _group(outcome: BoxOutcome, by: Literal["size", "shape"]) -> str:
    return outcome.size if by == "size" else f"{outcome.layout} {outcome.shape}"


def median_scores(outcomes: list[BoxOutcome], by: Literal["size", "shape"] = "size") -> dict[tuple[str, str], float]:
    """Median best same-place score per (brand, group), whatever the threshold.

    Two versions have two thresholds, so "found" counts compare them only in part; the median
    score says whether a kind of mark scores higher at all (how the hard-negative ablation for
    long wordmarks is read).
    """
    scores: dict[tuple[str, str], list[float]] = {}
    for outcome in outcomes:
        scores.setdefault((outcome.brand, _group(outcome, by)), []).append(outcome.best_score)
    return {key: float(np.median(values)) for key, values in scores.items()}


def cause_table(
    outcomes: list[BoxOutcome], by: Literal["size", "shape"] = "size"
) -> list[tuple[str, str, int, dict[str, int]]]:
    """Rows of (brand, group, boxes, count per cause); groups are mark sizes or, with
    ``by="shape"``, layout (single or tiled) and shape."""
    groups: dict[tuple[str, str], Counter] = {}
    for outcome in outcomes:
        groups.setdefault((outcome.brand, _group(outcome, by)), Counter())[outcome.cause] += 1
    names = (
        [name for _, name in SIZE_BUCKETS]
        if by == "size"
        else [f"{layout} {name}" for layout in ("single", "tiled") for _, name in SHAPE_BUCKETS]
    )
    order = {name: index for index, name in enumerate(names)}
    return [
        (brand, group, sum(counts.values()), {cause: counts.get(cause, 0) for cause in CAUSES})
        for (brand, group), counts in sorted(groups.items(), key=lambda kv: (kv[0][0], order[kv[0][1]]))
    ]


FALSE_CANDIDATE_KINDS = (
    "near a mark of the brand",
    "on the other brand's mark",
    "photo with another agency's mark",
    "elsewhere",
)
NEAR_IOU = 0.1  # a false candidate overlapping a truth this much is a misplaced or duplicate box, not a hallucination


@dataclass(frozen=True)
class APBudget:
    """Where one brand's box AP50 goes: boxes never proposed, and false candidates ranked above hits.

    ``ceiling`` is the share of boxes that some candidate (above the runtime's floor) hits at IoU
    0.5, i.e. all but ``never_proposed``: the AP50 if no false candidate outranked a hit.
    ``1 - ceiling`` is lost to marks the network never proposes (more, or more varied, training
    marks); ``ceiling - ap50`` to false candidates ranked above true ones (harder negatives,
    better scores). Both numbers together say which of the two to work on.
    """

    brand: str
    boxes: int
    never_proposed: int
    ap50: float
    false_candidates: dict[str, int]  # unmatched candidates scored >= the floor given, by where they sit

    @property
    def ceiling(self) -> float:
        return 1 - self.never_proposed / self.boxes if self.boxes else float("nan")


def ap_budget(examples: Sequence[Example], brand: str, score_floor: float = 0.1) -> APBudget:
    """The :class:`APBudget` of ``brand``, with false candidates counted from ``score_floor`` up."""
    truths, detections = brand_boxes(examples, brand)
    _, scores, hits = match_detections(detections, truths, MATCH_IOU)
    total = sum(len(t) for t in truths.values())
    kinds: Counter = Counter()
    for detection, hit in zip(by_score(detections), hits, strict=True):
        if hit or detection.score < score_floor:
            continue
        item = examples[detection.image].item
        if any(iou(detection.box, tuple(b.box)) >= NEAR_IOU for b in item.boxes if b.brand == brand):
            kinds[FALSE_CANDIDATE_KINDS[0]] += 1
        elif any(iou(detection.box, tuple(b.box)) >= NEAR_IOU for b in item.boxes):
            kinds[FALSE_CANDIDATE_KINDS[1]] += 1
        elif carries_other_mark(item):
            kinds[FALSE_CANDIDATE_KINDS[2]] += 1
        else:
            kinds[FALSE_CANDIDATE_KINDS[3]] += 1
    return APBudget(
        brand,
        total,
        total - int(hits.sum()),
        ap_from_matches(scores, hits, total),
        {kind: kinds.get(kind, 0) for kind in FALSE_CANDIDATE_KINDS},
    )


def print_ap_budget(examples: Sequence[Example], brands: Sequence[str], score_floor: float = 0.1) -> None:
    for brand in brands:
        budget = ap_budget(examples, brand, score_floor)
        if not budget.boxes:
            continue
        print(
            f"{brand:>9} AP50 {budget.ap50:.3f}: {1 - budget.ceiling:.3f} lost to {budget.never_proposed} "
            f"of {budget.boxes} "
            f"boxes never proposed, {budget.ceiling - budget.ap50:.3f} to false candidates ranked above hits"
        )
        listed = ", ".join(f"{n} {kind}" for kind, n in budget.false_candidates.items())
        print(f"{'':>9} false candidates scored >= {score_floor:.2f}: {listed}")


SHEET_TILE = 360
SHEET_COLUMNS = 4
TRUTH_COLOUR = (255, 230, 0)


def miss_sheet(
    outcomes: Sequence[BoxOutcome],
    examples: Sequence[Example],
    items: Sequence[tuple[Item, Path]],
    threshold: float,
    path: Path,
    limit: int = 24,
) -> Path | None:
    """A PNG grid of up to ``limit`` missed boxes, highest best score first; None if none missed."""
    misses = sorted((o for o in outcomes if o.cause != "found"), key=lambda o: -o.best_score)[:limit]
    if not misses:
        return None
    roots = {item.path: root for item, root in items}
    predictions = {example.item.path: example.prediction for example in examples}
    drawn: dict[str, Image.Image] = {}  # a tiled photo misses many boxes: decode and draw it once
    rows = -(-len(misses) // SHEET_COLUMNS)
    sheet = Image.new("RGB", (SHEET_COLUMNS * SHEET_TILE, rows * SHEET_TILE), (24, 24, 24))
    for index, miss in enumerate(misses):
        if miss.path not in drawn:
            photo = decode_image(roots[miss.path] / miss.path).image
            drawn[miss.path] = draw_boxes(photo, list(predictions[miss.path].above(threshold)))
        tile = drawn[miss.path].copy()
        draw = ImageDraw.Draw(tile)
        draw.rectangle(miss.box, outline=TRUTH_COLOUR, width=max(2, round(min(tile.size) / 200)))
        tile.thumbnail((SHEET_TILE, SHEET_TILE - 18))
        caption = f"{Path(miss.path).name}: {miss.brand} {miss.cause} ({miss.best_score:.2f})"
        x, y = (index % SHEET_COLUMNS) * SHEET_TILE, (index // SHEET_COLUMNS) * SHEET_TILE
        sheet.paste(tile, (x, y + 18))
        ImageDraw.Draw(sheet).text((x + 4, y + 3), caption, fill=(255, 255, 255))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path


@exit_on_user_error
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("version")
    parser.add_argument("--split", default="val", choices=("val", "test"))
    parser.add_argument("--show", type=int, default=10, help="list this many misses and false alarms")
    parser.add_argument("--sheet", type=Path, help="also draw the misses as a PNG contact sheet (one per set)")
    parser.add_argument(
        "--cause",
        choices=CAUSES[1:],
        help="list and draw only misses of this cause (the sheet shows the 24 best-scored; "
        "'not found' shows the marks the network never proposed)",
    )
    args = parser.parse_args()
    settings = get_settings()
    registry = Registry.from_settings(settings)
    detector = Detector.from_version_dir(registry.path(args.version))
    sets = default_sets(settings.state_dir / "datasets", args.split)
    threshold = detector.threshold
    print(f"{args.version} on {args.split}, threshold {threshold:.2f}")
    for name, items in sets.items():
        examples = predict_items(detector, items, f"{args.split} {name}")
        outcomes = box_outcomes(examples, threshold)
        alarms = false_alarms(examples, threshold)
        print(f"\n{name}: {len(outcomes)} labelled boxes")
        print_ap_budget(examples, detector.classes)
        for by in ("size", "shape"):
            medians = median_scores(outcomes, by)
            header = " ".join(f"{c:>12}" for c in (*CAUSES, "median score"))
            print(f"{'brand':>9} {by:>26} {'boxes':>6} {header}")
            for brand, group, total, counts in cause_table(outcomes, by):
                cells = " ".join(f"{counts[c]:>12}" for c in CAUSES)
                print(f"{brand:>9} {group:>26} {total:>6} {cells} {medians[brand, group]:>12.2f}")
        negatives = sum(1 for e in examples if not e.item.boxes and not e.item.brand)
        print(f"false alarms on photos without a brand mark: {len(alarms)}/{negatives}")
        misses = [o for o in outcomes if o.cause != "found" and args.cause in (None, o.cause)]
        for outcome in sorted(misses, key=lambda o: -o.best_score)[: args.show]:
            where = f"{outcome.brand} {outcome.size}, {outcome.layout} {outcome.shape}"
            print(f"  miss  {Path(outcome.path).name}: {where}, {outcome.cause} ({outcome.best_score})")
        for path, brand, score in sorted(alarms, key=lambda a: -a[2])[: args.show]:
            print(f"  alarm {Path(path).name}: {brand} {score}")
        if args.sheet is not None:
            out = args.sheet.with_name(f"{args.sheet.stem}-{name}{args.sheet.suffix or '.png'}")
            if miss_sheet(misses, examples, items, threshold, out) is not None:
                print(f"misses drawn: {out}")


if __name__ == "__main__":
    main()
