"""The ``python -m training.*`` and ``experiments.*`` scripts answer a user's mistake with one line, not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from wmstudio.registry import Registry

pytestmark = pytest.mark.model

SCRIPTS = [
    "experiments.bootstrap",
    "experiments.brand_thresholds",
    "training.error_analysis",
    "experiments.input_size",
    "experiments.multiscale",
    "experiments.operating_points",
    "experiments.panel_view",
    "experiments.report_table",
    "experiments.text_detector",
    "experiments.unread_alarms",
    "training.release",
]


def _run(script: str, state_dir, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", script, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "WMSTUDIO_STATE_DIR": str(state_dir)},  # no datasets there
    )


@pytest.mark.parametrize("script", SCRIPTS)
def test_scripts_name_an_unknown_version_without_a_traceback(script, tmp_path):
    done = _run(script, tmp_path, "v999")
    assert done.returncode == 1
    assert "'v999' is not in the registry" in done.stderr
    assert "Traceback" not in done.stderr


# report_table reads only the model card, so it needs no datasets.
@pytest.mark.parametrize("script", [script for script in SCRIPTS if script != "experiments.report_table"])
def test_scripts_say_how_to_get_missing_datasets(script, tmp_path, bundled_registry):
    done = _run(script, tmp_path, Registry(bundled_registry).champion())  # the state dir is seeded with it
    assert done.returncode == 1
    assert "wmstudio train" in done.stderr
    assert "Traceback" not in done.stderr


def test_report_table_prints_every_test_variant_of_the_champion(tmp_path, bundled_registry):
    """REPORT section 3's table comes from this command: one row per variant, both stages' figures."""
    champion = Registry(bundled_registry).champion()
    done = _run("experiments.report_table", tmp_path, champion, "--variants")  # seeded with the champion
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ") and not line.startswith("| variant")]
    variants = [row.split(" | ")[0].strip("| ") for row in rows if not row.startswith("| ---")]
    assert variants == ["original", "crop", "corner", "border", "frame", "thumbnail", "jpeg", "collage", "reshared"]
    assert all(row.count(";") == 4 for row in rows if not row.startswith("| ---"))  # pipeline; network, per column


def test_multiscale_refuses_a_size_the_network_cannot_take(tmp_path, bundled_registry):
    done = _run("experiments.multiscale", tmp_path, Registry(bundled_registry).champion(), "--sizes", "400")
    assert done.returncode == 2
    assert "multiples of 32" in done.stderr
    assert "Traceback" not in done.stderr


def test_soup_names_an_unknown_source_then_missing_datasets(tmp_path, bundled_registry):
    champion = Registry(bundled_registry).champion()
    weights = [tmp_path / "a.pt", tmp_path / "b.pt"]  # resolved (they exist) before the data is looked for
    for path in weights:
        path.touch()
    for sources, message in (
        (["v999", champion], "'v999' is not in the registry"),
        ([str(tmp_path / "missing.pt"), champion], "no weights file"),
        ([champion, str(weights[0])], "no PyTorch weights"),  # git carries the champion's ONNX file only
        ([str(path) for path in weights], "wmstudio train"),
    ):
        done = _run("experiments.soup", tmp_path, *sources)
        assert done.returncode == 1, done.stderr
        assert message in done.stderr
        assert "Traceback" not in done.stderr


def test_variant_finetune_names_an_unknown_source_then_missing_data(tmp_path, bundled_registry):
    done = _run("experiments.variant_finetune", tmp_path, "--source", "v999")
    assert done.returncode == 1 and "'v999' is not in the registry" in done.stderr, done.stderr
    done = _run("experiments.variant_finetune", tmp_path, "--source", Registry(bundled_registry).champion())
    assert done.returncode == 1 and "wmstudio train" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
