"""MLflow tracking, the model registry's champion alias, and what git carries of the models.

Against the real thing: MLflow's embedded SQLite store in a temporary state folder, the
``wmstudio`` CLI as a fresh process, and one real ``mlflow server`` process on 127.0.0.1.
(The short ``wmstudio train`` that creates a run with metrics and the ONNX artifact is in
tests/test_train_e2e.py, with the other trainings.)
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, encode, free_port, photo, run_cli, wait_for
from training.build import build_synthetic
from training.pipeline import default_dirs
from training.release import current_evaluation_data, evaluate_version
from training.synth.procedural import write_scenes
from wmstudio import mlflow_registry, tracking
from wmstudio.model_history import build_history, bundle, read_history
from wmstudio.registry import HISTORY_FILE, Registry
from wmstudio.settings import Settings

pytestmark = pytest.mark.integration

MODEL = "watermark-detector"


def _fake_registry(root: Path, versions: int) -> Registry:
    """Versions with the files a release leaves: ONNX, weights, card with metrics, evaluation files."""
    registry = Registry(root)
    for number in range(1, versions + 1):
        version = f"v{number}"
        card = {
            "version": version,
            "created": f"2026-12-0{number}T10:00:00+00:00",
            "parent": f"v{number - 1}" if number > 1 else None,
            "imgsz": 64,
            "threshold": 0.4 + number / 100,
            "data_version": "real+synth",
            "evaluation_data_version": "real+synth",
            "recipe": {"epochs": number, "synth": {"opacity": [0.25, 0.9]}},
            "metrics": {
                "val_f1": 0.5 + number / 10,
                "val_real_f1": 0.8,
                "val_synthetic_ap50": 0.9,
                "val_other_fp_rate": 0.01,
                "val_real_worst_variant": "crop",
            },
        }
        registry.write_card(version, card)
        (root / version / "model.onnx").write_bytes(b"onnx-" + version.encode() * 64)
        (root / version / "model.pt").write_bytes(b"weights-" + version.encode() * 64)
        evaluation = root / version / "evaluation"
        evaluation.mkdir()
        summary = {"other_mark_fp_rate": 0.0, "per_brand": {"rumah123": {"positives": 4, "f1": 0.75, "ap50": 0.8}}}
        report = {"thresholds": {"pipeline": 0.4}, "stages": {"pipeline": {"real": {"crop": summary}}}}
        (evaluation / "test.json").write_text(json.dumps(report))
        (evaluation / "test.md").write_text("| stage |\n")
        (evaluation / "test_f1.png").write_bytes(encode(photo(32, 32), "PNG"))
    return registry


def _env(settings: Settings) -> dict[str, str]:
    return {
        "WMSTUDIO_STATE_DIR": str(settings.state_dir),
        "WMSTUDIO_REGISTRY_DIR": str(settings.registry_dir),
        "WMSTUDIO_BUNDLED_MODELS_DIR": str(settings.bundled_models_dir),
        "WMSTUDIO_MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
    }


def _champion_tags(settings: Settings) -> dict[str, str]:
    return tracking.client(settings).get_model_version_by_alias(MODEL, "champion").tags


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(state_dir=tmp_path / "state", bundled_models_dir=tmp_path / "nothing-bundled")


# --- what git carries: the champion only, every version's figures, seeded on first use -----------


def test_git_carries_only_the_champion_without_weights_and_every_versions_figures(bundled_registry):
    registry = Registry(bundled_registry)
    champion = registry.champion()
    assert [p.name for p in bundled_registry.glob("v*") if p.is_dir()] == [champion]
    assert not list(bundled_registry.rglob("*.pt")), "weights stay in the state dir and MLflow"
    size = sum(p.stat().st_size for p in bundled_registry.rglob("*") if p.is_file())
    assert size < 15 * 1024 * 1024, f"bundled model is {size / 2**20:.1f} MiB"
    history = {entry["version"]: entry for entry in read_history(bundled_registry / HISTORY_FILE)}
    decided = {entry["version"] for entry in registry.history()}
    assert decided <= set(history), decided - set(history)  # every version a decision names
    card = registry.card(champion)
    assert history[champion]["metrics"] == card["metrics"] and history[champion]["champion"] is True
    assert history[champion]["threshold"] == card["threshold"]
    assert all(entry["decision"] for entry in history.values())
    assert sum(1 for entry in history.values() if entry.get("metrics")) >= 10, "earlier versions keep figures"


def test_a_fresh_state_dir_is_seeded_from_the_bundled_champion_and_predicts(tmp_path, bundled_registry):
    image = tmp_path / "photo.jpg"
    image.write_bytes(encode(photo(), "JPEG"))
    env = {"WMSTUDIO_STATE_DIR": str(tmp_path / "state"), "WMSTUDIO_BUNDLED_MODELS_DIR": str(bundled_registry)}
    clean = {key: value for key, value in os.environ.items() if key != "WMSTUDIO_REGISTRY_DIR"}
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "predict", str(image), "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=clean | env,
    )
    assert result.returncode == 0, result.stderr
    champion = Registry(bundled_registry).champion()
    assert json.loads(result.stdout)["model_version"] == champion
    seeded = tmp_path / "state" / "models"
    assert json.loads((seeded / "registry.json").read_text())["champion"] == champion
    bundled_onnx = bundled_registry / champion / "model.onnx"
    assert (seeded / champion / "model.onnx").read_bytes() == bundled_onnx.read_bytes()
    assert (seeded / HISTORY_FILE).exists() and not list(seeded.rglob("*.pt"))
    shown = run_cli("models", "history", env=env | {"COLUMNS": "200"})
    assert shown.returncode == 0 and f"{champion} *" in shown.stdout and "v26" in shown.stdout, shown.stderr
    # an existing registry is never overwritten by the bundled one
    (seeded / "registry.json").write_text(json.dumps({"champion": champion, "history": []}))
    Registry.from_settings(Settings(state_dir=tmp_path / "state", bundled_models_dir=bundled_registry))
    assert json.loads((seeded / "registry.json").read_text())["history"] == []


def test_bundle_ships_a_new_champion_and_keeps_the_old_ones_figures(tmp_path):
    working = _fake_registry(tmp_path / "working", 3)
    working.promote("v1", "first")
    bundled = tmp_path / "models"
    assert bundle(working, bundled) == "v1"
    working.promote("v3", "better on validation")
    working.reject("v2", tmp_path / "rejected", "lost")
    assert bundle(working, bundled) == "v3"
    assert sorted(p.name for p in bundled.glob("v*")) == ["v3"] and not list(bundled.rglob("*.pt"))
    assert (bundled / "v3" / "model.onnx").exists() and (bundled / "v3" / "evaluation" / "test.json").exists()
    history = {entry["version"]: entry for entry in read_history(bundled / HISTORY_FILE)}
    assert set(history) == {"v1", "v2", "v3"}
    assert history["v2"]["decision"] == "reject" and history["v2"]["metrics"]["val_f1"] == pytest.approx(0.7)
    assert history["v3"]["champion"] and not history["v1"]["champion"]
    assert Registry(bundled).champion() == "v3"
    # the rebuilt history of the bundled folder alone still knows every version
    rebuilt = build_history(Registry(bundled), read_history(bundled / HISTORY_FILE))
    assert {entry["version"] for entry in rebuilt} == set(history)


# --- runs and the model registry in the embedded store ---------------------------------------------


def test_release_logs_a_run_and_cli_decisions_move_the_champion_alias(tmp_path, settings):
    registry = _fake_registry(settings.registry_dir, 3)
    for version in registry.versions():
        ids = tracking.log_release(registry, version, settings)
        assert ids and registry.card(version)["mlflow"] == ids
    mlflow = tracking.client(settings)
    run = mlflow.get_run(registry.card("v2")["mlflow"]["run_id"])
    assert run.data.metrics["val_f1"] == pytest.approx(0.7) and run.data.metrics["threshold"] == pytest.approx(0.42)
    assert run.data.metrics["test.pipeline.real.crop.rumah123.f1"] == pytest.approx(0.75)  # per variant and brand
    assert run.data.tags["val_real_worst_variant"] == "crop" and run.data.params["synth.opacity"] == "[0.25, 0.9]"
    assert run.info.status == "FINISHED" and run.info.artifact_uri.startswith(settings.mlflow_artifacts_dir.as_uri())
    artifacts = {a.path for a in mlflow.list_artifacts(run.info.run_id, "model")}
    assert artifacts == {"model/model.onnx", "model/model_card.json"}
    assert {a.path for a in mlflow.list_artifacts(run.info.run_id, "weights")} == {"weights/model.pt"}
    evaluation = {a.path for a in mlflow.list_artifacts(run.info.run_id, "evaluation")}
    assert evaluation == {"evaluation/test.json", "evaluation/test.md", "evaluation/test_f1.png"}

    env = _env(settings)
    # decisions by hand, past the gate where they must be (v1 and v2 score under v3)
    for args in (["promote", "v1", "--reason", "first", "--force"], ["promote", "v2", "--reason", "better"]):
        result = run_cli("models", *args, env=env)
        assert result.returncode == 0, result.stderr
    assert _champion_tags(settings) | {"decided": ""} == {
        "wmstudio_version": "v2",
        "status": "champion",
        "reason": "better",
        "data_version": "real+synth",
        "decided": "",
    }
    first = tracking.model_version(mlflow, settings, "v1")
    assert first.tags["status"] == "retired" and first.aliases == []

    rejected = run_cli("models", "reject", "v3", "--reason", "worse on crops", env=env)
    assert rejected.returncode == 0, rejected.stderr
    third = tracking.model_version(mlflow, settings, "v3")
    assert third.tags["status"] == "rejected" and third.tags["reason"] == "worse on crops"
    assert mlflow.get_run(third.run_id).data.tags["decision.status"] == "rejected"

    rolled = run_cli("models", "rollback", "--reason", "alarms in production", env=env)
    assert rolled.returncode == 0, rolled.stderr
    assert _champion_tags(settings)["wmstudio_version"] == "v1"
    assert _champion_tags(settings)["reason"] == "alarms in production"
    assert tracking.model_version(mlflow, settings, "v2").tags["status"] == "retired"
    assert registry.champion() == "v1"  # the folder registry (what serving reads) agrees

    # the weights of a version whose folder lost them come back from its MLflow run
    (registry.root / "v2" / "model.pt").unlink()
    weights = mlflow_registry.warm_start_weights(registry, "v2", settings)
    assert weights.read_bytes() == b"weights-" + b"v2" * 64

    links = mlflow_registry.ui_links(registry.card("v2"), settings)
    assert links["run"] == f"http://127.0.0.1:5000/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"
    assert links["model version"].endswith(f"/#/models/{MODEL}/versions/2")


def test_sync_backfills_the_bundled_champion_and_every_earlier_version(tmp_path, bundled_registry):
    settings = Settings(state_dir=tmp_path / "state", bundled_models_dir=bundled_registry)
    env = _env(settings)
    result = run_cli("models", "sync-mlflow", env=env)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    champion = Registry(bundled_registry).champion()
    history = read_history(bundled_registry / HISTORY_FILE)
    assert summary["imported"] == [champion] and summary["champion"] == champion
    assert sorted(summary["history_runs"]) == sorted(e["version"] for e in history if e["version"] != champion)
    assert _champion_tags(settings)["wmstudio_version"] == champion
    mlflow = tracking.client(settings)
    experiment = tracking.experiment_id(mlflow, settings)
    earlier = next(e for e in history if e["version"] == "v26")
    [run] = mlflow.search_runs([experiment], "tags.wmstudio_version = 'v26'")
    assert run.data.tags["decision"] == earlier["decision"] and run.data.tags["wmstudio_kind"] == "history"
    assert run.data.metrics["real_test_f1"] == pytest.approx(earlier["metrics"]["real_test_f1"])
    again = json.loads(run_cli("models", "sync-mlflow", env=env).stdout)
    assert again["imported"] == [] and again["history_runs"] == []  # nothing is logged twice


def test_tracking_off_or_unreachable_never_costs_the_registry(tmp_path, monkeypatch):
    off = Settings(state_dir=tmp_path / "off", bundled_models_dir=tmp_path / "none", mlflow_enabled=False)
    registry = _fake_registry(off.registry_dir, 1)
    assert tracking.log_release(registry, "v1", off) is None and "mlflow" not in registry.card("v1")
    down = Settings(
        state_dir=tmp_path / "down",
        bundled_models_dir=tmp_path / "none",
        mlflow_tracking_uri=f"http://127.0.0.1:{free_port()}",
    )
    registry = _fake_registry(down.registry_dir, 1)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    assert tracking.log_release(registry, "v1", down) is None
    mlflow_registry.tracked_registry(down).promote("v1", "server down")
    assert Registry(down.registry_dir).champion() == "v1" and "mlflow" not in registry.card("v1")


# --- a real MLflow server ------------------------------------------------------------------------


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[str]:
    """``mlflow server`` on 127.0.0.1 with a SQLite backend and proxied artifacts, as compose runs it."""
    port = free_port()
    log = (tmp_path / "mlflow-server.log").open("w")
    env = os.environ | {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port)),
            *("--workers", "1", "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}"),
            *("--artifacts-destination", str(tmp_path / "server-artifacts")),
        ],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its uvicorn workers go down with it (one process group)
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{url}/health", timeout=120)
        yield url
    except TimeoutError:
        pytest.fail((tmp_path / "mlflow-server.log").read_text()[-3000:])
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


@pytest.mark.slow
def test_a_shared_mlflow_server_records_releases_and_decisions(tmp_path, mlflow_server):
    settings = Settings(
        state_dir=tmp_path / "state", bundled_models_dir=tmp_path / "none", mlflow_tracking_uri=mlflow_server
    )
    registry = _fake_registry(settings.registry_dir, 2)
    for version in registry.versions():
        assert tracking.log_release(registry, version, settings)
    env = _env(settings) | {"MLFLOW_TRACKING_URI": mlflow_server}  # MLflow's own variable works too
    del env["WMSTUDIO_MLFLOW_TRACKING_URI"]
    for version in ("v1", "v2"):
        result = run_cli("models", "promote", version, "--reason", f"{version} on the server", "--force", env=env)
        assert result.returncode == 0, result.stderr
    synced = run_cli("models", "sync-mlflow", env=env)
    assert synced.returncode == 0, synced.stderr
    assert json.loads(synced.stdout)["tracking_uri"] == mlflow_server  # stdout is the JSON alone
    assert _champion_tags(settings)["wmstudio_version"] == "v2"
    assert _champion_tags(settings)["reason"] == "v2 on the server"
    mlflow = tracking.client(settings)
    run = mlflow.get_run(registry.card("v2")["mlflow"]["run_id"])
    assert run.info.artifact_uri.startswith("mlflow-artifacts:"), "artifacts go through the server"
    served = {a.path for a in mlflow.list_artifacts(run.info.run_id, "model")}
    assert served == {"model/model.onnx", "model/model_card.json"}
    assert (tmp_path / "server-artifacts").is_dir() and not (settings.state_dir / "mlartifacts").exists()
    assert not (settings.state_dir / "mlflow.db").exists(), "nothing went to the embedded store"
    (registry.root / "v1" / "model.pt").unlink()
    assert mlflow_registry.warm_start_weights(registry, "v1", settings).read_bytes() == b"weights-" + b"v1" * 64
    assert mlflow_registry.ui_links(registry.card("v1"), settings)["run"].startswith(f"{mlflow_server}/#/experiments/")


def test_promote_runs_the_validation_gate_and_force_records_why(tmp_path):
    settings = Settings(state_dir=tmp_path / "state", bundled_models_dir=tmp_path / "none")
    registry = _fake_registry(settings.registry_dir, 2)
    registry.promote("v2", "the better one")
    env = _env(settings)
    refused = run_cli("models", "promote", "v1", "--reason", "by hand", env=env)  # v1's validation F1 is lower
    said = " ".join(refused.stderr.split())
    assert refused.returncode == 2 and "Traceback" not in said, refused.stderr
    assert "fails the promotion gate against v2" in said and "val_f1 0.6 vs 0.7" in said and "--force" in said
    assert Registry(settings.registry_dir).champion() == "v2"
    forced = run_cli("models", "promote", "v1", "--reason", "by hand", "--force", env=env)
    assert forced.returncode == 0, forced.stderr
    latest = Registry(settings.registry_dir).history()[-1]
    assert latest["version"] == "v1" and latest["reason"].startswith("by hand (forced past the gate: val_f1")
    again = run_cli("models", "promote", "v2", "--reason", "back", env=env)  # passes the gate over v1
    assert again.returncode == 0 and Registry(settings.registry_dir).champion() == "v2", again.stderr


def test_promote_does_not_compare_figures_measured_on_other_validation_data(tmp_path):
    # Synthetic validation photos are rendered with the machine's fonts: another machine's are others.
    settings = Settings(state_dir=tmp_path / "state", bundled_models_dir=tmp_path / "none")
    registry = _fake_registry(settings.registry_dir, 2)
    registry.promote("v1", "first")
    card = registry.card("v2")
    registry.write_card("v2", card | {"evaluation_data_version": "other+machine"})
    refused = run_cli("models", "promote", "v2", "--reason", "by hand", env=_env(settings))
    said = " ".join(refused.stderr.split())
    assert refused.returncode == 2 and "Traceback" not in said, refused.stderr
    assert "validation data: v2 was measured on other+machine, v1 on real+synth" in said  # v2's F1 is higher
    assert Registry(settings.registry_dir).champion() == "v1"
    listed = run_cli("models", "list", env=_env(settings))
    assert listed.returncode == 0 and "other+machine" in listed.stdout and "real+synth" in listed.stdout


@pytest.mark.slow
def test_promote_re_measures_the_champion_on_the_data_the_challenger_was_measured_on(tmp_path, bundled_registry):
    settings = Settings(state_dir=tmp_path / "state", bundled_models_dir=tmp_path / "none")
    real_dir, synthetic_dir = default_dirs(settings.state_dir / "datasets")
    scenes = write_scenes(tmp_path / "scenes", 6, seed=1, size=(320, 240))
    build_synthetic(synthetic_dir, None, counts={"val": 6}, seed=3, extra_backgrounds=scenes)
    shutil.copytree(synthetic_dir, real_dir)  # the tiny set stands in for the listings too
    here = current_evaluation_data(settings.state_dir)
    registry = Registry(settings.registry_dir)
    champion = Registry(bundled_registry).champion()
    card = Registry(bundled_registry).card(champion)
    for version in ("v1", "v2"):
        shutil.copytree(bundled_registry / champion, settings.registry_dir / version)
        registry.write_card(version, card | {"version": version, "evaluation_data_version": here})
    released = evaluate_version(registry, "v2", settings.state_dir, "val", tmp_path / "v2-val", recalibrate=True)
    measured, threshold = released["metrics"], released["thresholds"]["pipeline"]
    registry.write_card("v2", registry.card("v2") | {"metrics": measured, "threshold": threshold})
    # v1's card: higher figures from another machine's validation photos, and a threshold chosen
    # there that this data's rule would not pick (at it the same network would score otherwise)
    other = 0.01 if threshold > 0.5 else 0.95
    registry.write_card("v1", card | {"version": "v1", "evaluation_data_version": "other+machine"})
    registry.write_card("v1", registry.card("v1") | {"metrics": measured | {"val_f1": 0.99}, "threshold": other})
    at_its_own = evaluate_version(registry, "v1", settings.state_dir, "val", tmp_path / "v1-val")
    assert at_its_own["thresholds"]["pipeline"] == other and at_its_own["metrics"] != measured
    registry.promote("v1", "first")
    promoted = run_cli("models", "promote", "v2", "--reason", "same network", env=_env(settings))
    assert promoted.returncode == 0, promoted.stderr
    assert "re-measuring v1" in promoted.stderr and Registry(settings.registry_dir).champion() == "v2"
    report = json.loads((settings.state_dir / "gate" / "v1-for-v2" / "evaluate_val.json").read_text())
    assert report["data_version"] == here and report["recalibrated"] and report["card_threshold"] == other
    # the same network on the same data, its threshold by the same rule: the same figures
    assert report["thresholds"]["pipeline"] == threshold and report["metrics"] == measured
    with pytest.raises(ValueError, match="only validation"):
        evaluate_version(registry, "v1", settings.state_dir, "test", tmp_path / "v1-test", recalibrate=True)
