"""Does a smaller boost for a candidate whose own brand is spotted faintly find more marks?

Issue #30. Of v46's validation misses that the network had found (a candidate of the right brand
scoring 0.05 to the threshold), 44 of 250 spotted their brand at 0.05-0.3 in the recogniser's
frames, under the 0.3 that boosts; of 1,035 photos with other agencies' marks, 26 spotted a brand
there. Marks in unseen fonts are read half-right. Here such a candidate is lifted by a smaller
boost (``faint_boost``) instead of being damped or left alone
(:attr:`wmstudio.runtime.text_reading.TextRescoring.faint_spot`). Every look of the version (its
first view, the surround views, the tiles) is read with each rule and pooled as the runtime pools
them, scored on validation, pooled over the variants, at its own threshold by the 2 % rule, from
the caches of ``experiments.second_view`` and ``experiments.tile_view``:

    python -m experiments.faint_spot [VERSION] --cache-dir DIR [--grid 0.05:0.3,0.1:0.3]
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from experiments.keyword_spotting import Rule
from experiments.second_view import FirstView, read_view, report, view_rows, with_second_view
from experiments.tile_view import tile_rows, with_tiles
from training.evaluate import Example
from training.script_errors import exit_on_user_error


class AllLooks:
    """The version's looks at every validation variant, unread, so that each rule reads them anew."""

    def __init__(self, first: FirstView, cache_dir: Path) -> None:
        self.first, self.cache_dir = first, cache_dir
        detector, wide = first.detector, first.reread is not None
        margins = detector.second_view.input_margins if detector.second_view is not None else ()
        self.surrounds = [view_rows(detector, margin, first.rule, cache_dir, wide) for margin in margins]
        tiles = detector.tile_view  # its band decides nothing here: the tiles of every photo are cached
        self.tiles = tile_rows(detector, tiles, first.rule, cache_dir, wide) if tiles is not None else None

    def pooled(self, rule: Rule) -> tuple[list[Example], list[bool]]:
        """Every look read by ``rule`` and pooled as the version pools them; whether extra looks were taken."""
        detector = self.first.detector
        reads = [read_view(row, rule, self.first.reread) for row in self.first.rows]
        first = replace(self.first, rule=rule, examples=reads)
        pooled, taken = first.examples, [False] * len(first.examples)
        if self.surrounds:
            surrounds = zip(*(first.read(rows, self.cache_dir) for rows in self.surrounds), strict=True)
            pairs = [with_second_view(a, more, detector.second_view) for a, more in zip(pooled, surrounds, strict=True)]
            pooled, taken = [e for e, _ in pairs], [t for _, t in pairs]
        if self.tiles is not None:
            tiled = first.read(self.tiles, self.cache_dir)
            pairs = [
                with_tiles(b, a, t, detector.tile_view) for b, a, t in zip(pooled, first.examples, tiled, strict=True)
            ]
            pooled, taken = [e for e, _ in pairs], [was or t for was, (_, t) in zip(taken, pairs, strict=True)]
        return pooled, taken


@exit_on_user_error
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("version", nargs="?", default=None)
    parser.add_argument("--cache-dir", type=Path, required=True, help="each look's reads are kept here")
    parser.add_argument("--grid", default="0.05:0.3,0.1:0.3", help="comma-separated FAINT_SPOT:FAINT_BOOST")
    args = parser.parse_args()
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    first = FirstView.of(args.version, args.cache_dir)
    looks = AllLooks(first, args.cache_dir)
    print(f"{first.detector.version}, validation; reading {first.rule}")
    examples, taken = looks.pooled(first.rule)
    report(f"{first.detector.version} as released", examples, first.rows, first.brands, taken)
    for spec in args.grid.split(","):
        spot, boost = (float(v) for v in spec.split(":"))
        rule = replace(first.rule, faint_spot=spot, faint_boost=boost)
        examples, taken = looks.pooled(rule)
        report(f"faint spot {spot} boost {boost}", examples, first.rows, first.brands, taken)


if __name__ == "__main__":
    main()
