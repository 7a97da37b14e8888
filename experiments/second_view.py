"""Does a second look inside a grey surround, on the photos the first leaves undecided, find more marks?

Issue #30. A grey surround (``input_margin``) lifted the network alone on marks at the edges
but cost as much on collages (``experiments/edge_margin.py``). Here the surround is a second view
beside the plain one, not instead of it: both views' candidates are read and rescored with the
version's rule (the wider second read included) and pooled as the runtime pools them
(:func:`wmstudio.runtime.detector.pooled`). The second view costs a network pass, so it is
taken only when the first view's best score after the reading lies in a band
(:class:`wmstudio.runtime.second_view.SecondView`). Each (margin, band) is scored on validation,
pooled over the variants, at its own threshold by the 2 % rule, from caches of each margin's
reads (built on the first run, reused after):

    python -m experiments.second_view [VERSION] --cache-dir DIR [--margins 0.04,0.08,0.12]
        [--bands 0:1,0.02:0.7,0.1:0.7,0.2:0.7]

A margin written ``0.04+0.08`` is two more views, both pooled with the first (the card's
``input_margins``).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from experiments.edge_margin import rows_at
from experiments.keyword_spotting import Rule, reading_version, rescored
from experiments.ocr_rescoring import figures
from experiments.partial_reread import cached_second_reads, with_second_look
from training.evaluate import Example, image_f1_at
from training.robustness import VARIANTS
from training.script_errors import exit_on_user_error
from wmstudio.runtime import Detector, Prediction
from wmstudio.runtime.detector import pooled
from wmstudio.runtime.second_view import SecondView
from wmstudio.runtime.tile_view import TileView


def view_rows(detector: Detector, margin: float, rule: Rule, cache_dir: Path, wide_reads: bool) -> list[dict]:
    """Candidates and reads of every validation variant at ``margin``, with the wider second
    reads when the rule takes them (each cached in ``cache_dir``)."""
    cache = cache_dir / f"margin_{margin:.2f}.pkl"
    first_rows = partial(rows_at, detector.network_only(), margin, rule, cache)
    return cached_second_reads(cache, first_rows, rule, detector.decode_size) if wide_reads else first_rows()


def read_view(row: dict, rule: Rule, reread: tuple[float, float] | None) -> Example:
    """One view's prediction after the reading (and the wider second read), as the runtime scores it."""
    if reread is None:
        return rescored(row, rule)
    return with_second_look(row, rule, *reread)[0]


def pooled_when_undecided(
    base: Example, first: Example, more: Sequence[Example], view: SecondView | TileView
) -> tuple[Example, bool]:
    """``base`` (what is pooled so far), or it and the ``more`` looks pooled when ``first`` (the first
    view after the reading) leaves the photo undecided, as the runtime decides."""
    if not view.wanted(max((c.score for c in first.prediction.candidates), default=0.0)):  # rows keep network order
        return base, False
    prediction = base.prediction
    candidates = pooled((*prediction.candidates, *(c for e in more for c in e.prediction.candidates)), 0.5)
    return Example(base.item, Prediction(prediction.width, prediction.height, candidates)), True


def with_second_view(first: Example, more: Sequence[Example], view: SecondView) -> tuple[Example, bool]:
    """The first view, or it and the ``more`` views pooled when the first leaves the photo undecided."""
    return pooled_when_undecided(first, first, more, view)


def report(label: str, examples: list[Example], rows: list[dict], brands: tuple[str, ...], taken: list[bool]) -> dict:
    """Pooled, real and per-variant figures at the 2 % threshold, and how often the view was taken."""
    threshold, f1, fp = figures(examples, brands)
    real = [e for e, r in zip(examples, rows, strict=True) if r["set"] == "real"]
    real_published = [t for t, r in zip(taken, rows, strict=True) if r["set"] == "real" and r["variant"] == "original"]
    per_variant = {
        variant: image_f1_at(
            [e for e, r in zip(examples, rows, strict=True) if r["variant"] == variant], brands, threshold
        )
        for variant in VARIANTS
    }
    entry = {
        "view": label,
        "threshold": threshold,
        "f1": f1,
        "real_f1": image_f1_at(real, brands, threshold),
        "other_fp": fp,
        "second_view_share": sum(taken) / len(taken),
        "second_view_share_real_published": sum(real_published) / max(1, len(real_published)),
        "per_variant": per_variant,
    }
    cells = " ".join(f"{variant} {value:.3f}" for variant, value in per_variant.items())
    print(
        f"{label}: threshold {threshold:.2f}, pooled F1 {f1:.4f}, real F1 {entry['real_f1']:.3f}, other-agency FP "
        f"{fp:.3f}, extra looks on {entry['second_view_share']:.2f} (real as published "
        f"{entry['second_view_share_real_published']:.2f}) | {cells}",
        flush=True,
    )
    return entry


@dataclass(frozen=True)
class FirstView:
    """A version's first view on every validation variant, read as the version reads it."""

    detector: Detector
    rule: Rule
    reread: tuple[float, float] | None  # the wider second read's (part, width), when the reading has one
    rows: list[dict]
    examples: list[Example]

    @classmethod
    def of(cls, version: str | None, cache_dir: Path) -> FirstView:
        detector, rule = reading_version(version)
        rescoring = detector.text_rescoring
        reread = (rescoring.reread_part, rescoring.reread_margin_x) if rescoring.reread_part is not None else None
        rows = view_rows(detector, detector.input_margin, rule, cache_dir, reread is not None)
        return cls(detector, rule, reread, rows, [read_view(row, rule, reread) for row in rows])

    @property
    def brands(self) -> tuple[str, ...]:
        return tuple(self.detector.classes)

    def read(self, rows: list[dict], cache_dir: Path) -> list[Example]:
        """Another view's rows of the same photos, read the same way (caches of other photos end the run)."""
        if any(
            a["item"].sha256 != b["item"].sha256 or a["variant"] != b["variant"]
            for a, b in zip(self.rows, rows, strict=True)
        ):
            raise SystemExit(f"the caches in {cache_dir} hold different photos; remove them")
        return [read_view(row, self.rule, self.reread) for row in rows]

    def surround(self, margin: float, cache_dir: Path) -> list[Example]:
        """The view inside a grey surround of ``margin``, read."""
        return self.read(view_rows(self.detector, margin, self.rule, cache_dir, self.reread is not None), cache_dir)


@exit_on_user_error
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("version", nargs="?", default=None)
    parser.add_argument("--cache-dir", type=Path, required=True, help="each margin's reads are kept here")
    parser.add_argument("--margins", default="0.04,0.08,0.12", help="comma-separated views; 0.04+0.08: two more views")
    parser.add_argument("--bands", default="0:1,0.02:0.7,0.1:0.7,0.2:0.7", help="LOWEST:BELOW of the first view's best")
    args = parser.parse_args()
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    first = FirstView.of(args.version, args.cache_dir)
    detector, brands = first.detector, first.brands
    print(f"{detector.version}, validation; reading {first.rule}, second read {first.reread}")
    one = f"one view (margin {detector.input_margin:.2f})"
    report(one, first.examples, first.rows, brands, [False] * len(first.rows))
    views: dict[float, list[Example]] = {}
    for views_at in args.margins.split(","):
        margins = tuple(float(m) for m in views_at.split("+"))
        for margin in margins:
            if margin not in views:
                views[margin] = first.surround(margin, args.cache_dir)
        for band in args.bands.split(","):
            lowest, below = (float(v) for v in band.split(":"))
            view = SecondView(margins, lowest, below)
            more = zip(*(views[m] for m in margins), strict=True)
            pairs = [with_second_view(a, others, view) for a, others in zip(first.examples, more, strict=True)]
            report(
                f"more views at margins {views_at} when best in [{lowest}, {below})",
                [e for e, _ in pairs],
                first.rows,
                brands,
                [t for _, t in pairs],
            )


if __name__ == "__main__":
    main()
