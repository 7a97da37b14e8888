"""Candidates are ranked on validation with the gate's metrics, never on test."""

from __future__ import annotations

import math

import pytest
from PIL import Image

from experiments.compare import COLUMNS, split_metrics
from training.build import build_synthetic, house_split
from wmstudio.gate import GateConfig, gate
from wmstudio.registry import Registry

pytestmark = pytest.mark.model


def test_split_metrics_reads_only_the_named_split(tmp_path, bundled_registry):
    houses = tmp_path / "houses"
    houses.mkdir()
    for house in range(330, 338):  # house ids in the validation share of house_split
        Image.new("RGB", (480, 360), (40 + house % 50, 90, 120)).save(houses / f"{house}_bedroom.png")
    assert {house_split(p) for p in houses.iterdir()} == {"val"}
    build_synthetic(tmp_path / "datasets" / "synthetic-s0", houses, counts={"val": 8}, seed=0)
    registry = Registry(bundled_registry)
    champion = registry.champion()

    metrics = split_metrics(registry, [champion], tmp_path, "val")

    values = metrics[champion]
    assert {key for key, _ in COLUMNS if "real" not in key} <= values.keys()  # no real data here: synthetic only
    assert all(0.0 <= values[key] <= 1.0 for key in values if not math.isnan(values[key]))
    decision = gate(values, values, GateConfig())  # against itself, only the missing real F1 can fail
    assert [c["name"] for c in decision.checks if not c["passed"]] == ["real_test_f1"]
    assert not (registry.path(champion) / "evaluation" / "val_synthetic.json").exists()  # scratch output only
