"""A tiny end-to-end run in seconds: synthesise → train → export → register → predict."""

from __future__ import annotations

import json
import logging

import pytest
import yaml
from PIL import Image

from experiments import multiscale
from tests.conftest import run_cli
from training.build import build_synthetic
from training.export import register_model
from training.pipeline import PreparedData
from training.synth.procedural import write_scenes
from training.train import TrainRecipe, base_model, train
from training.yolo_data import Source, write_yolo_dataset
from wmstudio.brands import BRANDS
from wmstudio.registry import Registry
from wmstudio.runtime import Detector

pytestmark = pytest.mark.model


@pytest.mark.slow
def test_tiny_train_export_predict(tmp_path, caplog, monkeypatch):
    pytest.importorskip("ultralytics")
    import torch
    from ultralytics import YOLO

    scenes = tmp_path / "scenes"
    backgrounds = write_scenes(scenes, 10, seed=1, size=(160, 120))
    manifest = build_synthetic(
        tmp_path / "synth", None, counts={"train": 16, "val": 6}, seed=2, extra_backgrounds=backgrounds
    )
    data_yaml = write_yolo_dataset([Source(manifest, tmp_path / "synth")], tmp_path / "yolo")
    recipe = TrainRecipe(epochs=1, time_hours=None, imgsz=64, batch=8)
    best = train(data_yaml, tmp_path / "runs" / "tiny", recipe)
    assert best.exists()

    registry = Registry(tmp_path / "models")
    version = register_model(registry, best, list(BRANDS), 64, 0.2, manifest.version(), recipe.to_dict())
    registry.promote(version, "tiny test")
    card = registry.card(version)
    assert card["classes"] == list(BRANDS) and card["imgsz"] == 64 and card["data_version"] == manifest.version()
    assert (registry.path(version) / "model.onnx").stat().st_size > 100_000

    detector = Detector.from_version_dir(registry.path(version))
    image_path = next((tmp_path / "synth" / "images" / "train").glob("*.jpg"))
    prediction = detector.predict(Image.open(image_path))
    assert prediction.width > 0 and all(0 <= d.score <= 1 for d in prediction.candidates)

    result = run_cli("predict", str(image_path), "--json", env={"WMSTUDIO_REGISTRY_DIR": str(registry.root)})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["model_version"] == version

    # the same network at a second input size: a new version with a dynamic ONNX file
    synth_dir = tmp_path / "synth"
    tiny_data = PreparedData(manifest, synth_dir, manifest, synth_dir, data_yaml)
    monkeypatch.setattr(multiscale, "default_data", lambda state_dir: tiny_data)
    tiny_val = {"synthetic": [(item, synth_dir) for item in manifest.split("val")]}
    monkeypatch.setattr(multiscale, "default_sets", lambda datasets_dir, split: tiny_val)
    trials = multiscale.compare_sizes(registry, version, (96, 128), tmp_path)
    assert [trial.sizes for trial in trials] == [(64,), (64, 96), (64, 128)]
    assert all(set(trial.ap50) == set(BRANDS) and 0 < trial.threshold < 1 for trial in trials)
    pooled_card = multiscale.register_multiscale(registry, version, (96,), tmp_path)
    assert pooled_card["extra_input_sizes"] == [96] and pooled_card["parent"] == version
    assert pooled_card["recipe"]["multiscale_from"] == version and 0 < pooled_card["threshold"] < 1
    pooled = Detector.from_version_dir(registry.path(pooled_card["version"]))
    assert pooled.input_sizes == (64, 96) and pooled.decode_size == 96
    assert pooled.predict(Image.open(image_path)).width == Image.open(image_path).width

    # warm start: the next version starts from this one's weights, classifier included
    import ultralytics.utils.torch_utils as torch_utils

    monkeypatch.setattr(torch_utils, "NUM_THREADS", torch_utils.NUM_THREADS)  # restored after the test
    threads_before = torch.get_num_threads()
    warm = TrainRecipe(
        epochs=1,
        time_hours=None,
        imgsz=64,
        batch=8,
        warm_start=str(registry.path(version) / "model.pt"),
        threads=2,  # `wmstudio train --threads 2`: both cores of an idle 2-core machine
        mosaic=0.0,  # `wmstudio train --mosaic 0`: the long-wordmark ablation
    )
    started = base_model(warm).model.state_dict()
    trained = YOLO(str(best)).model.state_dict()
    assert started.keys() == trained.keys()
    assert all(torch.equal(started[k].float(), trained[k].float()) for k in trained)
    with caplog.at_level(logging.INFO, logger="training.train"):
        try:
            assert train(data_yaml, tmp_path / "runs" / "warm", warm).exists()
            assert torch.get_num_threads() == 2  # Ultralytics' own choice (cores - 1) was overridden
        finally:
            torch.set_num_threads(threads_before)
    # the trainer itself must start from those weights, not rebuild the network from its YAML
    assert any("tensors carried over (100%)" in r.getMessage() for r in caplog.records), caplog.text
    # the recipe's mosaic probability reaches the trainer (its args.yaml is what it ran with)
    assert yaml.safe_load((tmp_path / "runs" / "tiny" / "args.yaml").read_text())["mosaic"] == 1.0
    assert yaml.safe_load((tmp_path / "runs" / "warm" / "args.yaml").read_text())["mosaic"] == 0.0
