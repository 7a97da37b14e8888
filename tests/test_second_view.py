"""The second view: the network again inside a grey surround on photos the first pass leaves undecided."""

import json
import shutil
import subprocess
import sys

import pytest
from PIL import Image

from app.examples import synthetic_examples
from experiments.second_view import with_second_view
from training.evaluate import Example
from training.text_stage import parsed_second_view, register_text_stage
from wmstudio.data.manifest import Item
from wmstudio.registry import Registry
from wmstudio.runtime import Detection, Detector, Prediction
from wmstudio.runtime.detector import ModelLoadError, pooled
from wmstudio.runtime.second_view import SecondView
from wmstudio.runtime.text_reading import TextRescoring

pytestmark = pytest.mark.unit


def test_the_band_decides_which_photos_get_a_second_look():
    view = SecondView((0.08,), 0.1, 0.7)
    assert not view.wanted(0.0) and not view.wanted(0.09)  # nothing worth a look: one pass
    assert view.wanted(0.1) and view.wanted(0.69)
    assert not view.wanted(0.7) and not view.wanted(0.99)  # already sure: one pass
    assert SecondView.from_card({"second_view": view.to_card()}) == view
    assert view.to_card() == {"input_margins": [0.08], "lowest": 0.1, "below": 0.7}
    v43 = {"input_margin": 0.04, "lowest": 0.1, "below": 0.7}  # the first card names one surround
    assert SecondView.from_card({"second_view": v43}) == SecondView((0.04,), 0.1, 0.7)
    assert SecondView.from_card({}) is None and SecondView.from_card({"second_view": None}) is None


@pytest.mark.parametrize(
    "settings",
    [
        {"input_margin": 0.6, "lowest": 0.1, "below": 0.7},  # a surround of more than half the input
        {"input_margin": 0.08, "lowest": 0.7, "below": 0.1},  # an empty band
        {"input_margin": 0.08, "lowest": 0.1, "below": 0.7, "extra": 1},  # a typo'd field
        {"input_margin": "wide", "lowest": 0.1, "below": 0.7},
        {"input_margins": [], "lowest": 0.1, "below": 0.7},  # no view at all
        {"input_margins": [0.04, 0.5], "lowest": 0.1, "below": 0.7},
        {"input_margins": [0.04], "lowest": 0.1},  # no upper end
        [0.08, 0.1, 0.7],
    ],
)
def test_a_malformed_second_view_is_a_named_load_error(tmp_path, bundled_registry, settings):
    with pytest.raises(ValueError, match="second_view"):
        SecondView.from_card({"second_view": settings})
    folder = tmp_path / "v99"
    shutil.copytree(bundled_registry / Registry(bundled_registry).champion(), folder)
    card = json.loads((folder / "model_card.json").read_text())
    (folder / "model_card.json").write_text(json.dumps({**card, "second_view": settings}))
    with pytest.raises(ModelLoadError, match="second_view"):
        Detector.from_version_dir(folder)


def test_pooling_keeps_a_mark_both_views_found_once_at_its_better_score():
    first = (Detection("rumah123", 0.4, (10, 10, 110, 40)), Detection("99co", 0.2, (300, 300, 360, 320)))
    second = (Detection("rumah123", 0.6, (12, 11, 112, 41)),)
    both = pooled((*first, *second), 0.5)
    assert [(d.brand, d.score) for d in both] == [("rumah123", 0.6), ("99co", 0.2)]
    assert pooled((), 0.5) == ()


def test_a_second_view_pools_both_looks_and_only_when_undecided(tmp_path, bundled_registry):
    shutil.copytree(bundled_registry, tmp_path / "models")
    registry = Registry(tmp_path / "models")
    source = registry.champion()
    rescoring = TextRescoring.from_card(registry.card(source)) or TextRescoring(spot=0.3)
    always = register_text_stage(registry, source, rescoring, "v98", second_view=SecondView((0.08,), 0.0, 1.0))
    never = register_text_stage(registry, source, rescoring, "v99", second_view=SecondView((0.08,), 0.999, 1.0))
    assert registry.card(always)["second_view"] == {"input_margins": [0.08], "lowest": 0.0, "below": 1.0}
    plain, twice, once = (Detector.from_version_dir(registry.path(v)) for v in (source, always, never))
    plain.second_view = None  # the first view alone, whatever the champion's card says
    surround = Detector.from_version_dir(registry.path(source))
    surround.input_margin, surround.second_view = 0.08, None  # the second view alone
    image = Image.open(synthetic_examples(tmp_path / "examples")[0]).convert("RGB")  # a Rumah123 mark
    first, second = plain.predict(image), surround.predict(image)
    pooled_prediction = twice.predict(image)
    assert pooled_prediction.candidates[0].score == max(first.candidates[0].score, second.candidates[0].score)
    assert {d.score for d in pooled_prediction.candidates} <= {d.score for d in first.candidates + second.candidates}
    assert pooled_prediction.candidates != first.candidates  # the second look added or replaced something
    assert once.predict(image).candidates == first.candidates  # outside the band: exactly one pass
    assert twice.network_only().second_view is None  # the network alone is one pass
    assert twice.describe()["second_view"]["input_margins"] == [0.08] and plain.describe()["second_view"] is None


def test_more_surrounds_are_more_views_all_pooled(tmp_path, bundled_registry):
    shutil.copytree(bundled_registry, tmp_path / "models")
    registry = Registry(tmp_path / "models")
    source = registry.champion()
    rescoring = TextRescoring.from_card(registry.card(source)) or TextRescoring(spot=0.3)
    views = parsed_second_view("0.04,0.12", "0", "1")
    assert views == SecondView((0.04, 0.12), 0.0, 1.0)
    three = Detector.from_version_dir(
        registry.path(register_text_stage(registry, source, rescoring, "v97", None, views))
    )
    image = Image.open(synthetic_examples(tmp_path / "examples")[1]).convert("RGB")
    singles = []
    for margin in (0.0, 0.04, 0.12):
        single = Detector.from_version_dir(registry.path(source))
        single.input_margin, single.second_view = margin, None
        singles.append(single.predict(image))
    best = max(p.candidates[0].score for p in singles if p.candidates)
    assert three.predict(image).candidates[0].score == best


def test_second_view_arguments_name_what_is_wrong():
    with pytest.raises(ValueError, match="as numbers"):
        parsed_second_view("0.04,wide", "0.1", "0.7")
    with pytest.raises(ValueError, match=r"\[0, 0.5\)"):
        parsed_second_view("0.04,0.6", "0.1", "0.7")


def test_text_stage_refuses_an_empty_band_before_any_work(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "training.text_stage", "v1", "--second-view", "0.08", "0.7", "0.1"],
        capture_output=True,
        text=True,
        env={"WMSTUDIO_STATE_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert result.returncode == 2 and "lowest < below" in result.stderr and "Traceback" not in result.stderr


def test_the_experiment_pools_as_the_runtime_does_and_reads_the_best_rescored_score():
    item = Item(sha256="p", path="images/p.jpg", width=400, height=300, brand="rumah123")

    def example(*candidates: Detection) -> Example:
        return Example(item, Prediction(400, 300, candidates))

    mark = (10.0, 10.0, 110.0, 40.0)
    view = SecondView((0.04,), 0.1, 0.7)
    # the rows keep the network's order: the best score after the reading may not come first
    undecided = example(Detection("99co", 0.05, (200.0, 200.0, 260.0, 220.0)), Detection("rumah123", 0.3, mark))
    second = example(Detection("rumah123", 0.8, mark))
    both, taken = with_second_view(undecided, [second], view)
    assert taken and [(d.brand, d.score) for d in both.prediction.candidates] == [("rumah123", 0.8), ("99co", 0.05)]
    sure = example(Detection("rumah123", 0.05, (0.0, 0.0, 5.0, 5.0)), Detection("rumah123", 0.9, mark))
    assert with_second_view(sure, [second], view) == (sure, False)
    assert with_second_view(example(), [second], view) == (example(), False)  # nothing worth a look
    third = example(Detection("99co", 0.6, (200.0, 200.0, 260.0, 220.0)))
    all_three, _ = with_second_view(undecided, [second, third], view)
    assert [(d.brand, d.score) for d in all_three.prediction.candidates] == [("rumah123", 0.8), ("99co", 0.6)]


def test_the_experiment_names_an_unknown_version_without_a_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "experiments.second_view", "v1", "--cache-dir", str(tmp_path / "cache")],
        capture_output=True,
        text=True,
        env={"WMSTUDIO_STATE_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert result.returncode == 1 and "'v1' is not in the registry" in result.stderr
    assert "Traceback" not in result.stderr
