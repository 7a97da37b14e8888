"""Does spotting the brand's name in PP-OCR's frame probabilities find marks that greedy reading misses?

Issue #30. Of the validation photos v36 misses, the largest group (180 Rumah123 and 70 99.co of
about 3,000 synthetic positives; 6 of the 7 real misses) had the mark among the candidates read,
but greedy decoding said something else ("Qrumai2", "123", "90.ce"). Two ways to read better,
measured here on validation pooled over the variants, each at its own threshold by the 2 % rule:

- keyword spotting: :func:`wmstudio.runtime.text_reading.brand_spotting` aligns the brand's
  name to the recogniser's frames (free; the same single read);
- a second look: the crop high-passed (the photo behind a semi-transparent mark removed as far
  as a blur can) and read again (a second read, about 25 ms, only for crops the first read did
  not match).

    python -m experiments.keyword_spotting [VERSION] [--floor 0.02] [--top 5] [--second-look]
        [--margin-x 0.1] [--margin-y 0.25] [--cache FILE]
"""

from __future__ import annotations

import argparse
import pickle
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

from PIL import Image, ImageChops, ImageFilter

from experiments.ocr_rescoring import figures, read_candidates
from training.evaluate import Example, image_f1_at
from training.release import default_sets
from training.robustness import VARIANTS
from wmstudio.registry import Registry
from wmstudio.runtime import Detector, Prediction
from wmstudio.runtime.text_reading import (
    BRAND_KEYWORDS,
    MARGIN_X,
    MARGIN_Y,
    TextReader,
    TextRescoring,
    brand_similarity,
    brand_spotting,
)
from wmstudio.settings import get_settings


def high_passed(crop: Image.Image) -> Image.Image:
    """The crop minus a blur of itself: what stays is the mark's edges and strokes."""
    grey = crop.convert("L")
    blurred = grey.filter(ImageFilter.GaussianBlur(radius=max(2.0, crop.height / 4)))
    return ImageChops.subtract(grey, blurred, scale=1.0, offset=128)


def spotting_reading(reader: TextReader, crop: Image.Image, brand: str, second_look: bool = False) -> dict:
    """Greedy text and keyword scores (the candidate's brand and every brand) of the crop, and
    with ``second_look`` the same of the crop high-passed."""
    result = {}
    for suffix, image in (("", crop), ("_hp", high_passed(crop)))[: 2 if second_look else 1]:
        probabilities = reader.probabilities(image)
        text, confidence = reader.decode(probabilities)
        spots = {name: brand_spotting(probabilities, reader.alphabet, name) for name in BRAND_KEYWORDS}
        result |= {f"text{suffix}": text, f"conf{suffix}": confidence, f"spot{suffix}": spots[brand]}
        result[f"spots{suffix}"] = spots
    return result


@dataclass(frozen=True)
class Rule:
    """How a read candidate counts as its brand (``sim``: greedy text's windowed similarity at least
    0.75; ``spot``: keyword score at least ``spot``; ``either``) and when other text damps it.

    ``floor`` and ``top`` say which candidates are read (the cache must hold at least as many);
    with ``cross_brand`` a candidate whose text spots the *other* brand takes that brand's label
    and the boost (the network knew it was a mark, not whose).
    """

    brand_by: str = "sim"
    spot: float = 0.5
    second_look: bool = False
    boost: float = 0.5
    damp: float = 0.3
    min_confidence: float = 0.8
    floor: float = 0.15
    top: int = 3
    cross_brand: bool = False
    unspotted: float | None = None  # text spotting no brand above this is damped at any confidence
    faint_spot: float | None = None  # the candidate's own brand spotted from this (under ``spot``) ...
    faint_boost: float = 0.3  # ... lifts it by this instead of any damping

    @classmethod
    def of(cls, rescoring: TextRescoring) -> Rule:
        """The rule equal to a card's rescoring (spotting only, as from v37 on)."""
        return cls(
            "spot",
            rescoring.spot,
            boost=rescoring.boost,
            damp=rescoring.damp,
            min_confidence=rescoring.min_confidence,
            floor=rescoring.floor,
            top=rescoring.top,
            cross_brand=rescoring.cross_brand,
            unspotted=rescoring.unspotted,
            faint_spot=rescoring.faint_spot,
            faint_boost=rescoring.faint_boost,
        )

    def says(self, read: dict, brand: str) -> bool:
        for suffix in ("", "_hp") if self.second_look else ("",):
            by_text = brand_similarity(read[f"text{suffix}"], brand) >= 0.75
            by_spot = read[f"spots{suffix}"][brand] >= self.spot
            if {"sim": by_text, "spot": by_spot, "either": by_text or by_spot}[self.brand_by]:
                return True
        return False

    def brand_read(self, read: dict, brand: str) -> str | None:
        """The brand the candidate's text says: its own first, another only with ``cross_brand``."""
        if self.says(read, brand):
            return brand
        if self.cross_brand:
            return next((other for other in read["spots"] if other != brand and self.says(read, other)), None)
        return None


def reading_version(version: str | None) -> tuple[Detector, Rule]:
    """The version (default: the champion) and the rule equal to its reading; a version that reads
    nothing ends the script with a message (the experiments that score readings share this)."""
    detector = Detector.from_version_dir(Registry.from_settings(get_settings()).resolve(version))
    if detector.text_rescoring is None:
        raise SystemExit(f"{detector.version} has no text rescoring to score with")
    return detector, Rule.of(detector.text_rescoring)


def rescored(row: dict, rule: Rule) -> Example:
    """The row's prediction with its best ``rule.top`` candidates from ``rule.floor`` rescored."""
    by_box = {tuple(r["box"]): r for r in row["reads"][: rule.top]}
    candidates = []
    for candidate in row["prediction"].candidates:
        read, score = by_box.get(tuple(candidate.box)), candidate.score
        if read is not None and score >= rule.floor:
            brand = rule.brand_read(read, candidate.brand)
            if brand is not None:
                candidate = replace(candidate, brand=brand)
                score = 1 - (1 - score) * (1 - rule.boost)
            elif rule.faint_spot is not None and read["spots"][candidate.brand] >= rule.faint_spot:
                score = 1 - (1 - score) * (1 - rule.faint_boost)
            elif len(read["text"].strip()) >= 3 and (
                read["conf"] >= rule.min_confidence
                or (rule.unspotted is not None and max(read["spots"].values()) < rule.unspotted)
            ):
                score = score * (1 - rule.damp)
        candidates.append(replace(candidate, score=score))
    prediction = row["prediction"]
    return Example(row["item"], Prediction(prediction.width, prediction.height, tuple(candidates)))


GRID = [
    Rule(),  # v36
    Rule(second_look=True),
    *(Rule("either", spot) for spot in (0.3, 0.4, 0.5)),
    *(
        Rule("spot", spot, boost=boost, damp=damp, min_confidence=confidence)
        for spot in (0.2, 0.3, 0.4, 0.5, 0.6)
        for boost in (0.5, 0.8)
        for damp in (0.3, 0.5)
        for confidence in (0.5, 0.65, 0.8)
    ),
    # 6 December, later: which candidates are read, and a read that names the other brand
    *(
        Rule("spot", spot, boost=boost, floor=floor, top=top, cross_brand=cross)
        for spot in (0.2, 0.3)
        for boost in (0.5, 0.8)
        for floor in (0.02, 0.05, 0.1, 0.15)
        for top in (2, 3, 5)
        for cross in (False, True)
    ),
    # 6 December, night: text that spells no brand damped at any confidence (v38's reading otherwise)
    *(
        Rule("spot", 0.3, boost=0.8, damp=damp, floor=0.05, top=3, cross_brand=True, unspotted=unspotted)
        for unspotted in (0.01, 0.02, 0.03, 0.05, 0.1)
        for damp in (0.2, 0.3, 0.4)
    ),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("version", nargs="?", default=None)
    parser.add_argument("--floor", type=float, default=0.02, help="candidates read from this score")
    parser.add_argument("--top", type=int, default=5, help="at most this many candidates read per photo")
    parser.add_argument("--second-look", action="store_true", help="also read each crop high-passed")
    parser.add_argument("--margin-x", type=float, default=MARGIN_X, help="reading crop margin, share of the box width")
    parser.add_argument("--margin-y", type=float, default=MARGIN_Y, help="reading crop margin, share of the box height")
    parser.add_argument("--cache", type=Path, default=None, help="keep the reads here and reuse them")
    args = parser.parse_args()
    settings = get_settings()
    detector = Detector.from_version_dir(Registry.from_settings(settings).resolve(args.version)).network_only()
    if args.cache and args.cache.exists():
        rows = pickle.loads(args.cache.read_bytes())
    else:
        sets = default_sets(settings.datasets_dir, "val")
        reading = partial(spotting_reading, second_look=args.second_look)
        margins = (args.margin_x, args.margin_y)
        rows = read_candidates(detector, TextReader(), sets, list(VARIANTS), args.floor, reading, args.top, margins)
        if args.cache:
            args.cache.write_bytes(pickle.dumps(rows))
    brands = tuple(detector.classes)
    print(f"{detector.version}, validation, {len(rows)} variant photos")
    print("rule | threshold  pooled F1  real F1  other-agency FP")
    second_look = "text_hp" in next((read for r in rows for read in r["reads"]), {})
    for rule in GRID:
        if rule.second_look and not second_look:
            continue
        examples = [rescored(r, rule) for r in rows]
        threshold, f1, fp = figures(examples, brands)
        real = [e for e, r in zip(examples, rows, strict=True) if r["set"] == "real"]
        print(f"{rule} | {threshold:.2f}  {f1:.3f}  {image_f1_at(real, brands, threshold):.3f}  {fp:.3f}")


if __name__ == "__main__":
    main()
