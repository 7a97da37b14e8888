"""The panel view: a composed photo (collage, frame, border, gutter) cut into the photos it holds."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from app.examples import synthetic_examples
from experiments.soup import READING_FIELDS
from training.text_stage import parsed_panel_view, register_text_stage
from wmstudio.registry import Registry
from wmstudio.runtime import Detector
from wmstudio.runtime.detector import ModelInputError, ModelLoadError
from wmstudio.runtime.panel_view import PanelView
from wmstudio.runtime.text_reading import TextRescoring

pytestmark = pytest.mark.unit

VIEW = PanelView(0.55, 0.2, 1.0)


def scene(width: int, height: int, seed: int) -> Image.Image:
    """A photo-like picture: smooth shading, a few shapes with edges, and noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = (
        rng.uniform(40, 200, 3)
        + rng.uniform(-60, 60, 3) * (x / width)[..., None]
        + rng.uniform(-40, 40, 3) * (y / height)[..., None]
    )
    for _ in range(4):
        x0, y0 = rng.integers(0, width * 3 // 4), rng.integers(0, height * 3 // 4)
        x1, y1 = x0 + rng.integers(width // 8, width // 3), y0 + rng.integers(height // 8, height // 3)
        base[y0:y1, x0:x1] = rng.uniform(0, 255, 3)
    base += rng.normal(0, 6, base.shape)
    return Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))


def collage(cells: list[Image.Image], width: int, height: int, gutter: int = 0) -> Image.Image:
    """A 2×2 grid of ``cells``, with an optional white gutter between them."""
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    cell_w, cell_h = (width - gutter) // 2, (height - gutter) // 2
    for index, cell in enumerate(cells):
        x, y = (index % 2) * (cell_w + gutter), (index // 2) * (cell_h + gutter)
        canvas.paste(cell.resize((cell_w, cell_h)), (x, y))
    return canvas


def close(box, expected, tolerance):
    return all(abs(a - b) <= tolerance for a, b in zip(box, expected, strict=True))


@pytest.mark.parametrize("size", [(640, 480), (1080, 720), (400, 300)])
def test_a_collage_is_cut_into_its_four_cells(size):
    width, height = size
    photo = collage([scene(320, 240, seed) for seed in range(4)], width, height)
    panels = [panel.box for panel in VIEW.panels(photo)]
    cell_w, cell_h = width // 2, height // 2
    expected = [
        (0, 0, cell_w, cell_h),
        (cell_w, 0, width, cell_h),
        (0, cell_h, cell_w, height),
        (cell_w, cell_h, width, height),
    ]
    tolerance = max(4, width // 100)
    assert len(panels) == 4
    for cell in expected:
        assert any(close(panel, cell, tolerance) for panel in panels), (cell, panels)


def test_a_white_gutter_is_cut_away():
    photo = collage([scene(320, 240, seed) for seed in range(4, 8)], 660, 500, gutter=20)
    panels = sorted(panel.box for panel in VIEW.panels(photo))
    assert len(panels) == 4
    left, right = panels[0], panels[-1]
    assert left[2] <= 322 and right[0] >= 338  # no panel reaches into the 20 px gutter at 320–340


@pytest.mark.parametrize("colour", [(255, 255, 255), (0, 0, 0), (30, 120, 200)])
def test_a_frame_and_a_one_sided_border_are_trimmed(colour):
    inner = scene(500, 360, 11)
    framed = Image.new("RGB", (600, 480), colour)
    framed.paste(inner, (40, 70))
    (panel,) = VIEW.panels(framed)
    assert close(panel.box, (40, 70, 540, 430), 4)
    assert panel.seams == (False, False, False, False)  # a trimmed frame cuts through nothing
    bordered = Image.new("RGB", (500, 500), colour)
    bordered.paste(inner, (0, 140))
    (panel,) = VIEW.panels(bordered)
    assert close(panel.box, (0, 140, 500, 500), 4)


def test_seam_sides_are_marked_and_a_piece_of_a_mark_at_a_seam_is_dropped():
    photo = collage([scene(320, 240, seed) for seed in range(4)], 640, 480)
    top_left = min(VIEW.panels(photo), key=lambda panel: panel.box[0] + panel.box[1])
    assert top_left.seams == (False, False, True, True)  # its right and bottom sides are the collage's seams
    x1, y1 = top_left.box[2], top_left.box[3]
    boxes = np.asarray(
        [
            [10.0, 10.0, 100.0, 40.0],  # at the photo's own corner: whole
            [200.0, 100.0, x1 - 0.5, 130.0],  # runs into the seam: a piece of a mark
            [100.0, y1 - 30.0, 200.0, y1],  # runs into the bottom seam
            [150.0, 150.0, 250.0, 180.0],  # inside
        ]
    )
    assert top_left.whole_inside(boxes).tolist() == [True, False, False, True]
    gutters = collage([scene(320, 240, seed) for seed in range(4)], 660, 500, gutter=20)
    assert all(panel.seams == (False, False, False, False) for panel in VIEW.panels(gutters))  # gutters cut nothing


def test_a_plain_photo_and_a_flat_one_have_no_panels():
    assert VIEW.panels(scene(640, 480, 3)) == []
    assert VIEW.panels(Image.new("RGB", (640, 480), (200, 200, 200))) == []  # nothing to look at
    assert VIEW.panels(Image.new("L", (20, 10), 128)) == []  # tiny and grey: no error


def test_the_real_photos_are_mostly_plain(data_dir):
    """Straight edges of rooms can pass for seams, and flat walls for gutters: no more than a
    quarter of the listing photos as published may be cut (13 of 64 are, at seam 0.55)."""
    paths = sorted((data_dir / "listings" / "images").glob("*.jpg"))
    cut = [path.name for path in paths if len(VIEW.panels(Image.open(path))) > 1]
    assert len(cut) <= 0.25 * len(paths), cut


def test_the_card_round_trips_and_bad_settings_are_named(tmp_path, bundled_registry):
    assert PanelView.from_card({"panel_view": VIEW.to_card()}) == VIEW
    assert PanelView.from_card({}) is None and PanelView.from_card({"panel_view": None}) is None
    assert VIEW.wanted(0.99) and not PanelView(0.55, 0.2, 0.7).wanted(0.7)
    banded = PanelView(0.55, 0.2, 1.0, lowest=0.05)  # a clean photo (no candidate from 0.05) stays plain
    assert not banded.wanted(0.04) and banded.wanted(0.05) and banded.wanted(0.99)
    assert PanelView.from_card({"panel_view": banded.to_card()}) == banded
    v50_card = {"panel_view": {"seam": 0.55, "min_share": 0.2, "below": 1.0}}  # written before ``lowest``
    assert PanelView.from_card(v50_card) == PanelView(0.55, 0.2, 1.0, lowest=0.0)
    bad = ({"seam": 0.0}, {"min_share": 0.5}, {"below": 1.5}, {"lowest": 0.8, "below": 0.7}, {"lowest": -0.1})
    for settings in (*bad, {"seam": "strong"}, {"size": 3}, [0.5]):
        with pytest.raises(ValueError, match="panel_view"):
            PanelView.from_card({"panel_view": settings})
    folder = tmp_path / "v99"
    shutil.copytree(bundled_registry / Registry(bundled_registry).champion(), folder)
    card = json.loads((folder / "model_card.json").read_text())
    (folder / "model_card.json").write_text(json.dumps({**card, "panel_view": {"seam": 2}}))
    with pytest.raises(ModelLoadError, match="panel_view"):
        Detector.from_version_dir(folder)


def test_panels_find_a_shrunk_mark_in_photo_pixels(tmp_path, bundled_registry):
    marked = Image.open(synthetic_examples(tmp_path / "examples")[0]).convert("RGB")
    photo = collage([scene(320, 240, 20), marked, scene(320, 240, 21), scene(320, 240, 22)], 640, 480)
    plain = Detector.from_registry(bundled_registry)
    plain.second_view, plain.tile_view, plain.panel_view = None, None, None
    detector = Detector.from_registry(bundled_registry)
    detector.second_view, detector.tile_view, detector.panel_view = None, None, VIEW
    candidates = detector.panel_candidates(photo)
    assert candidates and candidates[0].brand == "rumah123"
    x0, y0, x1, y1 = candidates[0].box
    assert 320 - 2 <= x0 < x1 <= 640 + 1 and 0 <= y0 < y1 <= 240 + 2  # in the top-right cell
    assert detector.predict(photo).candidates[0].score >= max(
        (c.score for c in plain.predict(photo).candidates), default=0
    )
    assert detector.panel_candidates(scene(640, 480, 5)) == ()  # a plain photo costs no network call
    assert detector.network_only().panel_view is None
    assert detector.describe()["panel_view"] == VIEW.to_card()


def test_text_stage_writes_the_panel_view_and_soups_keep_it(tmp_path, bundled_registry):
    shutil.copytree(bundled_registry, tmp_path / "models")
    registry = Registry(tmp_path / "models")
    source = registry.champion()
    rescoring = TextRescoring.from_card(registry.card(source)) or TextRescoring(spot=0.3)
    view = parsed_panel_view("0.6", "0.25", "1.0", lowest=0.05)
    assert view == PanelView(0.6, 0.25, 1.0, 0.05)
    version = register_text_stage(registry, source, rescoring, "v98", panel_view=view)
    assert Detector.from_version_dir(registry.path(version)).panel_view == view
    assert "panel_view" in READING_FIELDS  # a soup is read and looked at as its reading version is
    with pytest.raises(ValueError, match="as numbers"):
        parsed_panel_view("strong", "0.2", "1.0")


def test_text_stage_refuses_a_bad_panel_view_before_any_work(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "training.text_stage", "v1", "--panel-view", "0.55", "0.6", "1.0"],
        capture_output=True,
        text=True,
        env={"WMSTUDIO_STATE_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert result.returncode == 2 and "min_share" in result.stderr and "Traceback" not in result.stderr


def test_a_panel_is_looked_at_only_when_seen_larger():
    photo = collage([scene(320, 240, seed) for seed in range(4)], 640, 480)  # cells seen twice as large
    assert len(PanelView(0.55, 0.2, 1.0, gain=1.9).panels(photo)) == 4
    assert PanelView(0.55, 0.2, 1.0, gain=2.1).panels(photo) == []
    framed = Image.new("RGB", (700, 520), (255, 255, 255))
    framed.paste(scene(640, 480, 9), (30, 20))  # the trimmed photo is seen 1.09 times as large
    assert len(VIEW.panels(framed)) == 1 and PanelView(0.55, 0.2, 1.0, gain=1.2).panels(framed) == []


def test_a_panel_size_is_read_from_the_card_and_checked_against_the_onnx_file(tmp_path, bundled_registry):
    sized = PanelView.from_card({"panel_view": {"seam": 0.55, "min_share": 0.2, "below": 1.0, "size": 256.0}})
    assert sized.size == 256 and isinstance(sized.size, int) and sized.input_size(416) == 256
    assert VIEW.input_size(416) == 416  # 0: the training size, as every card written before
    for settings in ({"size": 50}, {"size": 256.5}, {"gain": 0.9}, {"gain": 5}):
        with pytest.raises(ValueError, match="panel_view"):
            PanelView.from_card({"panel_view": {"seam": 0.55, "min_share": 0.2, "below": 1.0, **settings}})
    folder = tmp_path / "v99"
    shutil.copytree(bundled_registry / Registry(bundled_registry).champion(), folder)
    card = json.loads((folder / "model_card.json").read_text())
    fixed_size = 320 if card["imgsz"] != 320 else 256  # the bundled ONNX file has a fixed height and width
    (folder / "model_card.json").write_text(json.dumps({**card, "panel_view": {**VIEW.to_card(), "size": fixed_size}}))
    with pytest.raises(ModelInputError, match=f"input sizes \\[{fixed_size}\\]"):
        Detector.from_version_dir(folder)


@pytest.mark.model
def test_panels_run_at_the_cards_size_on_a_dynamic_network(tmp_path, monkeypatch):
    from tests.conftest import untrained_version
    from training.export import export_onnx

    folder = untrained_version(tmp_path / "v1", imgsz=64)
    export_onnx(folder / "model.pt", 64, folder / "model.onnx", dynamic=True)
    card = json.loads((folder / "model_card.json").read_text())
    (folder / "model_card.json").write_text(json.dumps({**card, "panel_view": {**VIEW.to_card(), "size": 96}}))
    detector = Detector.from_version_dir(folder)
    sizes = []
    runs_at = detector.runs_at

    def recorded(looks, size, iou_threshold=0.5):
        sizes.append(size)
        return runs_at(looks, size, iou_threshold)

    monkeypatch.setattr(detector, "runs_at", recorded)
    detector.panel_candidates(collage([scene(320, 240, seed) for seed in range(4)], 640, 480))
    assert sizes == [96]  # the four cells in one call at the panel size, not the training size 64
