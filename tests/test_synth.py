"""Synthetic marks: boxes match what was drawn, runs are reproducible, the template is recovered."""

from __future__ import annotations

import hashlib
import io
import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from training.build import build_synthetic, house_split
from training.pipeline import default_dirs
from training.synth.compose import SynthConfig, SyntheticGenerator
from training.synth.fonts import available_fonts, fonts_for
from training.synth.marks import (
    ENDING_LOOKALIKE_NEGATIVES,
    HARD_NEGATIVE_TEXTS,
    LONG_WORDMARK_SHARE,
    GlyphMix,
    RenderedMark,
    negative_texts_without,
    render_99co,
    render_other,
    render_rumah123,
)
from training.synth.template import estimate_template
from training.synth.variation import P_LONG_WORDMARK, MarkVariation

pytestmark = pytest.mark.unit


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
        for box in drawn.boxes + drawn.unlabelled:
            x0, y0, x1, y1 = (round(v) for v in box.box)
            inside[max(0, y0 - 2) : y1 + 2, max(0, x0 - 2) : x1 + 2] = True
        for box in drawn.boxes:
            x0, y0, x1, y1 = (round(v) for v in box.box)
            assert changed[y0:y1, x0:x1].any(), "a box with nothing drawn in it"
        for box in drawn.unlabelled:
            x0, y0, x1, y1 = box.box
            assert box.label == "invisible" or min(x0, y0) == 0 or x1 == out.shape[1] or y1 == out.shape[0], (
                "only a copy cut off by the border may be left unlabelled as partial"
            )
        assert changed.sum() > 0
        # allow JPEG ringing and faint halos (alpha under the box threshold) outside the boxes
        assert (changed & ~inside).sum() <= 0.002 * changed.size
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


def test_synthetic_items_are_named_by_content_and_a_rebuild_leaves_no_stale_files(tmp_path, monkeypatch):
    """Ids are the image's sha256 (caches keyed by id stay right after a redraw)."""
    _flat_backgrounds(tmp_path / "houses", 4)
    manifest = build_synthetic(tmp_path / "synth", tmp_path / "houses", counts={"train": 3}, seed=1)
    for item in manifest.items.values():
        assert item.sha256 == hashlib.sha256((tmp_path / "synth" / item.path).read_bytes()).hexdigest()
    stale = tmp_path / "synth" / "images" / "train" / "train_09999.jpg"
    stale.write_bytes(b"left over from an older, larger build")
    monkeypatch.setattr("training.build.font_fingerprint", lambda: "other-fonts")
    rebuilt = build_synthetic(tmp_path / "synth", tmp_path / "houses", counts={"train": 3}, seed=1)
    assert not stale.exists()
    assert len(list((tmp_path / "synth" / "images" / "train").iterdir())) == len(rebuilt.items) == 3


def test_houses_split_by_house_not_by_photo():
    rooms = [Path(f"17_{room}.jpg") for room in ("bathroom", "bedroom", "kitchen", "frontal")]
    assert len({house_split(p) for p in rooms}) == 1


def test_fonts_without_latin_glyphs_are_excluded():
    names = {f.name for f in available_fonts()}
    assert not any(name.startswith(("LastResort", "STIXNonUni")) for name in names)


def _other_mark() -> RenderedMark:
    rng = random.Random(2)
    return render_other(fonts_for("train")[0], 60, rng)


def test_glyph_variation_changes_train_marks_and_keeps_their_label():
    mark = _other_mark()
    varied = [MarkVariation(random.Random(seed))(mark) for seed in range(12)]
    assert all(v.label == "other" and v.image.mode == "RGBA" for v in varied)
    assert all(np.asarray(v.image.getchannel("A")).max() > 200 for v in varied), "a variation erased the mark"
    sizes = {v.image.size for v in varied}
    assert len(sizes) > 3, "weight, slant and width variations should change the coverage's shape"


@pytest.mark.parametrize("renderer", [render_rumah123, render_99co, render_other])
def test_mixed_glyph_marks_differ_from_every_single_font_rendering(renderer):
    """A per-character font mix draws a whole mark, and one no single training font draws."""
    fonts = fonts_for("train")
    mixed = renderer(GlyphMix(fonts, random.Random(5)), 60, random.Random(3)).image.getchannel("A")
    ink = np.asarray(mixed) > 128
    assert ink.any() and mixed.height >= 30, "the mixed mark should be a visible line of text"
    singles = {renderer(font, 60, random.Random(3)).image.getchannel("A").tobytes() for font in fonts}
    assert mixed.tobytes() not in singles
    again = renderer(GlyphMix(fonts, random.Random(5)), 60, random.Random(3)).image.getchannel("A")
    assert again.tobytes() == mixed.tobytes(), "the mix is seeded"


def test_variation_sometimes_mixes_fonts_and_only_among_those_given():
    fonts = fonts_for("train")
    variation = MarkVariation(random.Random(0))
    picks = [variation.typeface(fonts[0], fonts) for _ in range(200)]
    mixes = [p for p in picks if isinstance(p, GlyphMix)]
    assert 20 < len(mixes) < 120, "about three marks in ten get mixed fonts"
    assert all(set(m.fonts) == set(fonts) for m in mixes)
    assert all(p == fonts[0] for p in picks if not isinstance(p, GlyphMix))
    assert variation.typeface(fonts[0], fonts[:1]) == fonts[0], "one font: nothing to mix"


def test_variation_stacks_the_icon_above_some_plain_99co_marks_only():
    text = Image.new("L", (120, 30), 0)
    text.paste(255, (0, 5, 120, 25))  # a wide line of "text", no icon
    plain = RenderedMark(Image.merge("RGBA", [text] * 4), "99co", "plain")
    with_icon = RenderedMark(plain.image, "99co", "icon")
    stacked = [v for v in (MarkVariation(random.Random(seed))(plain) for seed in range(200)) if v.layout == "stacked"]
    assert 30 < len(stacked) < 75, "about one plain 99.co mark in four gets the icon stacked above"
    assert all(v.image.height >= 2 * text.height for v in stacked), "the icon sits above the text"
    assert all(v.layout == "icon" for v in (MarkVariation(random.Random(seed))(with_icon) for seed in range(50)))
    other = RenderedMark(plain.image, "other")
    assert all(v.layout == "plain" for v in (MarkVariation(random.Random(seed))(other) for seed in range(50)))


def test_train_marks_take_the_long_wordmark_more_often_than_validation_marks():
    """Long wordmarks ("99.co Indonesia", width >= 5 heights) are oversampled for train only."""
    font = fonts_for("train")[0]

    def long_marks(share: float) -> int:
        marks = (render_99co(font, 40, random.Random(seed), long_share=share).image for seed in range(300))
        return sum(mark.width >= 5 * mark.height for mark in marks)

    assert long_marks(P_LONG_WORDMARK) > 1.8 * long_marks(LONG_WORDMARK_SHARE) > 0
    assert SyntheticGenerator("train", 0).long_share == P_LONG_WORDMARK
    assert SyntheticGenerator("val", 0).long_share == SyntheticGenerator("test", 0).long_share == LONG_WORDMARK_SHARE


def test_slant_shears_the_top_row_right_for_italic():
    coverage = Image.new("L", (20, 40), 0)
    coverage.paste(255, (0, 0, 4, 40))  # a vertical bar at the left edge
    italic = np.asarray(MarkVariation._slant(coverage, 0.3))
    top_ink, bottom_ink = np.nonzero(italic[1])[0].mean(), np.nonzero(italic[-2])[0].mean()
    assert top_ink > bottom_ink + 8


def test_glyph_variation_touches_only_the_train_split(tmp_path):
    """Validation and test renderings are the same with variation on or off (figures stay comparable)."""
    backgrounds = _flat_backgrounds(tmp_path / "bg", 4)
    plain = SynthConfig(vary_glyphs=False)
    for split in ("val", "test"):
        with_variation = [SyntheticGenerator(split, 0).generate(b).image_bytes for b in backgrounds]
        without = [SyntheticGenerator(split, 0, config=plain).generate(b).image_bytes for b in backgrounds]
        assert with_variation == without
    # A fresh generator per photo (its first drawing), so that a variation's change of a mark's
    # size cannot shift the main stream; seeds differ so that some variations fire.
    photos = list(enumerate(backgrounds * 3))
    varied = [SyntheticGenerator("train", seed).generate(b) for seed, b in photos]
    unvaried = [SyntheticGenerator("train", seed, config=plain).generate(b) for seed, b in photos]
    assert [v.image_bytes for v in varied] != [u.image_bytes for u in unvaried]
    # its own random stream: the same photos get a brand mark with or without variation
    assert [bool(v.boxes) for v in varied] == [bool(u.boxes) for u in unvaried]


def test_cached_synthetic_set_is_rebuilt_when_the_fonts_change(tmp_path, monkeypatch):
    _flat_backgrounds(tmp_path / "houses", 4)
    counts = {"train": 3}
    build_synthetic(tmp_path / "synth", tmp_path / "houses", counts=counts, seed=1)
    image = tmp_path / "synth" / "images" / "train" / "train_00000.jpg"
    image.write_bytes(b"stale")
    build_synthetic(tmp_path / "synth", tmp_path / "houses", counts=counts, seed=1)
    assert image.read_bytes() == b"stale", "same generator, fonts, counts and seed: the cache is reused"
    monkeypatch.setattr("training.build.font_fingerprint", lambda: "other-fonts")
    manifest = build_synthetic(tmp_path / "synth", tmp_path / "houses", counts=counts, seed=1)
    assert image.read_bytes() != b"stale"
    assert manifest.reports[-1]["fonts"] == "other-fonts"


def test_ablation_without_glyph_variation_gets_its_own_folder_and_stamp(tmp_path):
    _flat_backgrounds(tmp_path / "houses", 4)
    _, varied_dir = default_dirs(tmp_path)
    _, plain_dir = default_dirs(tmp_path, config=SynthConfig(vary_glyphs=False))
    assert varied_dir != plain_dir, "the ablation must not overwrite the default recipe's set"
    plain = build_synthetic(
        plain_dir, tmp_path / "houses", counts={"train": 2}, seed=1, config=SynthConfig(vary_glyphs=False)
    )
    varied = build_synthetic(varied_dir, tmp_path / "houses", counts={"train": 2}, seed=1)
    assert plain.reports[-1]["glyph_variation"] is False and varied.reports[-1]["glyph_variation"] is True


def test_more_photos_in_one_split_keep_every_split_s_earlier_photos(tmp_path):
    """A split is drawn in sequence from its own stream: growing validation (or train) adds photos
    and changes none already drawn, so figures measured on the earlier ones stay comparable."""
    houses = tmp_path / "houses"
    houses.mkdir()
    for house in (1, 2, 330, 331, 370, 371):  # house ids of the train, val and test shares
        Image.new("RGB", (480, 360), (40 + house % 200, 90, 120)).save(houses / f"{house}_kitchen.png")

    def shas(counts: dict[str, int]) -> dict[str, list[str]]:
        manifest = build_synthetic(tmp_path / f"synth-{counts['val']}", houses, counts=counts, seed=3)
        by_split = {split: sorted(manifest.split(split), key=lambda item: item.path) for split in counts}
        return {split: [item.sha256 for item in items] for split, items in by_split.items()}

    small = shas({"train": 4, "val": 3, "test": 3})
    large = shas({"train": 4, "val": 6, "test": 3})
    assert large["val"][:3] == small["val"] and len(large["val"]) == 6
    assert large["train"] == small["train"] and large["test"] == small["test"]


def test_package_fonts_are_train_only_and_drawn_at_their_weight(monkeypatch):
    from training.synth import fonts as font_module

    faces = font_module.package_faces()
    if not faces:
        pytest.skip("no dependency ships a variable font here")
    assert set(faces) <= set(fonts_for("train"))
    assert not set(faces) & (set(fonts_for("val")) | set(fonts_for("test")))
    family = [face for face in faces if face.path == faces[0].path]
    inks = {}
    for face in (family[0], family[-1]):  # the thinnest and the heaviest weight
        layer = render_99co(face, 60, random.Random(3)).image.getchannel("A")
        inks[face.weight] = (np.asarray(layer) > 128).mean()
    assert inks[family[-1].weight] > inks[family[0].weight] * 1.3, "a heavier weight should lay down more ink"
    assert "woff2" not in family[0].name and str(family[0].weight) in family[0].name
    with_faces = font_module.font_fingerprint()
    monkeypatch.setattr(font_module, "package_faces", lambda: ())
    assert font_module.font_fingerprint() != with_faces, "a change of package fonts must force a redraw"


def test_lookalike_negative_ablation_swaps_only_those_texts_in_train(tmp_path):
    """Off, train hard negatives never draw the look-alike endings; validation and test are unchanged,
    and a train photo drawn by a fresh generator changes only if it drew one."""
    texts = negative_texts_without(ENDING_LOOKALIKE_NEGATIVES)
    assert len(texts) == len(HARD_NEGATIVE_TEXTS) and not set(texts) & set(ENDING_LOOKALIKE_NEGATIVES)
    assert [a for a, b in zip(HARD_NEGATIVE_TEXTS, texts, strict=True) if a != b] == list(ENDING_LOOKALIKE_NEGATIVES)
    backgrounds = _flat_backgrounds(tmp_path / "bg", 4)
    ablated = SynthConfig(lookalike_negatives=False)
    for split in ("val", "test"):
        default = [SyntheticGenerator(split, 0).generate(b).image_bytes for b in backgrounds]
        assert default == [SyntheticGenerator(split, 0, config=ablated).generate(b).image_bytes for b in backgrounds]
    drawn = [
        (SyntheticGenerator("train", seed).generate(b), SyntheticGenerator("train", seed, config=ablated).generate(b))
        for seed in range(40)
        for b in backgrounds[:1]
    ]
    same = sum(a.image_bytes == b.image_bytes for a, b in drawn)
    assert 0 < same < len(drawn), "a fresh generator per photo: only those that drew a look-alike negative change"
    _, default_dir = default_dirs(tmp_path)
    _, ablation_dir = default_dirs(tmp_path, config=ablated)
    assert default_dir != ablation_dir
    stamp = build_synthetic(ablation_dir, tmp_path / "bg", counts={"train": 1}, seed=1, config=ablated).reports[-1]
    assert stamp["lookalike_negatives"] is False
    assert "lookalike_negatives" not in build_synthetic(default_dir, tmp_path / "bg", counts={"train": 1}).reports[-1]


def test_any_generator_change_gets_its_own_folder_and_a_stamp_the_cache_matches(tmp_path):
    """A config is one object from the CLI to the stamp: a changed field that is not a named ablation
    still names a folder of its own, is recorded in the set's stamp, and a rebuild reuses the set."""
    backgrounds = tmp_path / "bg"
    _flat_backgrounds(backgrounds, 2)
    changed = SynthConfig(opacity=(0.5, 0.6), vary_glyphs=False)
    assert SynthConfig().changes() == {} and SynthConfig().folder_suffix() == ""
    assert changed.changes() == {"opacity": [0.5, 0.6], "vary_glyphs": False}
    _, changed_dir = default_dirs(tmp_path, config=changed)
    _, other_dir = default_dirs(tmp_path, config=SynthConfig(opacity=(0.5, 0.7), vary_glyphs=False))
    assert changed_dir.name.startswith("synthetic-s0-plain-") and len({changed_dir, other_dir}) == 2
    stamp = build_synthetic(changed_dir, backgrounds, counts={"train": 1}, seed=1, config=changed).reports[-1]
    assert stamp["opacity"] == [0.5, 0.6] and stamp["glyph_variation"] is False
    image = next((changed_dir / "images").rglob("*.jpg"))
    image.write_bytes(b"stale")
    build_synthetic(changed_dir, backgrounds, counts={"train": 1}, seed=1, config=changed)
    assert image.read_bytes() == b"stale", "the same config again: the cached set is reused"
