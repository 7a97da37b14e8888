"""The template check: placement, calibration, correlation, and how it folds into detections."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from wmstudio.runtime import Detection
from wmstudio.runtime.detector import apply_mark_check
from wmstudio.runtime.mark_check import DECISIVE_SCORE, MarkCheck, Placement, calibrate_threshold
from wmstudio.runtime.postprocess import iou_matrix

pytestmark = pytest.mark.unit

PLACEMENT = Placement(centre_x=0.5, centre_y=0.5, height=0.105, aspect=4.5, max_width=0.87)


def wordmark_matte() -> np.ndarray:
    """A text-like matte (strokes of a wordmark) in the template's 4.5:1 frame."""
    canvas = Image.new("L", (360, 80), 0)
    ImageDraw.Draw(canvas).text((8, 2), "rumah 123", fill=255, font=ImageFont.load_default(size=64))
    return np.asarray(canvas, dtype=np.float32) / 255.0


def busy_photo(width: int, height: int, seed: int) -> Image.Image:
    """Textured 'room': smooth gradients plus blocks and noise, so background gradients are real."""
    rng = np.random.default_rng(seed)
    base = np.linspace(40, 200, width)[None, :, None] * np.ones((height, 1, 3))
    image = Image.fromarray(np.clip(base + rng.normal(0, 12, (height, width, 3)), 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(25):
        x0, y0 = int(rng.integers(0, width - 20)), int(rng.integers(0, height - 20))
        size = int(rng.integers(10, 120))
        draw.rectangle((x0, y0, x0 + size, y0 + size // 2), fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
    return image


def stamp(photo: Image.Image, matte: np.ndarray, opacity: float) -> tuple[Image.Image, tuple[float, ...]]:
    """White mark at the placement, as the portal stamps it; returns the photo and the box."""
    x0, y0, x1, y1 = PLACEMENT.box(photo.width, photo.height)
    size = (round(x1 - x0), round(y1 - y0))
    alpha = Image.fromarray((matte * 255 * opacity).astype(np.uint8)).resize(size, Image.Resampling.BILINEAR)
    marked = photo.copy()
    marked.paste(Image.new("RGB", size, (255, 255, 255)), (round(x0), round(y0)), alpha)
    return marked, (x0, y0, x1, y1)


@pytest.fixture(scope="module")
def check() -> MarkCheck:
    return MarkCheck("rumah123", wordmark_matte(), PLACEMENT, threshold=0.15)


def test_placement_learnt_from_boxes_and_limited_by_width():
    boxes = [((200, 450, 700, 561), 900, 1060), ((100, 200, 400, 266), 500, 632), ((30, 420, 390, 500), 420, 960)]
    placement = Placement.from_boxes(boxes)
    assert placement.centre_x == pytest.approx(0.5, abs=0.06)
    assert placement.max_width == pytest.approx(360 / 420)
    x0, _, x1, _ = PLACEMENT.box(300, 900)  # a tall narrow photo: 0.105 × 900 × 4.5 would not fit
    assert x1 - x0 == pytest.approx(0.87 * 300)
    with pytest.raises(ValueError):
        Placement.from_boxes([])


def test_threshold_sits_mid_gap_and_follows_best_f1():
    assert calibrate_threshold([0.3, 0.4, 0.5], [0.05, 0.1]) == pytest.approx(0.2)
    assert calibrate_threshold([0.4], []) == pytest.approx(0.2)
    # One positive below every negative cannot be rescued: the cut keeps the rest clean.
    assert calibrate_threshold([0.02, 0.3, 0.4], [0.05, 0.1]) == pytest.approx(0.2)
    with pytest.raises(ValueError):
        calibrate_threshold([], [0.1])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_correlation_finds_a_faint_mark_at_its_place_and_not_elsewhere(check, seed):
    photo = busy_photo(640, 480, seed)
    marked, truth = stamp(photo, check.matte, opacity=0.3)
    found, box = check.correlation(marked)
    clean, _ = check.correlation(photo)
    assert found > 2 * check.threshold, (found, clean)
    assert clean < check.threshold
    assert iou_matrix(np.asarray([box]), np.asarray([truth]))[0, 0] > 0.8


def test_a_fired_check_replaces_candidates_on_its_spot(check):
    marked, truth = stamp(busy_photo(640, 480, 3), check.matte, opacity=0.35)
    elsewhere = Detection("99co", 0.6, (10.0, 10.0, 80.0, 40.0))
    on_spot = [Detection("99co", 0.4, truth), Detection("rumah123", 0.05, truth)]
    result = apply_mark_check(check, marked, [elsewhere, *on_spot])
    assert elsewhere in result
    assert [d.brand for d in result if d is not elsewhere] == ["rumah123"]
    assert next(d for d in result if d.brand == "rumah123").score >= DECISIVE_SCORE


def test_a_fired_check_clears_every_operating_threshold_and_ranks_by_evidence(check):
    """A check that barely fires is still a decision: no threshold a release can pick drops it."""
    from training.evaluate import THRESHOLD_GRID

    barely, clearly = check.score(check.threshold), check.score(2 * check.threshold)
    assert barely == pytest.approx(DECISIVE_SCORE)
    assert max(THRESHOLD_GRID) <= barely < clearly <= 1.0
    assert check.score(1.2 * check.threshold) < clearly


def test_a_silent_check_changes_nothing(check):
    detections = [Detection("99co", 0.4, (100.0, 100.0, 300.0, 150.0))]
    assert apply_mark_check(check, busy_photo(640, 480, 4), detections) == detections
    assert apply_mark_check(check, busy_photo(640, 480, 4), []) == []


def test_card_round_trip_keeps_the_check(check, tmp_path):
    check.save_matte(tmp_path / "matte.png")
    loaded = MarkCheck.from_card(tmp_path, check.to_card("matte.png"))
    marked, _ = stamp(busy_photo(640, 480, 5), check.matte, opacity=0.3)
    assert loaded.placement == check.placement
    assert loaded.correlation(marked)[0] == pytest.approx(check.correlation(marked)[0], abs=0.01)


def test_check_built_from_the_real_train_photos_separates_train_and_val(data_dir, tmp_path):
    """On the provided listings: the calibrated check fires on no unmarked train/val photo."""
    from training.mark_checks import build_mark_check
    from training.pipeline import prepare_real
    from wmstudio.imaging import decode_image

    real, real_dir = prepare_real(data_dir / "listings", tmp_path / "datasets")
    built = build_mark_check(real, real_dir, "rumah123", 320)
    assert built is not None and 0.05 < built.threshold < 0.5
    assert built.placement.height == pytest.approx(0.105, abs=0.005)
    fired = {"marked": 0, "unmarked": 0}
    for item in real.split("train") + real.split("val"):
        correlation, _ = built.correlation(decode_image(real_dir / item.path, draft_size=320).image)
        if correlation >= built.threshold:
            fired["marked" if item.brand == "rumah123" else "unmarked"] += 1
    assert fired["unmarked"] == 0
    assert fired["marked"] >= 6


def test_fire_table_counts_where_the_check_fires_per_group(check):
    from experiments.check_audit import fire_table

    marked = [("real rumah123", stamp(busy_photo(640, 480, seed), check.matte, opacity=0.35)[0]) for seed in (6, 7)]
    clean = [("synthetic clean", busy_photo(640, 480, seed)) for seed in (8, 9, 10)]
    table = fire_table(check, marked + clean)
    assert table["real rumah123"]["photos"] == 2 and table["real rumah123"]["fired"] == 2
    assert table["synthetic clean"] | {"max": 0, "min": 0} == {"photos": 3, "fired": 0, "max": 0, "min": 0}
    assert table["synthetic clean"]["max"] < check.threshold <= table["real rumah123"]["min"]
