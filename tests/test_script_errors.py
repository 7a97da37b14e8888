"""The ``python -m training.*`` and ``experiments.*`` scripts answer a user's mistake with one line, not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.model

SCRIPTS = [
    "experiments.bootstrap",
    "training.error_analysis",
    "experiments.input_size",
    "experiments.multiscale",
    "experiments.operating_points",
    "experiments.report_table",
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
    done = _run(script, tmp_path, "v1")
    assert done.returncode == 1
    assert "wmstudio train" in done.stderr
    assert "Traceback" not in done.stderr


def test_multiscale_refuses_a_size_the_network_cannot_take(tmp_path, bundled_registry):
    done = _run("experiments.multiscale", tmp_path, "v1", "--sizes", "400")
    assert done.returncode == 2
    assert "multiples of 32" in done.stderr
    assert "Traceback" not in done.stderr


def test_soup_names_an_unknown_source_then_missing_datasets(tmp_path, bundled_registry):
    for sources, message in (
        (["v999", "v22"], "'v999' is not in the registry"),
        (["v22", str(tmp_path / "missing.pt")], "no weights file"),
        (["v21", "v22"], "wmstudio train"),
    ):
        done = _run("experiments.soup", tmp_path, *sources)
        assert done.returncode == 1, done.stderr
        assert message in done.stderr
        assert "Traceback" not in done.stderr
