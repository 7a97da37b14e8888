"""Registering a version's network with text rescoring as a new version."""

import json
import shutil

import pytest

from training.text_stage import register_text_stage
from wmstudio.registry import Registry
from wmstudio.runtime.text_reading import TextRescoring

pytestmark = pytest.mark.unit


def test_the_new_version_shares_the_network_and_carries_the_rescoring(tmp_path, bundled_registry):
    shutil.copytree(bundled_registry, tmp_path / "models")
    registry = Registry(tmp_path / "models")
    source = registry.champion()
    version = register_text_stage(registry, source, TextRescoring(boost=0.4, spot=0.3), version="v99")
    folder, origin = registry.path(version), registry.path(source)
    assert (folder / "model.onnx").read_bytes() == (origin / "model.onnx").read_bytes()
    card, source_card = registry.card(version), registry.card(source)
    assert card["version"] == "v99" and card["parent"] == source
    assert card["text_rescoring"]["boost"] == 0.4 and card["recipe"]["text_rescoring_from"] == source
    assert TextRescoring.from_card(card) == TextRescoring(boost=0.4, spot=0.3)
    assert card["metrics"] == {} and "threshold_rule" not in card  # its own release writes them
    assert card["classes"] == source_card["classes"] and card["imgsz"] == source_card["imgsz"]
    assert registry.champion() == source  # registering promotes nothing
    assert json.loads((folder / "model_card.json").read_text()) == card
