"""When a candidate's text spells only part of the brand's name, does a wider second read find it whole?

Issue #30. Of the validation candidates v37 read but did not spot, many spelled half the name
("ah123", "123", "99.") from a box covering part of the mark, as on crops and corners. A wider
reading crop for every candidate takes in other text and cost real F1 (docs/experiments.md,
reading margins). Here the wider read is a second look, taken only when the first read spots
part of a brand's name, and it can only lift: the candidate is boosted (and relabelled, as
with ``cross_brand``) when the wide crop spots a whole name, and otherwise keeps the first
read's outcome. Each (trigger, width) is scored on validation pooled over the variants, at its
own threshold by the 2 % rule, from a cache of the first reads
(``python -m experiments.edge_margin VERSION --margins 0 --cache-dir DIR``):

    python -m experiments.partial_reread [VERSION] --cache DIR/margin_0.00.pkl [--unspotted 0.02] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import pickle
import statistics
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from tqdm import tqdm

from experiments.keyword_spotting import Rule, reading_version, rescored
from experiments.ocr_rescoring import figures
from training.evaluate import Example, image_f1_at
from training.release import default_sets
from training.robustness import collage_partners, make_variant
from training.script_errors import exit_on_user_error
from wmstudio.imaging import decode_image
from wmstudio.runtime import Prediction
from wmstudio.runtime.text_reading import (
    BRAND_KEYWORDS,
    MARGIN_Y,
    TextReader,
    brand_spotting,
    part_spotting,
    reading_crop,
)
from wmstudio.settings import get_settings

WIDTHS = (0.5, 1.0, 1.5)  # the wide crop's margin on each side, a share of the box's width
TRIGGERS = (None, 0.3, 0.5, 0.7)  # None: every unspotted candidate is read again


def second_reads(rows: list[dict], rule: Rule, reader: TextReader, decode_size: int) -> list[dict]:
    """For every read candidate the rule does not spot: its part spots and the wide crops' spots."""
    settings = get_settings()
    sets = default_sets(settings.datasets_dir, "val")
    sources = {(name, item.sha256): (item, root) for name, items in sets.items() for item, root in items}
    partners = {name: collage_partners(items) for name, items in sets.items()}
    todo = [r for r in rows if any(rule.brand_read(read, read["brand"]) is None for read in r["reads"][: rule.top])]
    for row in tqdm(todo, desc="second reads", unit="img"):
        item, root = sources[(row["set"], row["item"].sha256)]
        pool = [p for p in partners[row["set"]] if p[0].sha256 != item.sha256]
        photo = make_variant(row["variant"], item, root, pool)
        decoded = decode_image(photo.data, draft_size=decode_size)
        sx, sy = decoded.scale
        start = time.perf_counter()
        for read in row["reads"][: rule.top]:
            if rule.brand_read(read, read["brand"]) is not None:
                continue
            box = (read["box"][0] / sx, read["box"][1] / sy, read["box"][2] / sx, read["box"][3] / sy)
            probabilities = reader.probabilities(reading_crop(decoded.image, box))
            read["part"] = part_spotting(probabilities, reader.alphabet)
            read["wide"] = {}
            for width in WIDTHS:
                wide = reader.probabilities(reading_crop(decoded.image, box, width, MARGIN_Y))
                read["wide"][width] = {brand: brand_spotting(wide, reader.alphabet, brand) for brand in BRAND_KEYWORDS}
        row["second_ms"] = (time.perf_counter() - start) * 1000
    return rows


def cached_second_reads(
    first_cache: Path, first_rows: Callable[[], list[dict]], rule: Rule, decode_size: int
) -> list[dict]:
    """The first reads with their wider second reads, kept beside ``first_cache`` as ``*_second.pkl``
    (``first_rows`` is only called when that file is missing)."""
    second_cache = first_cache.with_name(first_cache.stem + "_second.pkl")
    if second_cache.exists():
        return pickle.loads(second_cache.read_bytes())
    rows = second_reads(first_rows(), rule, TextReader(), decode_size)
    second_cache.write_bytes(pickle.dumps(rows))
    return rows


def with_second_look(row: dict, rule: Rule, trigger: float | None, width: float) -> tuple[Example, int]:
    """The row rescored by ``rule``, plus a boost for candidates whose wide read spots a name;
    and how many wide reads the trigger would have taken."""
    example = rescored(row, rule)
    network_score = {tuple(d.box): d.score for d in row["prediction"].candidates}
    lifted, wide_reads = {}, 0
    for read in row["reads"][: rule.top]:
        if "wide" not in read or (trigger is not None and read["part"] < trigger):
            continue
        wide_reads += 1
        spotted = {brand: score for brand, score in read["wide"][width].items() if score >= rule.spot}
        if spotted:
            lifted[tuple(read["box"])] = read["brand"] if read["brand"] in spotted else max(spotted, key=spotted.get)
    candidates = tuple(
        replace(d, brand=lifted[tuple(d.box)], score=1 - (1 - network_score[tuple(d.box)]) * (1 - rule.boost))
        if tuple(d.box) in lifted and network_score[tuple(d.box)] >= rule.floor
        else d
        for d in example.prediction.candidates
    )
    prediction = example.prediction
    return Example(example.item, Prediction(prediction.width, prediction.height, candidates)), wide_reads


@exit_on_user_error
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("version", nargs="?", default=None)
    parser.add_argument("--cache", type=Path, required=True, help="first reads (experiments.edge_margin's cache)")
    parser.add_argument("--out", type=Path, default=None, help="write the grid as JSON here")
    parser.add_argument("--unspotted", type=float, default=None, help="score with this `unspotted` bar as well")
    args = parser.parse_args()
    detector, rule = reading_version(args.version)
    brands = tuple(detector.classes)
    if args.unspotted is not None:
        rule = replace(rule, unspotted=args.unspotted)
    rows = cached_second_reads(args.cache, lambda: pickle.loads(args.cache.read_bytes()), rule, detector.decode_size)
    real_rows = [r for r in rows if r["set"] == "real"]
    print(f"{detector.version}, validation, {len(rows)} variant photos; reading {rule}")
    times = [r["second_ms"] for r in rows if "second_ms" in r]
    print(f"second-look time on the photos that need one (all widths): median {statistics.median(times):.1f} ms")
    grid = []
    for trigger in TRIGGERS:
        for width in WIDTHS:
            pairs = [with_second_look(r, rule, trigger, width) for r in rows]
            examples = [e for e, _ in pairs]
            threshold, f1, fp = figures(examples, brands)
            real = [e for e, r in zip(examples, rows, strict=True) if r["set"] == "real"]
            real_reads = sum(n for (_, n), r in zip(pairs, rows, strict=True) if r["set"] == "real") / len(real_rows)
            entry = {
                "trigger": trigger,
                "width": width,
                "threshold": threshold,
                "f1": f1,
                "real_f1": image_f1_at(real, brands, threshold),
                "other_fp": fp,
                "wide_reads_per_real_photo": real_reads,
            }
            grid.append(entry)
            print(json.dumps(entry), flush=True)
    if args.out:
        args.out.write_text(json.dumps(grid, indent=1))


if __name__ == "__main__":
    main()
