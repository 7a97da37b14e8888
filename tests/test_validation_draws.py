"""Synthetic validation drawn several times and pooled: the release's threshold rests on more
rendered competitor marks (one draw fixed v47's only to about ±0.05)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from training.build import build_synthetic, house_split
from training.pipeline import build_validation_draws, default_dirs, load_validation_draws, validation_draw_dirs
from training.release import default_data, default_sets, evaluation_data_version, evaluation_sets
from wmstudio.data.manifest import Manifest
from wmstudio.settings import get_settings

VAL_HOUSES = (330, 331)  # house ids in the validation share
OTHER_HOUSES = (1, 2, 370, 371)  # train and test shares


@pytest.fixture()
def draws_setting(monkeypatch: pytest.MonkeyPatch):
    """Set ``validation_draws`` through the environment, as a deployment would."""

    def set_draws(count: int) -> None:
        monkeypatch.setenv("WMSTUDIO_VALIDATION_DRAWS", str(count))
        get_settings.cache_clear()

    yield set_draws
    get_settings.cache_clear()


@pytest.fixture()
def houses(tmp_path: Path) -> Path:
    folder = tmp_path / "houses"
    folder.mkdir()
    for house in (*OTHER_HOUSES, *VAL_HOUSES):
        Image.new("RGB", (480, 360), (40 + house % 200, 90, 120)).save(folder / f"{house}_kitchen.png")
    assert {house_split(folder / f"{h}_kitchen.png") for h in VAL_HOUSES} == {"val"}
    return folder


@pytest.fixture()
def datasets(tmp_path: Path, houses: Path) -> Path:
    """A default synthetic set (all splits) and two more validation draws, as `wmstudio train` lays them out."""
    folder = tmp_path / "datasets"
    _, synthetic_dir = default_dirs(folder)
    build_synthetic(synthetic_dir, houses, counts={"train": 2, "val": 3, "test": 2}, seed=0)
    build_validation_draws(synthetic_dir, houses, Manifest(name="real"), folder / "listings", 3, seed=0, draws=3)
    return folder


def test_draws_are_validation_only_with_new_renderings_of_the_validation_houses(datasets: Path) -> None:
    _, synthetic_dir = default_dirs(datasets)
    default = Manifest.load(synthetic_dir)
    draws = load_validation_draws(synthetic_dir, 3)
    assert [folder for _, folder in draws] == validation_draw_dirs(synthetic_dir, 3)
    assert len(draws) == 2
    seen = {item.sha256 for item in default.split("val")}
    for manifest, _ in draws:
        items = list(manifest.items.values())
        assert len(items) == 3 and {item.split for item in items} == {"val"}
        # only validation houses: no train or test photo leaks into the choice of threshold
        assert all(Path(item.origin).name.split("_")[0] in {str(h) for h in VAL_HOUSES} for item in items)
        shas = {item.sha256 for item in items}
        assert not shas & seen, "a draw must render new photos, not repeat an earlier draw"
        seen |= shas
    assert len({m.reports[-1]["seed"] for m, _ in draws}) == 2


def test_validation_pools_every_draw_but_test_does_not(datasets: Path) -> None:
    real_dir, synthetic_dir = default_dirs(datasets)
    synthetic = Manifest.load(synthetic_dir)
    draws = load_validation_draws(synthetic_dir, 3)
    val = evaluation_sets(Manifest(name="real"), real_dir, synthetic, synthetic_dir, "val", draws)
    test = evaluation_sets(Manifest(name="real"), real_dir, synthetic, synthetic_dir, "test", draws)
    assert len(val["synthetic"]) == 9 and len(test["synthetic"]) == 2
    roots = {root for _, root in val["synthetic"]}
    assert roots == {synthetic_dir, *(folder for _, folder in draws)}
    for item, root in val["synthetic"]:
        assert (root / item.path).exists()


def test_default_sets_and_data_version_name_the_draws(datasets: Path, draws_setting) -> None:
    draws_setting(3)
    _, synthetic_dir = default_dirs(datasets)
    synthetic = Manifest.load(synthetic_dir)
    real = Manifest(name="real")
    draws = load_validation_draws(synthetic_dir, 3)
    assert len(default_sets(datasets, "val")["synthetic"]) == 9
    assert len(default_sets(datasets, "test")["synthetic"]) == 2
    one_draw = evaluation_data_version(real, synthetic)
    assert one_draw == f"{real.version()}+{synthetic.version()}"  # cards of one draw keep their version
    pooled = evaluation_data_version(real, synthetic, draws)
    assert pooled.startswith(one_draw + "+") and pooled.count("+") == 3
    draws_setting(1)  # a machine set to one draw measures one draw
    assert len(default_sets(datasets, "val")["synthetic"]) == 3


def test_default_data_loads_the_draws_in_order_and_stops_at_a_gap(
    datasets: Path, tmp_path: Path, draws_setting
) -> None:
    draws_setting(3)
    real_dir, synthetic_dir = default_dirs(datasets)
    real_dir.mkdir(parents=True)
    Manifest(name="listings").save(real_dir)
    assert len(default_data(tmp_path).validation_draws) == 2
    first = validation_draw_dirs(synthetic_dir, 3)[0]
    (first / "manifest.json").unlink()
    # the second draw alone would make a set no release named: neither is used
    assert default_data(tmp_path).validation_draws == ()


def test_no_draws_without_validation_photos(houses: Path, tmp_path: Path) -> None:
    synthetic_dir = tmp_path / "synthetic-s0"
    assert build_validation_draws(synthetic_dir, houses, Manifest(name="real"), tmp_path, 0, seed=0, draws=3) == ()
    assert not (tmp_path / "validation-draws").exists()
