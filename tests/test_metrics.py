"""Metric code checked against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from training.metrics import ScoredBox, average_precision, matched_ious, precision_recall_f1
from wmstudio.runtime.postprocess import decode_yolo, iou_matrix, nms
from wmstudio.runtime.preprocess import letterbox

pytestmark = pytest.mark.unit


def test_perfect_detections_have_ap_one():
    truths = {0: np.array([[0, 0, 10, 10]]), 1: np.array([[5, 5, 20, 20]])}
    dets = [ScoredBox(0, 0.9, (0, 0, 10, 10)), ScoredBox(1, 0.8, (5, 5, 20, 20))]
    assert average_precision(dets, truths, 0.5) == pytest.approx(1.0)
    assert matched_ious(dets, truths) == [1.0, 1.0]


def test_false_positive_ranked_first_halves_precision():
    truths = {0: np.array([[0, 0, 10, 10]])}
    dets = [ScoredBox(0, 0.9, (50, 50, 60, 60)), ScoredBox(0, 0.8, (0, 0, 10, 10))]
    assert average_precision(dets, truths, 0.5) == pytest.approx(0.5, abs=0.01)


def test_missed_truth_caps_recall():
    truths = {0: np.array([[0, 0, 10, 10]]), 1: np.array([[0, 0, 10, 10]])}
    dets = [ScoredBox(0, 0.9, (0, 0, 10, 10))]
    assert average_precision(dets, truths, 0.5) == pytest.approx(51 / 101, abs=0.01)


def test_precision_recall_f1():
    truth = np.array([1, 1, 0, 0], dtype=bool)
    result = precision_recall_f1(truth, np.array([1, 0, 1, 0], dtype=bool))
    assert result["precision"] == 0.5 and result["recall"] == 0.5 and result["f1"] == 0.5


def test_iou_and_nms():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]], dtype=float)
    assert iou_matrix(boxes[:1], boxes[1:2])[0, 0] == pytest.approx(81 / 100)
    assert list(nms(boxes, np.array([0.9, 0.8, 0.7]), 0.5)) == [0, 2]


def test_letterbox_round_trip():
    from PIL import Image

    tensor, placement = letterbox(Image.new("RGB", (640, 320)), 320)
    assert tensor.shape == (1, 3, 320, 320)
    assert placement.scale == 0.5 and placement.pad_x == 0 and placement.pad_y == 80
    back = placement.to_original(np.array([[0, 80, 320, 240]]))
    assert back.tolist() == [[0, 0, 640, 320]]


def test_letterbox_margin_surrounds_the_photo_with_grey_and_maps_boxes_back():
    from PIL import Image

    tensor, placement = letterbox(Image.new("RGB", (640, 320), (255, 0, 0)), 320, margin=0.1)
    assert placement.scale == pytest.approx(0.4) and (placement.pad_x, placement.pad_y) == (32, 96)
    red = tensor[0, 0] == 1.0
    assert not red[:, :32].any() and not red[:, -32:].any() and red[96:224, 32:288].all()
    back = placement.to_original(np.array([[32, 96, 288, 224]]))
    assert back[0].tolist() == pytest.approx([0, 0, 640, 320])
    with pytest.raises(ValueError, match="margin"):
        letterbox(Image.new("RGB", (64, 64)), 320, margin=0.5)


def test_decode_yolo_converts_centres_and_filters():
    output = np.zeros((1, 6, 3), dtype=np.float32)
    output[0, :, 0] = [50, 50, 20, 10, 0.9, 0.1]
    output[0, :, 1] = [51, 50, 20, 10, 0.1, 0.6]  # overlaps the first: suppressed (class-agnostic)
    output[0, :, 2] = [200, 200, 10, 10, 0.05, 0.02]  # below threshold
    boxes, scores, classes = decode_yolo(output, 0.25)
    assert boxes.tolist() == [[40, 45, 60, 55]] and classes.tolist() == [0]
    assert scores.tolist() == pytest.approx([0.9])
