"""``wmstudio predict`` and friends, run as a user would run them."""

from __future__ import annotations

import json

import pytest

from tests.conftest import encode, exif_rotated_jpeg, photo, run_cli

pytestmark = pytest.mark.model


def test_predict_json_schema(tmp_path, bundled_registry):
    good = tmp_path / "house.jpg"
    good.write_bytes(encode(photo(900, 600), "JPEG"))
    rotated = tmp_path / "rotated.jpg"
    rotated.write_bytes(exif_rotated_jpeg(640, 480))
    result = run_cli(
        "predict",
        str(good),
        str(rotated),
        "--json",
        "--min-score",
        "0.0",
        env={"WMSTUDIO_REGISTRY_DIR": str(bundled_registry)},
    )
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["file"] for r in records] == [str(good), str(rotated)]
    for record in records:
        assert set(record) == {"file", "watermarked", "detections", "model_version"}
        assert record["watermarked"] == bool(record["detections"])
        for detection in record["detections"]:
            assert set(detection) == {"brand", "score", "box"} and len(detection["box"]) == 4
    for detection in records[1]["detections"]:  # boxes in the upright (portrait) frame
        assert detection["box"][2] <= 480 and detection["box"][3] <= 640


def test_predict_uses_model_threshold_by_default(tmp_path, bundled_registry):
    image = tmp_path / "a.jpg"
    image.write_bytes(encode(photo(640, 480, seed=9), "JPEG"))
    env = {"WMSTUDIO_REGISTRY_DIR": str(bundled_registry)}
    default = json.loads(run_cli("predict", str(image), "--json", env=env).stdout)
    everything = json.loads(run_cli("predict", str(image), "--json", "--min-score", "0.01", env=env).stdout)
    card = json.loads((bundled_registry / default["model_version"] / "model_card.json").read_text())
    assert all(d["score"] >= card["threshold"] for d in default["detections"])
    assert len(everything["detections"]) >= len(default["detections"])


def test_predict_bad_file_is_reported_not_crashed(tmp_path, bundled_registry):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"nope")
    result = run_cli("predict", str(bad), "--json", env={"WMSTUDIO_REGISTRY_DIR": str(bundled_registry)})
    assert result.returncode == 1
    assert json.loads(result.stdout)["error"]["code"] == "not_an_image"
    assert "Traceback" not in result.stderr


def test_predict_without_model_is_a_clear_error(tmp_path):
    image = tmp_path / "a.jpg"
    image.write_bytes(encode(photo(), "JPEG"))
    # an empty registry is seeded from the bundled champion: with nothing bundled either, no model
    env = {"WMSTUDIO_REGISTRY_DIR": str(tmp_path / "empty"), "WMSTUDIO_BUNDLED_MODELS_DIR": str(tmp_path / "none")}
    result = run_cli("predict", str(image), env=env)
    assert result.returncode == 2 and "no model in the registry" in result.stderr
