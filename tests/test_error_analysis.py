"""Error analysis: every labelled box lands in the right cause, and false alarms are listed."""

from __future__ import annotations

from training.error_analysis import box_outcomes, cause_table, false_alarms, size_bucket
from training.evaluate import Example
from training.manifest import Box, Item
from wmstudio.runtime import Detection, Prediction

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
