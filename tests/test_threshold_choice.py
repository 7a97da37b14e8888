"""The operating threshold: best validation F1, capped by the false alarms on other agencies' marks."""

from __future__ import annotations

import math

import pytest

from training.evaluate import Example, choose_threshold, other_mark_fp_rate_at
from wmstudio.data.manifest import Box, Item
from wmstudio.runtime import Detection, Prediction

pytestmark = pytest.mark.unit

BRANDS = ["rumah123", "99co"]
BOX = (10.0, 10.0, 90.0, 30.0)


def _photo(name: str, brand: str | None, score: float, other_mark: bool = False) -> Example:
    boxes = [Box(brand, list(BOX))] if brand else []
    notes = ["other_mark"] if other_mark else []
    item = Item(sha256=name, path=f"{name}.jpg", width=200, height=100, brand=brand, boxes=boxes, notes=notes)
    return Example(item, Prediction(200, 100, (Detection(brand or "rumah123", score, BOX),)))


# Four marked photos scored 0.9, 0.7, 0.5, 0.4; other agencies' marks scored 0.6, 0.45 and 0.1.
EXAMPLES = [
    _photo("p1", "rumah123", 0.9),
    _photo("p2", "rumah123", 0.7),
    _photo("p3", "99co", 0.5),
    _photo("p4", "99co", 0.4),
    _photo("o1", None, 0.6, other_mark=True),
    _photo("o2", None, 0.45, other_mark=True),
    _photo("o3", None, 0.1, other_mark=True),
]


def test_other_mark_fp_rate_counts_only_photos_with_another_mark():
    assert other_mark_fp_rate_at(EXAMPLES, 0.5) == pytest.approx(1 / 3)
    assert other_mark_fp_rate_at(EXAMPLES, 0.65) == 0.0
    assert math.isnan(other_mark_fp_rate_at(EXAMPLES[:4], 0.5))


def test_f1_alone_accepts_a_false_alarm_that_the_cap_refuses():
    threshold, f1 = choose_threshold(EXAMPLES, BRANDS)
    assert threshold == pytest.approx(0.4) and other_mark_fp_rate_at(EXAMPLES, threshold) > 0
    capped, capped_f1 = choose_threshold(EXAMPLES, BRANDS, max_other_fp=0.0)
    assert capped > 0.6 and other_mark_fp_rate_at(EXAMPLES, capped) == 0.0
    assert capped_f1 < f1  # the cap costs recall, and says so


def test_a_cap_nothing_meets_falls_back_to_f1_alone():
    always = [*EXAMPLES[:4], _photo("o4", None, 0.99, other_mark=True)]
    assert choose_threshold(always, BRANDS, max_other_fp=0.0) == choose_threshold(always, BRANDS)


def test_one_threshold_per_brand_keeps_the_brand_that_raises_no_alarm():
    """experiments.brand_thresholds: when other agencies' marks pass for one brand only, that brand's
    threshold rises alone, and the other brand's mark under the shared threshold is found."""
    from experiments.brand_thresholds import Scores, best_pair, single

    examples = [
        _photo("p1", "rumah123", 0.9),
        _photo("p2", "99co", 0.5),
        _photo("o1", None, 0.6, other_mark=True),  # read as rumah123
        _photo("o2", None, 0.1, other_mark=True),
    ]
    scores = Scores.from_examples(examples, BRANDS)
    one = single(scores, cap=0.0)
    assert one > 0.6 and scores.figures([one, one])["recall_99co"] == 0.0
    pair = best_pair(scores, cap=0.0)
    assert pair[0] > 0.6 and pair[1] <= 0.5
    assert scores.figures(pair) == {"f1": 1.0, "alarms": 0.0, "recall_rumah123": 1.0, "recall_99co": 1.0}
