"""A second look at an undecided photo: the network again inside a grey surround, the two pooled.

Issue #30. One pass of the network sees a mark at the photo's edge with padding beside it, and
a mark it half-believes once. Run again with the photo shrunk into a grey surround (the
letterbox's ``margin``), the same network sees each mark at another place and scale in its
input; pooling both views' candidates (each read and rescored as usual, then one class-agnostic
suppression) finds marks that either view alone scores low. On validation a second view at
every photo lifted pooled F1 from 0.869 to 0.887 (``experiments/second_view.py``), but it costs
a second network pass.

So it is taken only when the first view leaves the photo undecided: its best score after the
reading lies in ``[lowest, below)``. Photos with no candidate worth reading (most clean photos)
and photos the first view is sure of keep one pass, so the median photo costs what it did.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields


@dataclass(frozen=True)
class SecondView:
    """When the second view runs (``lowest <= best score < below``) and its grey surround."""

    input_margin: float = 0.08
    lowest: float = 0.1
    below: float = 0.7

    def __post_init__(self) -> None:
        if not 0.0 <= self.input_margin < 0.5:
            raise ValueError(f"second_view.input_margin must be in [0, 0.5), got {self.input_margin}")
        if not 0.0 <= self.lowest < self.below <= 1.0:
            raise ValueError(f"second_view needs 0 <= lowest < below <= 1, got [{self.lowest}, {self.below})")

    @classmethod
    def from_card(cls, card: dict) -> SecondView | None:
        """The card's ``second_view`` (None when the version has none)."""
        settings = card.get("second_view")
        if not settings:
            return None
        if not isinstance(settings, dict) or set(settings) - {f.name for f in fields(cls)}:
            raise ValueError(f"second_view must hold only input_margin, lowest and below, got {settings!r}")
        try:
            numbers = {key: float(value) for key, value in settings.items()}
        except (TypeError, ValueError) as exc:
            raise ValueError(f"second_view values must be numbers, got {settings!r}") from exc
        return cls(**numbers)

    def to_card(self) -> dict:
        return asdict(self)

    def wanted(self, best_score: float) -> bool:
        """Whether a photo whose best candidate scores ``best_score`` after the reading is undecided."""
        return self.lowest <= best_score < self.below
