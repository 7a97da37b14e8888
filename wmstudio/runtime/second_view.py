"""A second look at an undecided photo: the network again inside a grey surround, the two pooled.

Issue #30. One pass of the network sees a mark at the photo's edge with padding beside it, and
a mark it half-believes once. Run again with the photo shrunk into a grey surround (the
letterbox's ``margin``), the same network sees each mark at another place and scale in its
input; pooling both views' candidates (each read and rescored as usual, then one class-agnostic
suppression) finds marks that either view alone scores low. On validation a second view at
every photo lifted pooled F1 from 0.869 to 0.887 (``experiments/second_view.py``), but it costs
a second network pass.

A card may list more than one surround: each is one more view, pooled with the rest. The views
are taken only when the first view leaves the photo undecided: its best score after the
reading lies in ``[lowest, below)``. Photos with no candidate worth reading (most clean photos)
and photos the first view is sure of keep one pass, so the median photo costs what it did.
"""

from __future__ import annotations

from dataclasses import dataclass

CARD_FIELDS = {"input_margins", "input_margin", "lowest", "below"}  # input_margin: v43's one surround


@dataclass(frozen=True)
class SecondView:
    """When more views run (``lowest <= best score < below``) and the grey surround of each."""

    input_margins: tuple[float, ...] = (0.04,)
    lowest: float = 0.1
    below: float = 0.7

    def __post_init__(self) -> None:
        if not self.input_margins or not all(0.0 <= margin < 0.5 for margin in self.input_margins):
            raise ValueError(f"second_view.input_margins must be one or more in [0, 0.5), got {self.input_margins}")
        if not 0.0 <= self.lowest < self.below <= 1.0:
            raise ValueError(f"second_view needs 0 <= lowest < below <= 1, got [{self.lowest}, {self.below})")

    @classmethod
    def from_card(cls, card: dict) -> SecondView | None:
        """The card's ``second_view`` (None when the version has none).

        v43's card names one surround as ``input_margin``; later cards list ``input_margins``.
        """
        settings = card.get("second_view")
        if not settings:
            return None
        if not isinstance(settings, dict) or set(settings) - CARD_FIELDS:
            raise ValueError(f"second_view must hold only input_margins, lowest and below, got {settings!r}")
        try:
            margins = settings["input_margins"] if "input_margins" in settings else [settings["input_margin"]]
            numbers = (tuple(float(m) for m in margins), float(settings["lowest"]), float(settings["below"]))
        except (TypeError, ValueError, KeyError) as exc:
            raise ValueError(f"second_view needs numbers: input_margins, lowest and below, got {settings!r}") from exc
        return cls(*numbers)

    def to_card(self) -> dict:
        return {"input_margins": list(self.input_margins), "lowest": self.lowest, "below": self.below}

    def wanted(self, best_score: float) -> bool:
        """Whether a photo whose best candidate scores ``best_score`` after the reading is undecided."""
        return self.lowest <= best_score < self.below
