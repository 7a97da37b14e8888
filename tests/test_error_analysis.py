"""Error analysis: every labelled box lands in the right cause, and false alarms are listed."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from training.error_analysis import (
    SHEET_TILE,
    ap_budget,
    box_outcomes,
    cause_table,
    false_alarms,
    median_scores,
    miss_sheet,
    shape_bucket,
    size_bucket,
)
from training.evaluate import Example
from wmstudio.data.manifest import Box, Item
from wmstudio.runtime import Detection, Prediction

pytestmark = pytest.mark.unit

MARK = [100.0, 100.0, 300.0, 140.0]  # 40 px high on a 640 px photo: 6%, "medium"


def _example(name: str, boxes: list[Box], candidates: list[Detection]) -> Example:
    brand = boxes[0].brand if boxes else None
    item = Item(sha256=name, path=f"images/{name}.jpg", width=480, height=640, brand=brand, boxes=boxes)
    return Example(item, Prediction(480, 640, tuple(candidates)))


def test_each_labelled_box_gets_one_cause():
    examples = [
        _example("found", [Box("rumah123", MARK)], [Detection("rumah123", 0.9, tuple(MARK))]),
        _example("low", [Box("rumah123", MARK)], [Detection("rumah123", 0.2, tuple(MARK))]),
        _example(
            "swapped",
            [Box("99co", MARK)],
            [Detection("rumah123", 0.7, tuple(MARK)), Detection("99co", 0.1, tuple(MARK))],
        ),
        # the right brand above threshold but elsewhere in the photo is still a miss of this box
        _example("elsewhere", [Box("99co", MARK)], [Detection("99co", 0.9, (0.0, 500.0, 100.0, 540.0))]),
    ]
    causes = {o.path: o.cause for o in box_outcomes(examples, threshold=0.5)}
    assert causes == {
        "images/found.jpg": "found",
        "images/low.jpg": "low score",
        "images/swapped.jpg": "wrong brand",
        "images/elsewhere.jpg": "not found",
    }
    rows = {(brand, size): counts for brand, size, _, counts in cause_table(box_outcomes(examples, 0.5))}
    assert rows[("rumah123", "medium (5-9%)")] == {"found": 1, "low score": 1, "wrong brand": 0, "not found": 0}
    by_shape = {(b, group): counts for b, group, _, counts in cause_table(box_outcomes(examples, 0.5), "shape")}
    assert by_shape[("99co", "single long (>=5)")] == {"found": 0, "low score": 0, "wrong brand": 1, "not found": 1}
    # the median of each box's best same-place score: 0.9 and 0.2 for Rumah123, 0.7 and 0 for 99.co
    medians = median_scores(box_outcomes(examples, 0.5))
    assert medians == {("rumah123", "medium (5-9%)"): 0.55, ("99co", "medium (5-9%)"): 0.35}


def test_shape_and_layout_tell_stacked_logos_and_tiled_photos_apart():
    stacked = [100.0, 100.0, 150.0, 140.0]  # 50 x 40: an icon above a word
    tiled = _example("tiled", [Box("99co", MARK), Box("99co", stacked)], [Detection("99co", 0.9, tuple(MARK))])
    single = _example("single", [Box("99co", stacked)], [])
    outcomes = box_outcomes([tiled, single], threshold=0.5)
    assert [(o.layout, o.shape, o.cause) for o in outcomes] == [
        ("tiled", "long (>=5)", "found"),
        ("tiled", "stacked (w/h<1.6)", "not found"),
        ("single", "stacked (w/h<1.6)", "not found"),
    ]
    assert shape_bucket([0, 0, 400, 100]) == "wordmark (3-5)"


def test_size_buckets_follow_the_mark_height_share():
    assert size_bucket(20, 640).startswith("small")
    assert size_bucket(40, 640).startswith("medium")
    assert size_bucket(80, 640).startswith("large")


def test_false_alarms_only_count_photos_without_a_brand_mark():
    examples = [
        _example("negative-alarm", [], [Detection("99co", 0.8, (0.0, 0.0, 50.0, 20.0))]),
        _example("negative-quiet", [], [Detection("99co", 0.2, (0.0, 0.0, 50.0, 20.0))]),
        _example("positive", [Box("rumah123", MARK)], [Detection("rumah123", 0.9, tuple(MARK))]),
    ]
    assert false_alarms(examples, threshold=0.5) == [("images/negative-alarm.jpg", "99co", 0.8)]


def test_miss_sheet_draws_each_missed_box_and_nothing_when_all_are_found(tmp_path):
    for name in ("found", "low", "lost"):
        (tmp_path / "images").mkdir(exist_ok=True)
        Image.new("RGB", (480, 640), (90, 90, 90)).save(tmp_path / "images" / f"{name}.jpg")
    examples = [
        _example("found", [Box("rumah123", MARK)], [Detection("rumah123", 0.9, tuple(MARK))]),
        _example("low", [Box("rumah123", MARK)], [Detection("rumah123", 0.2, tuple(MARK))]),
        _example("lost", [Box("99co", MARK)], []),
    ]
    items = [(example.item, tmp_path) for example in examples]
    outcomes = box_outcomes(examples, threshold=0.5)
    sheet_path = miss_sheet(outcomes, examples, items, 0.5, tmp_path / "out" / "misses.png")
    sheet = np.asarray(Image.open(sheet_path))
    assert sheet.shape[0] == SHEET_TILE, "two misses fit one row"
    yellow = (sheet[..., 0] > 200) & (sheet[..., 1] > 200) & (sheet[..., 2] < 80)
    left, right = yellow[:, :SHEET_TILE].any(), yellow[:, SHEET_TILE : 2 * SHEET_TILE].any()
    assert left and right, "each missed box is outlined on its tile"
    assert not yellow[:, 2 * SHEET_TILE :].any(), "the found box gets no tile"
    found_only = [o for o in outcomes if o.cause == "found"]
    assert miss_sheet(found_only, examples, items, 0.5, tmp_path / "none.png") is None


def test_ap_budget_splits_the_loss_between_unproposed_marks_and_false_candidates():
    other = Item(
        sha256="other", path="images/other.jpg", width=480, height=640, brand=None, boxes=[], notes=["other_mark"]
    )
    examples = [
        # found at 0.9, plus a duplicate box on the same mark at 0.3 (a false candidate near the mark)
        _example(
            "found",
            [Box("99co", MARK)],
            [Detection("99co", 0.9, tuple(MARK)), Detection("99co", 0.3, (110.0, 100.0, 310.0, 140.0))],
        ),
        _example("never-proposed", [Box("99co", MARK)], []),
        # another agency's mark taken for the brand, ranked above the hit; a 0.05 candidate is below the floor
        Example(
            other,
            Prediction(
                480, 640, (Detection("99co", 0.95, (0.0, 0.0, 50.0, 20.0)), Detection("99co", 0.05, (60.0, 0, 90, 20)))
            ),
        ),
    ]
    budget = ap_budget(examples, "99co", score_floor=0.1)
    assert budget.boxes == 2
    assert budget.ceiling == 0.5  # one of the two marks is hit by some candidate
    assert 0 < budget.ap50 < budget.ceiling  # the 0.95 false alarm outranks the only hit
    assert budget.false_candidates == {
        "near a mark of the brand": 1,
        "on the other brand's mark": 0,
        "photo with another agency's mark": 1,
        "elsewhere": 0,
    }
    assert ap_budget(examples, "rumah123").boxes == 0
