"""Weight averaging of fine-tunes (experiments.soup): the arithmetic, the checks, the CLI's errors."""

from __future__ import annotations

import pytest

from experiments import soup
from tests.conftest import untrained_version
from wmstudio.registry import Registry

pytestmark = pytest.mark.model


def _state(path):
    import torch

    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    return (checkpoint.get("ema") or checkpoint["model"]).state_dict()


def test_weights_are_normalised_and_checked():
    assert soup.normalised(None, 4) == [0.25] * 4
    assert soup.normalised([3, 1], 2) == [0.75, 0.25]
    for bad in ([1.0], [1.0, -1.0], [0.0, 0.0]):
        with pytest.raises(ValueError, match="non-negative weights"):
            soup.normalised(bad, 2)


def test_a_soup_s_recipe_says_it_was_averaged_not_trained():
    base = {"model": "yolo11n.yaml", "imgsz": 384, "time_hours": 1.85, "warm_start": "models/v21/model.pt"}
    recipe = soup.soup_recipe("v22", base, ["v22", "run/best.pt"], [0.7, 0.3])
    assert recipe["method"] == "soup" and "time_hours" not in recipe and "warm_start" not in recipe
    assert (recipe["model"], recipe["imgsz"]) == ("yolo11n.yaml", 384)
    assert recipe["soup_of"] == ["v22", "run/best.pt"] and recipe["soup_weights"] == [0.7, 0.3]
    assert recipe["base_version"] == "v22" and recipe["base_recipe"] == base


@pytest.mark.slow
def test_soup_is_the_weighted_average_and_loads(tmp_path):
    pytest.importorskip("ultralytics")
    import torch
    from ultralytics import YOLO

    registry = Registry(tmp_path / "models")  # two versions with weights (git carries none)
    for version in ("v1", "v2"):
        untrained_version(registry.root / version)
    first, second = (soup.resolve_source(registry, v) for v in ("v1", "v2"))
    out = soup.average_checkpoints([first, second], [0.25, 0.75], tmp_path / "soup.pt")
    a, b, mixed = _state(first), _state(second), _state(out)
    for key, value in mixed.items():
        if value.is_floating_point():
            expected = (0.25 * a[key].float() + 0.75 * b[key].float()).to(value.dtype)
            assert torch.allclose(value.float(), expected.float(), atol=1e-3), key
        else:
            assert torch.equal(value, a[key]), key
    changed = [k for k in mixed if mixed[k].is_floating_point() and not torch.equal(mixed[k], b[k])]
    assert changed, "the soup should differ from either source"

    # weight 1 on one source gives that source back exactly
    only_second = soup.average_checkpoints([first, second], [0.0, 1.0], tmp_path / "second.pt")
    assert all(torch.equal(v, b[k]) for k, v in _state(only_second).items() if v.is_floating_point())

    result = YOLO(str(out)).predict(torch.zeros(1, 3, 64, 64), imgsz=64, verbose=False)
    assert len(result) == 1


@pytest.mark.slow
def test_different_architectures_are_refused(tmp_path):
    pytest.importorskip("ultralytics")
    import torch
    from ultralytics.nn.tasks import DetectionModel

    other = tmp_path / "three-classes.pt"
    torch.save({"model": DetectionModel("yolo11n.yaml", nc=3, verbose=False)}, other)
    source = soup.resolve_source(Registry(tmp_path), untrained_version(tmp_path / "v1").name)
    with pytest.raises(ValueError, match="not the same architecture"):
        soup.average_checkpoints([source, other], [0.5, 0.5], tmp_path / "soup.pt")


def test_cli_refuses_a_soup_it_cannot_make(capsys):
    with pytest.raises(SystemExit) as one_source:
        soup.main(["v22"])
    assert one_source.value.code == 2 and "at least two sources" in capsys.readouterr().err
    with pytest.raises(SystemExit) as wrong_weights:
        soup.main(["v21", "v22", "--weights", "1"])
    assert wrong_weights.value.code == 2 and "non-negative weights" in capsys.readouterr().err


def test_a_soup_released_with_another_version_s_reading_takes_all_of_it():
    soup_card = {"version": "v44", "threshold": 0.6, "input_margin": 0.1, "recipe": {"method": "soup"}}
    reader = {
        "version": "v43",
        "threshold": 0.51,
        "text_rescoring": {"spot": 0.3},
        "second_view": {"input_margin": 0.04, "lowest": 0.1, "below": 0.7},
        "recipe": {"method": "train"},
    }
    card = soup.with_reading(soup_card, reader, "v43")
    assert card["text_rescoring"] == {"spot": 0.3} and card["second_view"] == reader["second_view"]
    assert "input_margin" not in card  # the reader has none: the soup must not keep its own
    assert card["version"] == "v44" and card["threshold"] == 0.6  # what the network is stays the soup's
    assert card["recipe"] == {"method": "soup", "text_rescoring_from": "v43"}
