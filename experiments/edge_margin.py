"""Does a grey surround around the photo lift marks at its edges (issue #30's corners and crops)?

Letterboxing puts a photo's edge at the network's input edge, where the convolutions see
padding instead of context; v38's network scores marks in corner crops far lower than the same
marks as published (validation: synthetic Rumah123 F1 0.61 against 0.80, network alone). A
margin (a share of the input on every side, ``input_margin`` on the card) moves the edge
inwards at the cost of that many pixels of resolution. Each margin is scored on validation,
pooled over the variants, at its own threshold by the 2 % rule, with the champion's reading:

    python -m experiments.edge_margin [VERSION] --margins 0,0.03,0.06 [--cache-dir DIR]
"""

from __future__ import annotations

import argparse
import pickle
from pathlib import Path

from experiments.keyword_spotting import Rule, reading_version, rescored, spotting_reading
from experiments.ocr_rescoring import figures, read_candidates
from training.evaluate import Example, image_f1_at
from training.release import default_sets
from training.robustness import VARIANTS
from training.script_errors import exit_on_user_error
from wmstudio.runtime import Detector
from wmstudio.runtime.text_reading import TextReader
from wmstudio.settings import get_settings


def rows_at(detector: Detector, margin: float, rule: Rule, cache: Path | None) -> list[dict]:
    """Candidates and reads of every validation variant with the network run at ``margin``."""
    if cache is not None and cache.exists():
        return pickle.loads(cache.read_bytes())
    detector.input_margin = margin
    sets = default_sets(get_settings().datasets_dir, "val")
    rows = read_candidates(detector, TextReader(), sets, list(VARIANTS), rule.floor, spotting_reading, rule.top)
    if cache is not None:
        cache.write_bytes(pickle.dumps(rows))
    return rows


def report(margin: float, rows: list[dict], rule: Rule, brands: tuple[str, ...]) -> None:
    """Pooled and per-variant figures of one margin, network alone and with the reading."""
    for stage, examples in (
        ("network", [Example(r["item"], r["prediction"]) for r in rows]),
        ("reading", [rescored(r, rule) for r in rows]),
    ):
        threshold, f1, fp = figures(examples, brands)
        real = [e for e, r in zip(examples, rows, strict=True) if r["set"] == "real"]
        per_variant = {
            variant: image_f1_at(
                [e for e, r in zip(examples, rows, strict=True) if r["variant"] == variant], brands, threshold
            )
            for variant in VARIANTS
        }
        cells = " ".join(f"{variant} {value:.3f}" for variant, value in per_variant.items())
        print(
            f"margin {margin:.2f} {stage}: threshold {threshold:.2f}, pooled F1 {f1:.3f}, "
            f"real F1 {image_f1_at(real, brands, threshold):.3f}, other-agency FP {fp:.3f} | {cells}"
        )


@exit_on_user_error
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("version", nargs="?", default=None)
    parser.add_argument("--margins", default="0,0.03,0.06", help="comma-separated shares of the input side")
    parser.add_argument("--cache-dir", type=Path, default=None, help="keep each margin's reads here and reuse them")
    args = parser.parse_args()
    detector, rule = reading_version(args.version)
    brands = tuple(detector.classes)
    network = detector.network_only()
    print(f"{detector.version}, validation; reading {rule}")
    for margin in (float(m) for m in args.margins.split(",")):
        cache = args.cache_dir / f"margin_{margin:.2f}.pkl" if args.cache_dir else None
        report(margin, rows_at(network, margin, rule, cache), rule, brands)


if __name__ == "__main__":
    main()
