"""The input-size trial runs the same weights at another size without touching the registry."""

from __future__ import annotations

import json

import pytest

from experiments.input_size import copy_at_size
from tests.conftest import photo, untrained_version
from wmstudio.registry import Registry
from wmstudio.runtime import Detector

pytestmark = pytest.mark.model


def test_copy_at_another_size_reexports_and_predicts(tmp_path):
    source = untrained_version(tmp_path / "registry" / "v1", 64)  # the bundled champion ships no weights
    before = (source / "model.onnx").read_bytes()
    trained_size = json.loads((source / "model_card.json").read_text())["imgsz"]

    folder = copy_at_size(source, 96, tmp_path)

    detector = Detector.from_version_dir(folder)
    assert detector.imgsz == 96 != trained_size
    assert detector.session.get_inputs()[0].shape[2:] == [96, 96]
    prediction = detector.predict(photo(800, 600))
    assert (prediction.width, prediction.height) == (800, 600)
    assert (source / "model.onnx").read_bytes() == before  # the registry's own copy is untouched
    assert not (folder / "evaluation").exists()


def test_copy_at_the_trained_size_keeps_the_onnx(tmp_path, bundled_registry):
    source = Registry(bundled_registry).champion_path()
    size = json.loads((source / "model_card.json").read_text())["imgsz"]
    folder = copy_at_size(source, size, tmp_path)
    assert (folder / "model.onnx").read_bytes() == (source / "model.onnx").read_bytes()
