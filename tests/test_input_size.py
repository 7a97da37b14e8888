"""The input-size trial runs the same weights at another size without touching the registry."""

from __future__ import annotations

import json

import pytest

from experiments.input_size import copy_at_size
from tests.conftest import photo
from wmstudio.registry import Registry
from wmstudio.runtime import Detector

pytestmark = pytest.mark.model


def test_copy_at_another_size_reexports_and_predicts(tmp_path, bundled_registry):
    source = Registry(bundled_registry).champion_path()
    before = (source / "model.onnx").read_bytes()
    trained_size = json.loads((source / "model_card.json").read_text())["imgsz"]

    folder = copy_at_size(source, 256, tmp_path)

    detector = Detector.from_version_dir(folder)
    assert detector.imgsz == 256 != trained_size
    assert detector.session.get_inputs()[0].shape[2:] == [256, 256]
    prediction = detector.predict(photo(800, 600))
    assert (prediction.width, prediction.height) == (800, 600)
    assert (source / "model.onnx").read_bytes() == before  # the registry's own copy is untouched
    assert not (folder / "evaluation").exists()


def test_copy_at_the_trained_size_keeps_the_onnx(tmp_path, bundled_registry):
    source = Registry(bundled_registry).champion_path()
    size = json.loads((source / "model_card.json").read_text())["imgsz"]
    folder = copy_at_size(source, size, tmp_path)
    assert (folder / "model.onnx").read_bytes() == (source / "model.onnx").read_bytes()
