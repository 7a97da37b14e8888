"""Error analysis: every labelled box lands in the right cause, and false alarms are listed."""

from __future__ import annotations

import numpy as np
from PIL import Image

from training.error_analysis import SHEET_TILE, box_outcomes, cause_table, false_alarms, miss_sheet, size_bucket
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
