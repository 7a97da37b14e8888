"""Warm starts on a fresh clone: the champion's weights rebuilt from its ONNX file (issue #30).

git carries the champion's ONNX file only; ``wmstudio train --warm-start champion`` and the
retraining loop rebuild ``model.pt`` from it. These tests check that the rebuilt network computes
what the ONNX file computes (in evaluation mode exactly, in training mode close), that another
network's file is refused, and that existing weights are used as they are.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import run_cli, textured_photos, untrained_version
from wmstudio.brands import BRANDS
from wmstudio.registry import Registry

torch = pytest.importorskip("torch")

from training.onnx_weights import (  # noqa: E402
    OnnxWeightsError,
    calibration_batch,
    largest_difference,
    module_path,
    rebuild_weights,
)
from training.pipeline import PreparedData  # noqa: E402
from training.warm_start import start_weights  # noqa: E402
from wmstudio.data.manifest import Item, Manifest  # noqa: E402

pytestmark = pytest.mark.model


def _load(path: Path) -> torch.nn.Module:
    return torch.load(path, weights_only=False)["model"].float().eval()


def test_rebuilt_weights_compute_what_the_onnx_file_computes(tmp_path):
    version = untrained_version(tmp_path / "v1", imgsz=64)
    photos = textured_photos(tmp_path / "photos")
    out = rebuild_weights(version / "model.onnx", "yolo11n.yaml", BRANDS, 64, photos, tmp_path / "r.pt")
    network = _load(out)
    batch = calibration_batch(photos, 64)
    assert largest_difference(network, version / "model.onnx", batch) < 1e-3
    # every batch norm is trainable again, with the statistics of the calibration photos
    norms = [m for m in network.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(norms) > 50 and all(float(m.running_var.mean()) != 1.0 for m in norms)
    # in training mode the batch's own statistics are used: on the calibration batch that is the identity
    with torch.no_grad():
        expected = network(batch)[0]
        for module in norms:
            module.train()
            module.momentum = 0.0
        got = network(batch)[0]
    assert float((got[:, 4:] - expected[:, 4:]).abs().max()) < 1e-3


def test_exported_node_names_map_to_module_paths():
    assert module_path("/model.0/conv/Conv") == "model.0.conv"
    assert module_path("/model.10/m/m.0/attn/pe/conv/Conv") == "model.10.m.0.attn.pe.conv"
    assert module_path("/model.23/cv3.0/cv3.0.0/cv3.0.0.0/conv/Conv") == "model.23.cv3.0.0.0.conv"


def test_the_bundled_champion_is_rebuilt_within_tolerance(tmp_path, bundled_registry):
    registry = Registry(bundled_registry)
    champion = registry.champion()
    card = registry.card(champion)
    out = rebuild_weights(
        bundled_registry / champion / "model.onnx",
        card["architecture"],
        card["classes"],
        card["imgsz"],
        textured_photos(tmp_path / "photos", 4),
        tmp_path / "champion.pt",
    )
    from ultralytics import YOLO

    loaded = YOLO(str(out))  # what a warm start loads
    assert loaded.model.names == dict(enumerate(card["classes"]))


def test_another_networks_onnx_file_is_refused(tmp_path):
    version = untrained_version(tmp_path / "v1", imgsz=64)
    with pytest.raises(OnnxWeightsError, match=r"(not a fused|shapes differ from) yolov8n\.yaml"):
        photos = textured_photos(tmp_path)
        rebuild_weights(version / "model.onnx", "yolov8n.yaml", BRANDS, 64, photos, tmp_path / "x.pt")
    with pytest.raises(OnnxWeightsError, match="at least one photo"):
        rebuild_weights(version / "model.onnx", "yolo11n.yaml", BRANDS, 64, [], tmp_path / "x.pt")


def _registry_with(tmp_path: Path, with_weights: bool) -> tuple[Registry, PreparedData]:
    root = tmp_path / "models"
    version = untrained_version(root / "v1", imgsz=64)
    card = json.loads((version / "model_card.json").read_text()) | {"architecture": "yolo11n.yaml"}
    (version / "model_card.json").write_text(json.dumps(card))
    if not with_weights:
        (version / "model.pt").unlink()
    (root / "registry.json").write_text(json.dumps({"champion": "v1", "history": []}))
    photos = textured_photos(tmp_path / "synthetic" / "images")
    manifest = Manifest(name="synthetic")
    for index, path in enumerate(photos):
        with Image.open(path) as image:
            size = image.size
        relative = str(path.relative_to(tmp_path / "synthetic"))
        manifest.add(Item(f"{index:064d}", relative, size[0], size[1], None, split="train"))
    data = PreparedData(Manifest(name="real"), tmp_path, manifest, tmp_path / "synthetic", Path())
    return Registry(root), data


def test_start_weights_rebuilds_missing_weights_once_and_keeps_existing_ones(tmp_path, monkeypatch):
    monkeypatch.setenv("WMSTUDIO_STATE_DIR", str(tmp_path / "state"))
    registry, data = _registry_with(tmp_path / "a", with_weights=False)
    rebuilt = start_weights(registry, "v1", data)
    assert rebuilt == registry.path("v1") / "model.pt" and rebuilt.stat().st_size > 1_000_000
    assert largest_difference(_load(rebuilt), registry.path("v1") / "model.onnx", torch.rand(1, 3, 64, 64)) < 1e-3
    registry, data = _registry_with(tmp_path / "b", with_weights=True)
    before = (registry.path("v1") / "model.pt").read_bytes()
    assert start_weights(registry, "v1", data).read_bytes() == before


def test_warm_start_without_a_champion_or_weights_file_is_a_clear_error(tmp_path):
    env = {"WMSTUDIO_STATE_DIR": str(tmp_path / "state"), "WMSTUDIO_BUNDLED_MODELS_DIR": str(tmp_path / "none")}
    (tmp_path / "none").mkdir()
    result = run_cli("train", "--warm-start", "champion", "--epochs", "1", env=env)
    said = " ".join(result.stderr.split())
    assert result.returncode == 2 and "Traceback" not in said, result.stderr
    assert "no champion yet" in said
    missing = run_cli("train", "--warm-start", str(tmp_path / "nope.pt"), env=env)
    assert missing.returncode == 2 and "no such weights file" in " ".join(missing.stderr.split())
