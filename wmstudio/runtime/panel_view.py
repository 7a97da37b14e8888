"""A look at each panel of a composed photo: collages split at their seams, frames trimmed away.

Issue #30. Listing systems compose photos: a 2×2 collage of four shots, a photo inside a flat
frame or beside a flat band, a phone screenshot with black bars. The network then sees the
marked photo at a half or a third of the scale it was trained on, and a collage was the worst
variant on validation (F1 0.78–0.83, AP50 0.65–0.71, against 0.93 as published). The layout of
such a photo is cheap to find without any network: flat bands at the edges, or straight seams
where two unrelated photos meet, which run the whole length of the panel. Cut the photo there
(recursively, so a grid becomes its cells) and run the network on each panel at its full input
size: each panel is then one photo at the scale the network knows. The panels' candidates are
read like any view's and pooled with the plain view's.

Unlike the surrounds and tiles, which look again only when the first view leaves the photo
undecided, the panels are looked at whenever a layout is found and the first view's best is in
``[lowest, below)``. With ``below`` 1.0 even a sure photo is looked at, since a mark tiled over a
collage's cell is found once by the plain view and the rest of its copies only in the panel.
``lowest`` leaves photos with no candidate at all plain: v50 (``lowest`` 0) looked at every photo
with a layout, and as room edges pass for seams on a quarter of the real photos, each costing a
network run per panel, its median latency doubled. The analysis costs a few milliseconds at
``ANALYSIS_SIDE`` on 2 cores.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np
from PIL import Image

ANALYSIS_SIDE = 320  # the layout is found on a copy shrunk by a whole factor to at least this long
FLAT_STD = 4.0  # a line whose pixels vary less than this (0–255) is flat: a band, a gutter
MIN_STEP = 10.0  # the smallest jump (0–255, brightest channel) that counts as an edge on one row
STAND_OUT = 2.0  # the jump must exceed the jumps two pixels either side this many times
MAX_DEPTH = 2  # seams inside seams: a 2×2 grid needs two (trimming a frame costs none)
MIN_PANEL_AREA = 0.06  # a leaf smaller than this share of the photo is no photo of its own

Box = tuple[int, int, int, int]
Seams = tuple[bool, bool, bool, bool]  # which sides (left, top, right, bottom) of a panel are seams
PLAIN_SIDES: Seams = (False, False, False, False)


@dataclass(frozen=True)
class Panel:
    """One photo of a composed one: its box in the photo's pixels, and which of its sides are seams.

    A side that is a seam runs through content, perhaps wrongly (a door frame can look like one):
    a candidate touching it may be a piece of a mark, which the plain view sees whole. A side at
    the photo's edge, a flat band or a gutter cuts nothing.
    """

    box: Box
    seams: Seams = PLAIN_SIDES
    tolerance: float = 2.0  # photo pixels: how near a seam a box counts as touching it

    def whole_inside(self, boxes: np.ndarray) -> np.ndarray:
        """Which boxes (photo pixels) keep clear of this panel's seams."""
        keep = np.ones(len(boxes), dtype=bool)
        for side, is_seam in enumerate(self.seams):
            if not is_seam:
                continue
            if side < 2:  # left, top: the box's own left or top edge
                keep &= boxes[:, side] > self.box[side] + self.tolerance
            else:  # right, bottom
                keep &= boxes[:, side] < self.box[side] - self.tolerance
        return keep


@dataclass(frozen=True)
class PanelView:
    """When a photo counts as composed, and when its panels are looked at."""

    seam: float = 0.55
    min_share: float = 0.2
    below: float = 0.7
    # A photo whose first view has no candidate from here is left plain: most served photos are
    # clean and score near 0, and each panel costs a network run (v50, with 0, doubled the median).
    lowest: float = 0.0
    # The network's input size on a panel (0: the training size). A cell of a 2×2 collage at the
    # training size is seen larger than the photo as published; a smaller input still sees its mark
    # larger than the plain view does and costs half the network time or less (256 px: 12 ms against
    # 28 ms at 416 on 2 cores). Any other size needs an ONNX file with dynamic height and width.
    size: int = 0
    # A panel is looked at only when the network sees it at least this many times larger than in the
    # plain view (letterboxed, the longer side sets the scale). A frame trimmed off a few pixels wide,
    # or a portrait photo cut in two tall halves, is seen at nearly the plain view's scale: a run for
    # little. 1 looks at every panel (cards written before read so).
    gain: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 < self.seam <= 1.0:
            raise ValueError(f"panel_view.seam must be in (0, 1], got {self.seam}")
        if not 0.0 < self.min_share < 0.5:
            raise ValueError(f"panel_view.min_share must be in (0, 0.5), got {self.min_share}")
        if not 0.0 <= self.lowest < self.below <= 1.0:
            raise ValueError(f"panel_view needs 0 <= lowest < below <= 1, got [{self.lowest}, {self.below})")
        if self.size != int(self.size) or not (self.size == 0 or 64 <= self.size <= 2048):
            raise ValueError(f"panel_view.size must be 0 (the training size) or a whole 64 to 2048, got {self.size}")
        if not 1.0 <= self.gain <= 4.0:
            raise ValueError(f"panel_view.gain must be in [1, 4], got {self.gain}")
        object.__setattr__(self, "size", int(self.size))  # a card's JSON may hold 256.0

    @classmethod
    def from_card(cls, card: dict) -> PanelView | None:
        """The card's ``panel_view`` (None when the version has none)."""
        settings = card.get("panel_view")
        if not settings:
            return None
        names = [field.name for field in fields(cls)]  # the card holds exactly the settings
        if not isinstance(settings, dict) or set(settings) - set(names):
            raise ValueError(f"panel_view must hold only {', '.join(names)}, got {settings!r}")
        try:
            values = {name: float(value) for name, value in settings.items()}
        except (TypeError, ValueError) as exc:
            raise ValueError(f"panel_view needs numbers: {', '.join(names)}, got {settings!r}") from exc
        return cls(**values)

    def to_card(self) -> dict:
        return asdict(self)

    def input_size(self, training_size: int) -> int:
        """The network's input size on a panel for a network trained at ``training_size``."""
        return self.size or training_size

    def wanted(self, best_score: float) -> bool:
        """Whether a photo whose best candidate scores ``best_score`` after the reading is still open."""
        return self.lowest <= best_score < self.below

    def panels(self, image: Image.Image) -> list[Panel]:
        """The photo's panels worth a look (seen ``gain`` times larger than in the plain view), boxes
        in its pixels; empty when it is one plain photo."""
        pixels, scale = analysis_copy(image)
        layout = Layout(pixels)
        height, width = pixels.shape[:2]
        leaves = self._split(layout, (0, 0, width, height), PLAIN_SIDES, MAX_DEPTH)
        leaves = [(box, seams) for box, seams in leaves if _area(box) >= MIN_PANEL_AREA * width * height]
        if not leaves or [box for box, _ in leaves] == [(0, 0, width, height)]:
            return []
        longest = max(width, height)
        return [
            Panel(_to_photo(box, scale, image.width, image.height), seams, 1.0 / scale + 1.0)
            for box, seams in leaves
            if longest >= self.gain * max(box[2] - box[0], box[3] - box[1])
        ]

    def _split(self, layout: Layout, box: Box, seams: Seams, depth: int) -> list[tuple[Box, Seams]]:
        """The leaves of ``box`` with their seam sides: its flat margins trimmed (a trimmed side is
        no seam), then cut at its strongest seam or gutter, recursively."""
        trimmed = layout.trimmed(box)
        seams = tuple(seam and old == new for seam, old, new in zip(seams, box, trimmed, strict=True))
        x0, y0, x1, y1 = trimmed
        if x1 - x0 < 8 or y1 - y0 < 8:
            return []
        if depth == 0:
            return [(trimmed, seams)]
        cut = self._best_cut(layout, trimmed)
        if cut is None:
            return [(trimmed, seams)]
        axis, start, end = cut
        seam = start == end  # a gutter is cut away whole and leaves no seam
        left, top, right, bottom = seams
        if axis == 1:  # a vertical cut leaves a left and a right half
            halves = [((x0, y0, start, y1), (left, top, seam, bottom)), ((end, y0, x1, y1), (seam, top, right, bottom))]
        else:
            halves = [((x0, y0, x1, start), (left, top, right, seam)), ((x0, end, x1, y1), (left, seam, right, bottom))]
        return [leaf for half, sides in halves for leaf in self._split(layout, half, sides, depth - 1)]

    def _best_cut(self, layout: Layout, box: Box) -> tuple[int, int, int] | None:
        """The strongest cut of a panel as (axis, first pixel cut away, first pixel kept after), in
        the analysis copy's pixels: axis 1 cuts columns (a vertical seam), axis 0 rows. A flat gutter
        is cut away whole; otherwise the seam that most rows agree on, if enough do."""
        best: tuple[float, tuple[int, int, int]] | None = None
        for axis in (1, 0):
            first, last = (box[0], box[2]) if axis == 1 else (box[1], box[3])
            length = last - first
            low = first + max(3, round(self.min_share * length))
            high = first + min(length - 3, round((1 - self.min_share) * length))
            if high <= low:
                continue
            gutter = _widest_run(layout.flat_lines(box, axis), low - first, high - first)
            if gutter is not None:
                return (axis, first + gutter[0], first + gutter[1])
            scores = layout.seam_scores(box, axis)[low - first : high - first]
            position = int(np.argmax(scores))
            if scores[position] >= self.seam and (best is None or scores[position] > best[0]):
                best = (float(scores[position]), (axis, low + position, low + position))
        return None if best is None else best[1]


class Layout:
    """One analysis copy with its edge maps, asked about many nested panels.

    The split asks, for each panel, which of its lines are flat and which boundaries are seams.
    The edge maps are computed once per photo; a panel's questions are then means over slices.
    """

    def __init__(self, pixels: np.ndarray) -> None:
        self.planes = np.ascontiguousarray(pixels.transpose(2, 0, 1), dtype=np.float32)  # (3, rows, columns)
        # columns_edge[y, k]: on row y, the jump between columns k - 1 and k stands out (rows_edge likewise)
        self.columns_edge = _edges(np.abs(np.diff(self.planes, axis=2)).max(axis=0))
        self.rows_edge = _edges(np.abs(np.diff(self.planes, axis=1)).max(axis=0).T).T

    def flat_lines(self, box: Box, axis: int) -> np.ndarray:
        """Per column (axis 1) or row (axis 0) of ``box``: whether it is flat across the box."""
        x0, y0, x1, y1 = box
        panel = self.planes[:, y0:y1, x0:x1]
        return panel.std(axis=1 if axis == 1 else 2).max(axis=0) < FLAT_STD

    def seam_scores(self, box: Box, axis: int) -> np.ndarray:
        """Per boundary before each column (axis 1) or row (axis 0) of ``box``: the share of the
        box's rows (columns) on which it is an edge."""
        x0, y0, x1, y1 = box
        if axis == 1:
            return self.columns_edge[y0:y1, x0:x1].mean(axis=0)
        return self.rows_edge[y0:y1, x0:x1].mean(axis=1)

    def trimmed(self, box: Box) -> Box:
        """``box`` without the flat bands along its edges (a frame, a one-sided border, black bars)."""
        x0, y0, x1, y1 = box
        if x1 <= x0 or y1 <= y0:
            return box
        flat_columns, flat_rows = self.flat_lines(box, 1), self.flat_lines(box, 0)
        left, right = _run_from_start(flat_columns), _run_from_start(flat_columns[::-1])
        top, bottom = _run_from_start(flat_rows), _run_from_start(flat_rows[::-1])
        if left + right >= len(flat_columns) or top + bottom >= len(flat_rows):
            return (x0, y0, x0, y0)  # flat all over: nothing to look at
        return (x0 + left, y0 + top, x1 - right, y1 - bottom)


def _edges(jumps: np.ndarray) -> np.ndarray:
    """Which jumps (rows, boundaries between columns k - 1 and k, padded to the column count) are
    edges that stand out against the jumps two pixels either side.

    A seam between two unrelated photos jumps on nearly every row; an edge inside one photo (a
    wall, a pole) runs only part of the way, and a smooth gradient jumps nowhere.
    """
    rows, boundaries = jumps.shape
    edges = np.zeros((rows, boundaries + 1), dtype=np.float32)
    if boundaries < 5:
        return edges
    middle = jumps[:, 2:-2]
    around = np.maximum(jumps[:, :-4], jumps[:, 4:])
    edges[:, 3:-2] = (middle > MIN_STEP) & (middle > STAND_OUT * around)
    return edges


def _widest_run(flags: np.ndarray, low: int, high: int) -> tuple[int, int] | None:
    """The widest run of True (a flat gutter) that starts between ``low`` and ``high``."""
    best: tuple[int, int] | None = None
    index = low
    while index < high:
        if not flags[index]:
            index += 1
            continue
        end = index
        while end < len(flags) and flags[end]:
            end += 1
        if best is None or end - index > best[1] - best[0]:
            best = (index, end)
        index = end
    return best


def _run_from_start(flags: np.ndarray) -> int:
    """How many leading entries are True."""
    falses = np.flatnonzero(~flags)
    return int(falses[0]) if falses.size else len(flags)


def analysis_copy(image: Image.Image) -> tuple[np.ndarray, float]:
    """The photo as a float (rows, columns, 3) array shrunk by a whole factor to no less than
    ``ANALYSIS_SIDE`` (seams stay sharper than under a finer shrink), and its scale."""
    rgb = image.convert("RGB")
    factor = max(1, max(rgb.size) // ANALYSIS_SIDE)
    if factor > 1:
        rgb = rgb.reduce(factor)  # box averaging: five times quicker than a bilinear resize here
    return np.asarray(rgb, dtype=np.float32), rgb.width / image.width


def _area(box: Box) -> int:
    return max(0, box[2] - box[0]) * max(0, box[3] - box[1])


def _to_photo(box: Box, scale: float, width: int, height: int) -> Box:
    """A box of the analysis copy in the photo's pixels."""
    x0, y0, x1, y1 = (round(v / scale) for v in box)
    return (max(0, x0), max(0, y0), min(width, x1), min(height, y1))
