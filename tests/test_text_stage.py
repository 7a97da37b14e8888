"""Registering a version's network with text rescoring as a new version."""

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from app.examples import synthetic_examples
from training.text_stage import register_text_stage
from wmstudio.registry import Registry
from wmstudio.runtime import Detector
from wmstudio.runtime.postprocess import iou_matrix
from wmstudio.runtime.text_reading import TextRescoring

pytestmark = pytest.mark.unit


def test_the_new_version_shares_the_network_and_carries_the_rescoring(tmp_path, bundled_registry):
    shutil.copytree(bundled_registry, tmp_path / "models")
    registry = Registry(tmp_path / "models")
    source = registry.champion()
    version = register_text_stage(registry, source, TextRescoring(boost=0.4, spot=0.3), version="v99")
    folder, origin = registry.path(version), registry.path(source)
    new, old = Detector.from_version_dir(folder), Detector.from_version_dir(origin)
    assert new.batched  # the copy's batch is freed, so the runtime can batch its extra looks
    tensor = np.random.default_rng(0).random((1, 3, new.imgsz, new.imgsz), dtype=np.float32)
    assert np.abs(new.raw(tensor) - old.raw(tensor)).max() <= 1e-4  # the same network
    card, source_card = registry.card(version), registry.card(source)
    assert card["version"] == "v99" and card["parent"] == source
    assert card["text_rescoring"]["boost"] == 0.4 and card["recipe"]["text_rescoring_from"] == source
    assert TextRescoring.from_card(card) == TextRescoring(boost=0.4, spot=0.3)
    assert card["metrics"] == {} and "threshold_rule" not in card  # its own release writes them
    assert card["classes"] == source_card["classes"] and card["imgsz"] == source_card["imgsz"]
    assert registry.champion() == source  # registering promotes nothing
    assert json.loads((folder / "model_card.json").read_text()) == card


def test_an_input_margin_travels_on_the_card_and_the_same_mark_is_found_in_place(tmp_path, bundled_registry):
    shutil.copytree(bundled_registry, tmp_path / "models")
    registry = Registry(tmp_path / "models")
    source = registry.champion()
    version = register_text_stage(registry, source, TextRescoring(spot=0.3), version="v99", input_margin=0.06)
    assert registry.card(version)["input_margin"] == 0.06 and "input_margin" not in registry.card(source)
    surrounded = Detector.from_version_dir(registry.path(version)).network_only()
    plain = Detector.from_version_dir(registry.path(source)).network_only()
    assert surrounded.describe()["input_margin"] == 0.06 and plain.input_margin == 0.0
    # the Rumah123 and the 99.co example (drawn in the machine's fonts): the one the network finds best
    paths = synthetic_examples(tmp_path / "examples")[:2]
    marked = [(Image.open(path).convert("RGB"), brand) for path, brand in zip(paths, ("rumah123", "99co"), strict=True)]
    image, brand = max(marked, key=lambda pair: plain.predict(pair[0]).brand_scores().get(pair[1], 0.0))
    ours, theirs = surrounded.predict(image).candidates[0], plain.predict(image).candidates[0]
    assert theirs.brand == brand and theirs.score >= 0.3, "the network alone missed both examples"
    assert ours.brand == theirs.brand and ours.score != theirs.score  # other pixels, same mark
    assert iou_matrix(np.asarray([ours.box]), np.asarray([theirs.box]))[0, 0] > 0.7  # mapped back to the photo
