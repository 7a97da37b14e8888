"""Bootstrap AP50 intervals: they agree with the evaluation's AP50 and behave like intervals."""

from __future__ import annotations

import numpy as np
import pytest

from experiments.bootstrap import bootstrap_ap50, photo_matches
from training.evaluate import Example, evaluate_examples
from wmstudio.data.manifest import Box, Item
from wmstudio.runtime import Detection, Prediction

pytestmark = pytest.mark.unit

MARK = (100.0, 200.0, 300.0, 240.0)
ELSEWHERE = (0.0, 500.0, 100.0, 540.0)


def _photo(index: int, brand: str | None, candidates: list[Detection]) -> Example:
    boxes = [Box(brand, MARK)] if brand else []
    item = Item(sha256=f"p{index}", path=f"images/p{index}.jpg", width=480, height=640, brand=brand, boxes=boxes)
    return Example(item, Prediction(480, 640, tuple(candidates)))


def _photos(count: int, seed: int, skill: float) -> list[Example]:
    """Marked and clean photos; a better ``skill`` scores true marks above false alarms more often."""
    rng = np.random.default_rng(seed)
    photos = []
    for index in range(count):
        if index % 2:
            score = float(np.clip(rng.normal(skill, 0.2), 0.02, 0.99))
            photos.append(_photo(index, "rumah123", [Detection("rumah123", score, MARK)]))
        else:
            score = float(np.clip(rng.normal(0.5, 0.2), 0.02, 0.99))
            photos.append(_photo(index, None, [Detection("rumah123", score, ELSEWHERE)]))
    return photos


def test_full_sample_ap50_matches_the_evaluation():
    photos = _photos(60, seed=1, skill=0.6)
    expected = evaluate_examples(photos, ["rumah123"], 0.5)["per_brand"]["rumah123"]["ap50"]
    assert 0.3 < expected < 0.99  # neither trivial end
    assert photo_matches(photos, "rumah123").ap50() == pytest.approx(expected)


def test_interval_brackets_the_estimate_and_narrows_with_more_photos():
    small = bootstrap_ap50([photo_matches(_photos(40, seed=2, skill=0.6), "rumah123")], resamples=400)[0][0]
    large = bootstrap_ap50([photo_matches(_photos(400, seed=2, skill=0.6), "rumah123")], resamples=400)[0][0]
    for interval in (small, large):
        assert interval.low <= interval.estimate <= interval.high
    assert large.high - large.low < small.high - small.low


def test_paired_difference_of_a_version_with_itself_is_exactly_zero():
    matches = photo_matches(_photos(80, seed=3, skill=0.6), "rumah123")
    singles, paired = bootstrap_ap50([matches, matches], resamples=200)
    assert singles[0] == singles[1]
    assert (paired[0].estimate, paired[0].low, paired[0].high) == (0.0, 0.0, 0.0)


def test_a_clearly_better_version_has_a_paired_interval_above_zero():
    weaker = photo_matches(_photos(200, seed=4, skill=0.45), "rumah123")
    stronger = photo_matches(_photos(200, seed=4, skill=0.9), "rumah123")
    _, paired = bootstrap_ap50([weaker, stronger], resamples=300)
    assert paired[0].estimate > 0 and paired[0].low > 0


def test_same_seed_same_interval_and_different_photos_are_refused():
    matches = photo_matches(_photos(50, seed=5, skill=0.6), "rumah123")
    assert bootstrap_ap50([matches], resamples=100, seed=7) == bootstrap_ap50([matches], resamples=100, seed=7)
    other = photo_matches(_photos(52, seed=5, skill=0.6), "rumah123")
    with pytest.raises(ValueError, match="same photos"):
        bootstrap_ap50([matches, other], resamples=10)


def test_layouts_keep_clean_photos_in_both_and_subset_scores_like_those_photos_alone():
    tiled_marks = [(x, 20.0, x + 60.0, 40.0) for x in (0.0, 100.0, 200.0)]
    tiled = Example(
        Item(
            sha256="tiled",
            path="images/tiled.jpg",
            width=480,
            height=640,
            brand="rumah123",
            boxes=[Box("rumah123", box) for box in tiled_marks],
        ),
        Prediction(480, 640, tuple(Detection("rumah123", 0.3, box) for box in tiled_marks)),
    )
    photos = [*_photos(20, seed=6, skill=0.6), tiled]
    matches = photo_matches(photos, "rumah123")
    layouts = matches.layouts()
    clean = matches.truths == 0
    assert layouts["one mark"][clean].all() and layouts["repeated marks"][clean].all()
    assert layouts["repeated marks"].tolist() == (matches.truths != 1).tolist()
    assert not layouts["one mark"][-1] and layouts["repeated marks"][-1]
    single = [photo for photo, keep in zip(photos, layouts["one mark"], strict=True) if keep]
    expected = evaluate_examples(single, ["rumah123"], 0.5)["per_brand"]["rumah123"]["ap50"]
    assert matches.subset(layouts["one mark"]).ap50() == pytest.approx(expected)
    assert matches.subset(layouts["one mark"]).ap50() != pytest.approx(matches.ap50())
