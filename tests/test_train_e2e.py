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
from wmstudio.settings import get_settings

pytestmark = pytest.mark.model


@pytest.fixture
def fresh_settings():
    """Settings re-read from the environment the test sets, and forgotten after it."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.mark.slow
def test_tiny_train_export_predict(tmp_path, caplog, monkeypatch, fresh_settings):
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
    monkeypatch.setenv("WMSTUDIO_STATE_DIR", str(tmp_path / "state"))  # the release's MLflow run goes here
    get_settings.cache_clear()
    trials = multiscale.compare_sizes(registry, version, (96, 128), tmp_path)
    assert [trial.sizes for trial in trials] == [(64,), (64, 96), (64, 128)]
    assert all(set(trial.ap50) == set(BRANDS) and 0 < trial.threshold < 1 for trial in trials)
    pooled_card = multiscale.register_multiscale(registry, version, (96,), tmp_path)
    assert pooled_card["extra_input_sizes"] == [96] and pooled_card["parent"] == version
    assert pooled_card["recipe"]["multiscale_from"] == version and 0 < pooled_card["threshold"] < 1
    assert pooled_card["mlflow"]["model_version"] == "1"  # released like any version: run + model version
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


@pytest.mark.slow
def test_wmstudio_train_creates_an_mlflow_run_and_promote_moves_the_champion_alias(
    tmp_path, monkeypatch, fresh_settings
):
    """`wmstudio train` (a one-epoch recipe on tiny data) is one MLflow run: recipe, data version,
    per-epoch and final metrics, plots, the ONNX file; the release registers the version and
    `wmstudio models promote` moves the `champion` alias. Embedded SQLite store in the state dir."""
    pytest.importorskip("ultralytics")
    from typer.testing import CliRunner

    import training.pipeline
    from cli.main import app
    from wmstudio import tracking

    backgrounds = write_scenes(tmp_path / "scenes", 10, seed=1, size=(160, 120))
    synth_dir = tmp_path / "synth"
    manifest = build_synthetic(
        synth_dir, None, counts={"train": 16, "val": 10, "test": 10}, seed=2, extra_backgrounds=backgrounds
    )
    data_yaml = write_yolo_dataset([Source(manifest, synth_dir)], tmp_path / "yolo")
    tiny = PreparedData(manifest, synth_dir, manifest, synth_dir, data_yaml)  # the tiny set stands in for both
    monkeypatch.setattr(training.pipeline, "prepare_default_data", lambda *args, **kwargs: tiny)
    env = {
        "WMSTUDIO_STATE_DIR": str(tmp_path / "state"),
        "WMSTUDIO_REGISTRY_DIR": str(tmp_path / "state" / "models"),
        "WMSTUDIO_BUNDLED_MODELS_DIR": str(tmp_path / "nothing-bundled"),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    try:
        args = ["train", "--hours", "0", "--epochs", "1", "--imgsz", "64", "--synth-train", "16", "--run-name", "tiny"]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output + repr(result.exception)
        settings = get_settings()
        registry = Registry(settings.registry_dir)
        assert registry.versions() == ["v1"]
        card = registry.card("v1")
        mlflow = tracking.client(settings)
        experiment = tracking.experiment_id(mlflow, settings)
        [run] = mlflow.search_runs([experiment], "tags.wmstudio_kind = 'train'")
        assert run.info.status == "FINISHED" and run.info.run_id == card["mlflow"]["run_id"]
        assert run.data.tags["wmstudio_version"] == "v1" and run.data.tags["data_version"] == card["data_version"]
        assert run.data.params["imgsz"] == "64" and run.data.params["epochs"] == "1"
        assert run.data.params["data_version"] == card["data_version"]
        epochs = mlflow.get_metric_history(run.info.run_id, "metrics/mAP50B")
        # per-epoch validation metrics from the trainer (then once more for best.pt's final validation)
        steps = [metric.step for metric in epochs]
        assert steps and steps[0] == 0 and steps == sorted(steps)
        assert "train/box_loss" in run.data.metrics and "lr/pg0" in run.data.metrics
        assert run.data.metrics["val_f1"] == pytest.approx(card["metrics"]["val_f1"])  # the release's figures
        assert card["evaluation_data_version"] == f"{manifest.version()}+{manifest.version()}"  # what the gate checks
        assert run.data.metrics["threshold"] == pytest.approx(card["threshold"])
        assert any(key.startswith("validation.pipeline.synthetic.") for key in run.data.metrics)  # per variant
        onnx = next(a for a in mlflow.list_artifacts(run.info.run_id, "model") if a.path == "model/model.onnx")
        assert onnx.file_size == (registry.path("v1") / "model.onnx").stat().st_size > 100_000
        training_files = {a.path for a in mlflow.list_artifacts(run.info.run_id, "training")}
        assert "training/results.csv" in training_files and any(p.endswith(".png") for p in training_files)
        evaluation = {a.path for a in mlflow.list_artifacts(run.info.run_id, "evaluation")}
        assert {"evaluation/validation.json", "evaluation/test.json", "evaluation/test_f1.png"} <= evaluation
        assert {a.path for a in mlflow.list_artifacts(run.info.run_id, "weights")} == {"weights/model.pt"}
        registered = tracking.model_version(mlflow, settings, "v1")
        assert registered.run_id == run.info.run_id and registered.tags["status"] == "candidate"

        promoted = run_cli("models", "promote", "v1", "--reason", "tiny test", env=env)
        assert promoted.returncode == 0, promoted.stderr
        champion = mlflow.get_model_version_by_alias(settings.mlflow_model_name, "champion")
        assert champion.version == registered.version and champion.tags["status"] == "champion"
        assert champion.tags["reason"] == "tiny test" and registry.champion() == "v1"
    finally:
        get_settings.cache_clear()
