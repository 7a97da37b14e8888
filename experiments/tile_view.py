"""Does a look at overlapping tiles, on the photos the views leave undecided, find the small marks?

Issue #30. Collages are the worst variant (validation F1 0.76 with v45): each mark is half the
size the network was trained on. Here the photo is cut into overlapping tiles, each run at the
network's full input size (:class:`wmstudio.runtime.tile_view.TileView`); their candidates are
read with the version's rule and pooled with what the version already pools (its first view
and any extra views) when the first view's best score lies in a band. Each (grid, overlap, band)
is scored on validation, pooled over the variants, at its own threshold by the 2 % rule, from
caches of each view's reads (the extra views' caches are ``experiments.second_view``'s):

    python -m experiments.tile_view [VERSION] --cache-dir DIR [--tiles 2:0.25,3:0.25]
        [--bands 0.02:0.7,0.1:0.7,0.1:0.9]
"""

from __future__ import annotations

import argparse
import copy
import pickle
from dataclasses import replace
from pathlib import Path

from PIL import Image

from experiments.keyword_spotting import Rule, spotting_reading
from experiments.ocr_rescoring import read_candidates
from experiments.partial_reread import cached_second_reads
from experiments.second_view import FirstView, pooled_when_undecided, report, with_second_view
from training.evaluate import Example
from training.release import default_sets
from training.robustness import VARIANTS
from training.script_errors import exit_on_user_error
from wmstudio.runtime import Detector, Prediction
from wmstudio.runtime.text_reading import TextReader
from wmstudio.runtime.tile_view import TileView
from wmstudio.settings import get_settings


class TilesOnly:
    """The version's tile look as a detector of its own, so the experiments' reader can score it."""

    def __init__(self, detector: Detector, tiles: TileView) -> None:
        self.detector = copy.copy(detector)
        self.detector.tile_view = tiles
        self.decode_size = detector.decode_size

    def predict(self, image: Image.Image) -> Prediction:
        rgb = image.convert("RGB")
        return Prediction(image.width, image.height, self.detector.tile_candidates(rgb))


def tile_rows(detector: Detector, tiles: TileView, rule: Rule, cache_dir: Path, wide_reads: bool) -> list[dict]:
    """Tile candidates and reads of every validation variant (cached in ``cache_dir``)."""
    cache = cache_dir / f"tiles_{tiles.grid}_{tiles.overlap:.2f}.pkl"

    def first_rows() -> list[dict]:
        if cache.exists():
            return pickle.loads(cache.read_bytes())
        sets = default_sets(get_settings().datasets_dir, "val")
        network = TilesOnly(detector.network_only(), tiles)
        rows = read_candidates(network, TextReader(), sets, list(VARIANTS), rule.floor, spotting_reading, rule.top)
        cache.write_bytes(pickle.dumps(rows))
        return rows

    return cached_second_reads(cache, first_rows, rule, detector.decode_size) if wide_reads else first_rows()


def with_tiles(base: Example, first: Example, tiles: Example, view: TileView) -> tuple[Example, bool]:
    """``base`` (what the version already pools), with the tiles pooled in when ``first`` is undecided."""
    return pooled_when_undecided(base, first, [tiles], view)


@exit_on_user_error
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("version", nargs="?", default=None)
    parser.add_argument("--cache-dir", type=Path, required=True, help="each view's reads are kept here")
    parser.add_argument("--tiles", default="2:0.25", help="comma-separated GRID:OVERLAP")
    parser.add_argument("--bands", default="0.02:0.7,0.1:0.7,0.1:0.9", help="LOWEST:BELOW of the first view's best")
    args = parser.parse_args()
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    first = FirstView.of(args.version, args.cache_dir)
    detector, rule = first.detector, first.rule
    print(f"{detector.version}, validation; reading {rule}, second read {first.reread}, views {detector.second_view}")
    base = first.examples
    if detector.second_view is not None:
        extra = [first.surround(margin, args.cache_dir) for margin in detector.second_view.input_margins]
        more_views = zip(*extra, strict=True)
        base = [with_second_view(a, more, detector.second_view)[0] for a, more in zip(base, more_views, strict=True)]
    report(f"{detector.version}, its views without tiles", base, first.rows, first.brands, [False] * len(base))
    for spec in args.tiles.split(","):
        grid, overlap = spec.split(":")
        tiles = TileView(int(grid), float(overlap))
        tiled = first.read(tile_rows(detector, tiles, rule, args.cache_dir, first.reread is not None), args.cache_dir)
        for band in args.bands.split(","):
            lowest, below = (float(v) for v in band.split(":"))
            view = replace(tiles, lowest=lowest, below=below)
            pairs = [with_tiles(b, a, t, view) for b, a, t in zip(base, first.examples, tiled, strict=True)]
            report(
                f"tiles {grid}x{grid} overlap {overlap} when best in [{lowest}, {below})",
                [e for e, _ in pairs],
                first.rows,
                first.brands,
                [t for _, t in pairs],
            )


if __name__ == "__main__":
    main()
