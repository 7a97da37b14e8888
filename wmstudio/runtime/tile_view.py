"""A closer look at an undecided photo: the network again on overlapping tiles, each at full input size.

Issue #30. In a collage (four photos in a 2×2 grid) or a thumbnail of a wide photo, a mark is
half the size the network was trained on, and its boxes and scores suffer (collage F1 0.76 on
validation, the worst variant). Cut the photo into a ``grid``×``grid`` set of tiles that overlap
by ``overlap`` of a tile and run the network on each at its full input size: a quarter of a
collage is then one photo at the scale the network knows. A candidate that touches a cut inside
the photo is dropped, since it is a piece of a mark that another tile (or the plain view) sees
whole. The tiles' candidates are read like any view's and pooled with the rest.

Like :mod:`wmstudio.runtime.second_view` it is taken only when the first view leaves the photo
undecided (its best score after the reading in ``[lowest, below)``), so most photos keep one pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CARD_FIELDS = {"grid", "overlap", "lowest", "below"}
CUT_TOLERANCE = 0.01  # a box this close (share of the tile's side) to an inner cut touches it


@dataclass(frozen=True)
class TileView:
    """How the photo is tiled and when the tiles are looked at."""

    grid: int = 2
    overlap: float = 0.25
    lowest: float = 0.1
    below: float = 0.7

    def __post_init__(self) -> None:
        if not 2 <= self.grid <= 4:
            raise ValueError(f"tile_view.grid must be 2, 3 or 4, got {self.grid}")
        if not 0.0 <= self.overlap < 0.5:
            raise ValueError(f"tile_view.overlap must be in [0, 0.5), got {self.overlap}")
        if not 0.0 <= self.lowest < self.below <= 1.0:
            raise ValueError(f"tile_view needs 0 <= lowest < below <= 1, got [{self.lowest}, {self.below})")

    @classmethod
    def from_card(cls, card: dict) -> TileView | None:
        """The card's ``tile_view`` (None when the version has none)."""
        settings = card.get("tile_view")
        if not settings:
            return None
        if not isinstance(settings, dict) or set(settings) - CARD_FIELDS:
            raise ValueError(f"tile_view must hold only grid, overlap, lowest and below, got {settings!r}")
        try:
            grid, overlap = int(settings.get("grid", 2)), float(settings.get("overlap", 0.25))
            lowest, below = float(settings["lowest"]), float(settings["below"])
        except (TypeError, ValueError, KeyError) as exc:
            raise ValueError(f"tile_view needs numbers: grid, overlap, lowest and below, got {settings!r}") from exc
        return cls(grid, overlap, lowest, below)

    def to_card(self) -> dict:
        return {"grid": self.grid, "overlap": self.overlap, "lowest": self.lowest, "below": self.below}

    def wanted(self, best_score: float) -> bool:
        """Whether a photo whose best candidate scores ``best_score`` after the reading is undecided."""
        return self.lowest <= best_score < self.below

    def starts(self, length: int) -> tuple[int, list[int]]:
        """A tile's side along one axis and where each tile starts (the last ends at ``length``)."""
        side = round(length / (self.grid - (self.grid - 1) * self.overlap))
        side = max(1, min(length, side))
        step = (length - side) / (self.grid - 1)
        return side, [round(i * step) for i in range(self.grid)]

    def tiles(self, width: int, height: int) -> list[tuple[int, int, int, int]]:
        """The tiles as (x0, y0, x1, y1) in the photo's pixels, row by row."""
        tile_w, xs = self.starts(width)
        tile_h, ys = self.starts(height)
        return [(x, y, x + tile_w, y + tile_h) for y in ys for x in xs]

    def whole_inside(self, boxes: np.ndarray, tile: tuple[int, int, int, int], width: int, height: int) -> np.ndarray:
        """Which boxes (photo pixels) keep clear of the tile's cuts inside the photo.

        A side of the tile that is the photo's own edge is no cut: a mark there is whole.
        """
        x0, y0, x1, y1 = tile
        slack_x, slack_y = CUT_TOLERANCE * (x1 - x0), CUT_TOLERANCE * (y1 - y0)
        keep = np.ones(len(boxes), dtype=bool)
        if x0 > 0:
            keep &= boxes[:, 0] > x0 + slack_x
        if y0 > 0:
            keep &= boxes[:, 1] > y0 + slack_y
        if x1 < width:
            keep &= boxes[:, 2] < x1 - slack_x
        if y1 < height:
            keep &= boxes[:, 3] < y1 - slack_y
        return keep
