"""The tile view: the network again on overlapping tiles of a photo the first pass leaves undecided."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from app.examples import synthetic_examples
from experiments.soup import with_reading
from experiments.tile_view import with_tiles
from training.evaluate import Example
from training.text_stage import parsed_tile_view, register_text_stage
from wmstudio.data.manifest import Item
from wmstudio.registry import Registry
from wmstudio.runtime import Detection, Detector, Prediction
from wmstudio.runtime.detector import ModelLoadError
from wmstudio.runtime.text_reading import TextRescoring
from wmstudio.runtime.tile_view import TileView

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("grid", [2, 3, 4])
@pytest.mark.parametrize("size", [(800, 600), (417, 1001), (40, 30)])
def test_tiles_cover_the_photo_overlap_and_stay_inside(grid, size):
    width, height = size
    view = TileView(grid, 0.25)
    tiles = view.tiles(width, height)
    assert len(tiles) == grid * grid
    assert all(0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height for x0, y0, x1, y1 in tiles)
    covered = np.zeros((height, width), dtype=bool)
    for x0, y0, x1, y1 in tiles:
        covered[y0:y1, x0:x1] = True
    assert covered.all()  # no pixel is left out
    first, second = tiles[0], tiles[1]
    assert second[0] < first[2]  # neighbours overlap
    side = first[2] - first[0]
    assert side * grid > width  # each tile is larger than a plain cut: the overlap


def test_a_box_cut_by_an_inner_edge_is_dropped_and_one_at_the_photo_edge_kept():
    view = TileView(2, 0.25)
    tile = view.tiles(800, 600)[0]  # the top-left tile: its right and bottom sides are cuts
    assert tile == (0, 0, 457, 343)
    boxes = np.asarray(
        [
            [0.0, 0.0, 100.0, 40.0],  # at the photo's corner: whole
            [300.0, 100.0, 456.0, 140.0],  # runs into the right cut: a piece of a mark
            [100.0, 300.0, 200.0, 343.0],  # runs into the bottom cut
            [200.0, 200.0, 300.0, 240.0],  # well inside
        ]
    )
    assert view.whole_inside(boxes, tile, 800, 600).tolist() == [True, False, False, True]


def test_the_band_and_the_card_round_trip():
    view = TileView(2, 0.25, 0.1, 0.7)
    assert not view.wanted(0.05) and view.wanted(0.1) and view.wanted(0.69) and not view.wanted(0.7)
    assert TileView.from_card({"tile_view": view.to_card()}) == view
    assert TileView.from_card({}) is None and TileView.from_card({"tile_view": None}) is None


@pytest.mark.parametrize(
    "settings",
    [
        {"grid": 1, "overlap": 0.25, "lowest": 0.1, "below": 0.7},  # one tile is the plain view
        {"grid": 2, "overlap": 0.5, "lowest": 0.1, "below": 0.7},
        {"grid": 2, "overlap": 0.25, "lowest": 0.7, "below": 0.1},  # an empty band
        {"grid": 2, "overlap": 0.25, "lowest": 0.1},  # no upper end
        {"grid": 2, "overlap": 0.25, "lowest": 0.1, "below": 0.7, "size": 3},  # a typo'd field
        {"grid": "two", "overlap": 0.25, "lowest": 0.1, "below": 0.7},
        [2, 0.25, 0.1, 0.7],
    ],
)
def test_a_malformed_tile_view_is_a_named_load_error(tmp_path, bundled_registry, settings):
    with pytest.raises(ValueError, match="tile_view"):
        TileView.from_card({"tile_view": settings})
    folder = tmp_path / "v99"
    shutil.copytree(bundled_registry / Registry(bundled_registry).champion(), folder)
    card = json.loads((folder / "model_card.json").read_text())
    (folder / "model_card.json").write_text(json.dumps({**card, "tile_view": settings}))
    with pytest.raises(ModelLoadError, match="tile_view"):
        Detector.from_version_dir(folder)


def collage_of(mark_photo: Image.Image) -> Image.Image:
    """The photo at half size in the top-left quarter, grey elsewhere: the mark shrinks by half."""
    canvas = Image.new("RGB", mark_photo.size, (90, 110, 90))
    canvas.paste(mark_photo.resize((mark_photo.width // 2, mark_photo.height // 2)), (0, 0))
    return canvas


def test_tiles_find_the_shrunk_mark_in_photo_pixels_and_only_undecided_photos_pay(tmp_path, bundled_registry):
    plain = Detector.from_registry(bundled_registry)
    plain.second_view, plain.tile_view = None, None
    image = collage_of(Image.open(synthetic_examples(tmp_path / "examples")[0]).convert("RGB"))
    tiled = Detector.from_registry(bundled_registry)
    tiled.second_view, tiled.tile_view = None, TileView(2, 0.25, 0.0, 1.0)
    candidates = tiled.tile_candidates(image)
    assert candidates, "the tiles found nothing in a quarter-size marked photo"
    best = candidates[0]
    assert best.brand == "rumah123"
    x0, y0, x1, y1 = best.box
    assert 0 <= x0 < x1 <= image.width / 2 + 1 and 0 <= y0 < y1 <= image.height / 2 + 1  # in its quarter
    first, both = plain.predict(image), tiled.predict(image)
    assert both.candidates[0].score >= first.candidates[0].score
    assert both.candidates != first.candidates  # the tiles added or replaced something
    never = Detector.from_registry(bundled_registry)
    never.second_view, never.tile_view = None, TileView(2, 0.25, 0.999, 1.0)
    assert never.predict(image).candidates == first.candidates  # outside the band: one pass
    assert tiled.network_only().tile_view is None
    assert tiled.describe()["tile_view"] == {"grid": 2, "overlap": 0.25, "lowest": 0.0, "below": 1.0}


def test_the_experiment_pools_tiles_only_when_the_first_view_is_undecided():
    item = Item(sha256="p", path="images/p.jpg", width=400, height=300, brand="rumah123")

    def example(*candidates: Detection) -> Example:
        return Example(item, Prediction(400, 300, candidates))

    mark = (10.0, 10.0, 60.0, 25.0)
    view = TileView(2, 0.25, 0.1, 0.7)
    first = example(Detection("rumah123", 0.3, mark))
    base = example(Detection("rumah123", 0.4, mark))  # what the extra views already made of it
    tiles = example(Detection("rumah123", 0.9, (11.0, 10.0, 61.0, 25.0)))
    pooled_example, taken = with_tiles(base, first, tiles, view)
    assert taken and [(d.brand, d.score) for d in pooled_example.prediction.candidates] == [("rumah123", 0.9)]
    sure = example(Detection("rumah123", 0.95, mark))
    assert with_tiles(sure, sure, tiles, view) == (sure, False)
    assert with_tiles(example(), example(), tiles, view) == (example(), False)


def test_text_stage_writes_the_tile_view_and_names_bad_arguments(tmp_path, bundled_registry):
    shutil.copytree(bundled_registry, tmp_path / "models")
    registry = Registry(tmp_path / "models")
    source = registry.champion()
    rescoring = TextRescoring.from_card(registry.card(source)) or TextRescoring(spot=0.3)
    tiles = parsed_tile_view("3", "0.2", "0.05", "0.7")
    assert tiles == TileView(3, 0.2, 0.05, 0.7)
    version = register_text_stage(registry, source, rescoring, "v98", tile_view=tiles)
    assert Detector.from_version_dir(registry.path(version)).tile_view == tiles
    reader = {"text_rescoring": {"spot": 0.3}, "tile_view": tiles.to_card()}
    assert with_reading({"classes": ["rumah123", "99co"]}, reader, "v98")["tile_view"] == tiles.to_card()
    with pytest.raises(ValueError, match="as numbers"):
        parsed_tile_view("two", "0.25", "0.05", "0.7")
    with pytest.raises(ValueError, match="grid must be 2, 3 or 4"):
        parsed_tile_view("5", "0.25", "0.05", "0.7")


def test_text_stage_refuses_a_bad_tiling_before_any_work(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "training.text_stage", "v1", "--tile-view", "2", "0.25", "0.7", "0.1"],
        capture_output=True,
        text=True,
        env={"WMSTUDIO_STATE_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert result.returncode == 2 and "lowest < below" in result.stderr and "Traceback" not in result.stderr
