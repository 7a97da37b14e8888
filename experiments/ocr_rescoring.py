"""Does reading the candidate's text (PP-OCR in rapidocr-onnxruntime) separate brand marks from other wordmarks?

Issue #30 lever: the detector's candidates are cropped and read by PP-OCR's recogniser (shipped
inside the ``rapidocr-onnxruntime`` wheel, Apache-2.0, no download). A candidate whose text looks
like its brand's name is boosted, one whose confident text looks like something else is damped,
and the operating threshold is then chosen as the release does (the lowest with pooled
other-agency alarms at most 2 %). Validation only, pooled over the robustness variants.

    python -m experiments.ocr_rescoring [VERSION] [--variants original,crop,...] [--floor 0.15]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from training.evaluate import Example, image_f1_at
from training.release import default_sets
from training.robustness import VARIANTS, collage_partners, make_variant
from training.robustness_eval import operating_threshold
from wmstudio.imaging import decode_image
from wmstudio.registry import Registry
from wmstudio.runtime import Detection, Detector, Prediction
from wmstudio.runtime.text_reading import MARGIN_X, MARGIN_Y, TextReader, TextRescoring, reading_crop
from wmstudio.settings import get_settings

TOP_CANDIDATES = 3


def greedy_reading(reader: TextReader, crop: Image.Image, brand: str) -> dict:
    text, confidence = reader.read(crop)
    return {"text": text, "conf": confidence}


def read_candidates(
    detector: Detector,
    reader: TextReader,
    sets: dict,
    variants: list[str],
    floor: float,
    reading: Callable[[TextReader, Image.Image, str], dict] = greedy_reading,
    top: int = TOP_CANDIDATES,
    margins: tuple[float, float] = (MARGIN_X, MARGIN_Y),
) -> list[dict]:
    """Per variant photo: the item, its candidates and what ``reading`` made of the best ``top``."""
    rows = []
    total = sum(len(items) for items in sets.values()) * len(variants)
    with tqdm(total=total, desc="detect + read", unit="img") as bar:
        for set_name, items in sets.items():
            partners = collage_partners(items)
            for variant in variants:
                for item, root in items:
                    pool = [p for p in partners if p[0].sha256 != item.sha256]
                    photo = make_variant(variant, item, root, pool)
                    decoded = decode_image(photo.data, draft_size=detector.decode_size)
                    start = time.perf_counter()
                    prediction = detector.predict(decoded.image)
                    network_ms = (time.perf_counter() - start) * 1000
                    sx, sy = decoded.scale
                    candidates = [
                        Detection(d.brand, d.score, (d.box[0] * sx, d.box[1] * sy, d.box[2] * sx, d.box[3] * sy))
                        for d in prediction.candidates
                    ]
                    reads, start = [], time.perf_counter()
                    for candidate in prediction.candidates[:top]:  # best first, draft pixels
                        if candidate.score < floor:
                            break
                        crop = reading_crop(decoded.image, candidate.box, *margins)
                        read = reading(reader, crop, candidate.brand)
                        box = (
                            candidate.box[0] * sx,
                            candidate.box[1] * sy,
                            candidate.box[2] * sx,
                            candidate.box[3] * sy,
                        )
                        reads.append({"box": box, "brand": candidate.brand, **read})
                    ocr_ms = (time.perf_counter() - start) * 1000
                    rows.append(
                        {
                            "set": set_name,
                            "variant": variant,
                            "item": photo.item,
                            "prediction": Prediction(decoded.width, decoded.height, tuple(candidates)),
                            "reads": reads,
                            "network_ms": network_ms,
                            "ocr_ms": ocr_ms,
                        }
                    )
                    bar.update(1)
    return rows


def rescored(row: dict, rescoring: TextRescoring) -> Example:
    """The row's prediction with its read candidates rescored as the runtime would."""
    by_box = {tuple(r["box"]): r for r in row["reads"]}
    candidates = []
    for candidate in row["prediction"].candidates:
        read = by_box.get(tuple(candidate.box))
        score = candidate.score
        if read is not None:
            score = rescoring.rescored(score, candidate.brand, read["text"], read["conf"])
        candidates.append(replace(candidate, score=score))
    prediction = row["prediction"]
    return Example(row["item"], Prediction(prediction.width, prediction.height, tuple(candidates)))


def figures(examples: list[Example], brands: tuple[str, ...]) -> tuple[float, float, float]:
    threshold, at = operating_threshold(examples, brands, 0.02)
    return threshold, at["f1"], at["other_mark_fp_rate"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("version", nargs="?", default=None)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--floor", type=float, default=0.15, help="candidates read from this score")
    parser.add_argument("--out", type=Path, default=None, help="write the grid as JSON here")
    args = parser.parse_args()
    settings = get_settings()
    detector = Detector.from_version_dir(Registry.from_settings(settings).resolve(args.version)).network_only()
    sets = default_sets(settings.datasets_dir, "val")
    rows = read_candidates(detector, TextReader(), sets, args.variants.split(","), args.floor)
    brands = tuple(detector.classes)
    base = [Example(r["item"], r["prediction"]) for r in rows]
    threshold, f1, fp = figures(base, brands)
    reads = [len(r["reads"]) for r in rows]
    ocr_ms = [r["ocr_ms"] for r in rows]
    print(
        f"{detector.version}, validation, {len(rows)} variant photos; "
        f"network median {statistics.median(r['network_ms'] for r in rows):.1f} ms, "
        f"OCR {statistics.mean(reads):.2f} crops per photo, "
        f"median {statistics.median(ocr_ms):.1f} ms, p95 {np.percentile(ocr_ms, 95):.1f} ms per photo"
    )
    print(f"network alone: threshold {threshold:.2f}, pooled F1 {f1:.3f}, other-agency FP {fp:.3f}")
    grid = []
    for match in (0.6, 0.75):
        for boost in (0.0, 0.5, 0.8):
            for damp in (0.0, 0.3, 0.6):
                examples = [rescored(r, TextRescoring(match=match, boost=boost, damp=damp)) for r in rows]
                threshold, f1, fp = figures(examples, brands)
                real = [e for e, r in zip(examples, rows, strict=True) if r["set"] == "real"]
                real_f1 = image_f1_at(real, brands, threshold) if real else float("nan")
                grid.append({"match": match, "boost": boost, "damp": damp, "threshold": threshold, "f1": f1, "fp": fp})
                print(
                    f"match {match:.2f} boost {boost:.1f} damp {damp:.1f}: threshold {threshold:.2f}, "
                    f"pooled F1 {f1:.3f}, real F1 {real_f1:.3f}, other-agency FP {fp:.3f}"
                )
    if args.out:
        args.out.write_text(json.dumps(grid, indent=1))


if __name__ == "__main__":
    main()
