"""Synthetic marks: boxes match what was drawn, runs are reproducible, the template is recovered."""

from __future__ import annotations

import io
import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from training.build import build_synthetic, house_split
from training.synth.compose import SynthConfig, SyntheticGenerator
from training.synth.fonts import available_fonts, fonts_for
from training.synth.marks import render_99co, render_other, render_rumah123
from training.synth.template import estimate_template


def _flat_backgrounds(folder: Path, count: int = 6) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"{i}_bedroom.png"
        Image.new("RGB", (480, 360), (60 + i * 10, 70, 80)).save(path)
        paths.append(path)
    return paths


def test_fonts_split_into_train_and_held_out():
    assert len(available_fonts()) >= 4
    train, test = set(fonts_for("train")), set(fonts_for("test"))
    assert train and test and not train & test


@pytest.mark.parametrize("renderer", [render_rumah123, render_99co, render_other])
def test_renderers_draw_something_with_the_right_label(renderer):
    rng = random.Random(1)
    mark = renderer(available_fonts()[0], 40, rng)
    alpha = np.asarray(mark.image.getchannel("A"))
    assert mark.image.mode == "RGBA" and alpha.max() == 255 and (alpha > 0).mean() > 0.05
    assert mark.label in {"rumah123", "99co", "other"}


def test_boxes_cover_exactly_the_changed_pixels(tmp_path):
    """On a flat background every changed pixel lies in a box, and every box holds changes."""
    backgrounds = _flat_backgrounds(tmp_path / "bg")
    config = SynthConfig(p_other_with_brand=0.0, p_other_without_brand=0.0, jpeg_quality=(100, 100))
    generator = SyntheticGenerator("train", seed=3, config=config)
    checked = 0
    for index in range(30):
        background = backgrounds[index % len(backgrounds)]
        drawn = generator.generate(background)
        if not drawn.boxes:
            continue
        out = np.asarray(Image.open(io.BytesIO(drawn.image_bytes)).convert("RGB"), dtype=int)
        base = np.asarray(Image.open(background).convert("RGB"), dtype=int)
        changed = np.abs(out - base).max(axis=2) > 8
        inside = np.zeros_like(changed)
        for box in drawn.boxes:
            x0, y0, x1, y1 = (round(v) for v in box.box)
            inside[max(0, y0 - 2) : y1 + 2, max(0, x0 - 2) : x1 + 2] = True
            assert changed[y0:y1, x0:x1].any(), "a box with nothing drawn in it"
        assert changed.sum() > 0
        # allow JPEG ringing and cut-off tiled fragments (<0.5% of pixels) outside the boxes
        assert (changed & ~inside).sum() <= 0.005 * changed.size
        checked += 1
    assert checked >= 10


def test_generator_is_reproducible(tmp_path):
    backgrounds = _flat_backgrounds(tmp_path / "bg", 3)
    first = [SyntheticGenerator("train", 5).generate(b) for b in backgrounds]
    second = [SyntheticGenerator("train", 5).generate(b) for b in backgrounds]
    assert [a.image_bytes for a in first] == [b.image_bytes for b in second]
    other = [SyntheticGenerator("train", 6).generate(b) for b in backgrounds]
    assert [a.image_bytes for a in first] != [b.image_bytes for b in other]


def test_template_estimation_recovers_a_planted_mark():
    """Plant one known mark on varied photos; the multi-image gradient median gets it back."""
    rng = np.random.default_rng(0)
    truth = np.zeros((60, 240), dtype=np.float32)
    truth[15:45, 20:60] = 1.0  # an 'icon'
    truth[20:40, 80:220:12] = 1.0  # 'letters'
    samples = []
    for i in range(12):
        background = rng.normal(120, 40, (300, 400)).clip(0, 255)
        background = np.asarray(Image.fromarray(background.astype(np.uint8)).resize((400, 300)), dtype=np.float32)
        x, y = 80 + i, 120 - i
        region = background[y : y + 60, x : x + 240]
        background[y : y + 60, x : x + 240] = region * (1 - 0.5 * truth) + 255 * 0.5 * truth
        image = Image.fromarray(background.clip(0, 255).astype(np.uint8)).convert("RGB")
        samples.append((image, (x, y, 240, 60)))
    template = estimate_template(samples)
    x0, y0, x1, y1 = template.inner_box
    estimate = np.asarray(Image.fromarray((template.alpha[y0:y1, x0:x1] * 255).astype(np.uint8)).resize((240, 60)))
    correlation = np.corrcoef(estimate.ravel().astype(float), truth.ravel())[0, 1]
    assert correlation > 0.8


def test_template_needs_three_photos():
    with pytest.raises(ValueError, match="at least 3"):
        estimate_template([(Image.new("RGB", (50, 50)), (0, 0, 10, 10))] * 2)


def test_build_synthetic_writes_manifest_with_exact_boxes(tmp_path):
    backgrounds = _flat_backgrounds(tmp_path / "houses", 8)
    manifest = build_synthetic(tmp_path / "synth", tmp_path / "houses", counts={"train": 12, "test": 4}, seed=1)
    assert len(manifest.items) >= 12
    for item in manifest.items.values():
        assert (tmp_path / "synth" / item.path).exists()
        for box in item.boxes:
            x0, y0, x1, y1 = box.box
            assert 0 <= x0 < x1 <= item.width and 0 <= y0 < y1 <= item.height
            assert box.brand == item.brand
    assert backgrounds


def test_houses_split_by_house_not_by_photo():
    rooms = [Path(f"17_{room}.jpg") for room in ("bathroom", "bedroom", "kitchen", "frontal")]
    assert len({house_split(p) for p in rooms}) == 1


def test_fonts_without_latin_glyphs_are_excluded():
    names = {f.name for f in available_fonts()}
    assert not any(name.startswith(("LastResort", "STIXNonUni")) for name in names)
