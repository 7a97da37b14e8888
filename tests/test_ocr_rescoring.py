"""The OCR rescoring experiment's text match and rescoring rule (no OCR engine needed)."""

import pytest

from experiments.ocr_rescoring import brand_similarity, rescored
from wmstudio.runtime import Detection, Prediction

pytestmark = pytest.mark.unit


def test_brand_similarity_tolerates_misreads_and_rejects_other_names():
    assert brand_similarity("rumahi23", "rumah123") >= 0.75
    assert brand_similarity("www.99.co/id", "99co") == 1.0
    assert brand_similarity("Ray White", "rumah123") < 0.6
    assert brand_similarity("", "99co") == 0.0


def test_rescored_boosts_matching_text_and_damps_other_confident_text():
    brand = Detection("rumah123", 0.5, (10.0, 10.0, 50.0, 20.0))
    other = Detection("99co", 0.5, (60.0, 60.0, 90.0, 70.0))
    unread = Detection("99co", 0.1, (0.0, 0.0, 5.0, 5.0))
    row = {
        "item": object(),
        "prediction": Prediction(100, 100, (brand, other, unread)),
        "reads": [
            {"box": brand.box, "brand": "rumah123", "text": "rumah123", "conf": 0.9},
            {"box": other.box, "brand": "99co", "text": "Century21", "conf": 0.95},
        ],
    }
    scores = [c.score for c in rescored(row, boost=0.5, damp=0.3, match=0.75).prediction.candidates]
    assert scores == pytest.approx([0.75, 0.35, 0.1])
