"""The network in int8 (issue #30): quantized where it is cheap, float where it matters, rebuildable.

The served file of an int8 version is what ``wmstudio train --warm-start`` rebuilds PyTorch weights
from on a fresh clone, so its weights must dequantize to (nearly) the float network's, and the
parts kept in float must be left exactly as they were.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image

from tests.conftest import textured_photos, untrained_version
from wmstudio.brands import BRANDS
from wmstudio.registry import Registry
from wmstudio.runtime import Detector
from wmstudio.runtime.text_reading import TextRescoring

torch = pytest.importorskip("torch")

from training.onnx_weights import onnx_parameters, rebuild_weights  # noqa: E402
from training.quantize import FLOAT_PARTS, is_quantized, quantize_network  # noqa: E402
from training.text_stage import register_text_stage  # noqa: E402

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def float_and_int8(tmp_path_factory) -> tuple[Path, Path, list[Path]]:
    root = tmp_path_factory.mktemp("int8")
    folder = untrained_version(root / "v1", imgsz=64)
    photos = textured_photos(root / "photos", 4)
    return folder / "model.onnx", quantize_network(folder / "model.onnx", root / "int8.onnx", photos, 64), photos


def test_the_quantized_file_keeps_its_float_parts_and_dequantizes_to_the_float_weights(float_and_int8):
    float_file, int8_file, _ = float_and_int8
    assert is_quantized(int8_file) and not is_quantized(float_file)
    assert int8_file.stat().st_size < 0.6 * float_file.stat().st_size
    before, after = onnx_parameters(float_file), onnx_parameters(int8_file)
    convolutions = [name for name in before if name.startswith("model.") and name.endswith(".weight")]
    kept = [name for name in convolutions if f"/{name.split('.')[0]}.{name.split('.')[1]}/" in FLOAT_PARTS]
    rounded = [name for name in convolutions if name not in kept]
    assert kept and rounded
    for name in kept:  # the first convolution, the attention block and the head are untouched
        assert torch.equal(after[name], before[name]), name
    for name in rounded:  # int8 per output channel: off by at most half a step of the channel's scale
        step = before[name].abs().flatten(1).max(dim=1).values / 127
        error = (after[name] - before[name]).abs().flatten(1).max(dim=1).values
        assert bool((error <= step * 0.51 + 1e-6).all()), name
    assert any(not torch.equal(after[name], before[name]) for name in rounded)  # the weights are int8


def test_the_quantized_network_runs_with_a_free_batch_and_rebuilds(float_and_int8, tmp_path):
    float_file, int8_file, photos = float_and_int8
    session = ort.InferenceSession(str(int8_file), providers=["CPUExecutionProvider"])
    batch = np.random.default_rng(0).random((3, 3, 64, 64), dtype=np.float32)
    got = session.run(None, {session.get_inputs()[0].name: batch})[0]
    expected = ort.InferenceSession(str(float_file), providers=["CPUExecutionProvider"]).run(None, {"images": batch})[0]
    assert got.shape == expected.shape and np.abs(got[:, 4:] - expected[:, 4:]).max() < 0.05
    out = rebuild_weights(int8_file, "yolo11n.yaml", BRANDS, 64, photos, tmp_path / "rebuilt.pt")
    assert out.stat().st_size > 1_000_000  # a warm start from an int8 champion has weights to train on
    with pytest.raises(ValueError, match="train photos"):
        quantize_network(float_file, tmp_path / "none.onnx", [], 64)


def test_text_stage_quantizes_instead_of_copying_and_refuses_twice(float_and_int8, tmp_path):
    _, _, photos = float_and_int8
    root = tmp_path / "models"
    untrained_version(root / "v1", imgsz=64)
    (root / "registry.json").write_text(json.dumps({"champion": "v1", "history": []}))
    registry = Registry(root)
    version = register_text_stage(registry, "v1", TextRescoring(spot=0.3), "v2", int8_calibration=photos)
    card = registry.card(version)
    assert is_quantized(registry.path(version) / "model.onnx")
    assert card["quantized"]["calibration_photos"] == len(photos) and card["quantized"]["from"] == "v1"
    assert card["quantized"]["float_parts"] == list(FLOAT_PARTS)
    detector = Detector.from_version_dir(registry.path(version))
    photo = Image.open(photos[0])
    assert detector.batched and detector.predict(photo).width == photo.width
    with pytest.raises(ValueError, match="already int8"):
        register_text_stage(registry, "v2", TextRescoring(spot=0.3), "v3", int8_calibration=photos)
    assert not (root / "v3").exists()
