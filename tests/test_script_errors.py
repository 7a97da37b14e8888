"""The ``python -m training.*`` scripts answer a user's mistake with one line, not a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.mark.parametrize(
    "script",
    ["compare", "error_analysis", "input_size", "operating_points", "report_table", "release"],
)
def test_scripts_name_an_unknown_version_without_a_traceback(script):
    done = subprocess.run(
        [sys.executable, "-m", f"training.{script}", "v999"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1
    assert "'v999' is not in the registry" in done.stderr
    assert "Traceback" not in done.stderr
