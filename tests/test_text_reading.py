"""Text rescoring of candidates: name matching, the rule, the real PP-OCR recogniser, the detector stage."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from wmstudio.runtime import Detection, Detector
from wmstudio.runtime.detector import ModelLoadError
from wmstudio.runtime.text_reading import (
    TextReader,
    TextRescoring,
    brand_similarity,
    brand_spotting,
    keyword_score,
    reading_crop,
    rescore_candidates,
)

pytestmark = pytest.mark.unit
FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")


def test_brand_similarity_tolerates_misreads_and_rejects_other_names():
    assert brand_similarity("rumahi23", "rumah123") >= 0.75
    assert brand_similarity("www.99.co/id", "99co") == 1.0
    assert brand_similarity("Ray White", "rumah123") < 0.6
    assert brand_similarity("", "99co") == 0.0


def test_rule_boosts_the_brand_damps_other_confident_text_and_keeps_the_unreadable():
    rule = TextRescoring(match=0.75, boost=0.5, damp=0.3)
    assert rule.rescored(0.5, "rumah123", "rumah123", 0.9) == pytest.approx(0.75)
    assert rule.rescored(0.5, "99co", "Century21", 0.95) == pytest.approx(0.35)
    assert rule.rescored(0.5, "99co", "Century21", 0.5) == 0.5  # not read confidently: unchanged
    assert rule.rescored(0.5, "99co", "", 0.0) == 0.5


ALPHABET = ["", "r", "u", "m", "a", "h", "1", "2", "3", "x", "R", " "]


def _frames(symbols: list[str], top: float = 0.9, second: dict[int, str] | None = None) -> np.ndarray:
    """Frame probabilities whose best symbol is ``symbols[t]``; ``second[t]`` gets 0.08 there."""
    rows = np.full((len(symbols), len(ALPHABET)), (1 - top) / len(ALPHABET))
    for t, symbol in enumerate(symbols):
        rows[t, ALPHABET.index(symbol)] = top
        if second and t in second:
            rows[t, ALPHABET.index(second[t])] = 0.08
    return rows / rows.sum(axis=1, keepdims=True)


def test_keyword_score_finds_the_name_anywhere_in_either_case_and_prices_a_misread_glyph():
    spelled = ["x", "", "R", "u", "", "m", "a", "h", "1", "2", "3", "", "x"]
    assert keyword_score(_frames(spelled), ALPHABET, "rumah123") == pytest.approx(1.0)
    repeats = ["r", "r", "u", "m", "m", "a", "h", "h", "1", "2", "2", "3"]  # repeats merge
    assert keyword_score(_frames(repeats), ALPHABET, "rumah123") == pytest.approx(1.0)
    doubled = ["1", "", "1", "2", "3"]  # a doubled letter needs a blank between its frames
    assert keyword_score(_frames(doubled), ALPHABET, "1123") == pytest.approx(1.0)
    assert keyword_score(_frames(["1", "1", "2", "3"]), ALPHABET, "1123") < 0.9
    misread = ["r", "u", "m", "a", "x", "1", "2", "3"]
    second_best = keyword_score(_frames(misread, second={4: "h"}), ALPHABET, "rumah123")
    unseen = keyword_score(_frames(misread), ALPHABET, "rumah123")
    assert 0.6 < second_best < 1.0 and unseen < second_best  # the "h" ranked second costs less
    assert keyword_score(_frames(["x"] * 12), ALPHABET, "rumah123") < 0.2
    assert keyword_score(_frames(["r", "u", "m"]), ALPHABET, "rumah123") == 0.0  # too few frames


def test_with_spot_set_the_rule_trusts_the_spotted_name_over_the_greedy_text():
    spotting = TextRescoring(spot=0.3, boost=0.5, damp=0.3)
    # "propertiku.co.id" holds ".co", which the greedy rule's short window takes for 99.co
    assert TextRescoring().rescored(0.5, "99co", "propertiku.co.id", 0.97) == pytest.approx(0.75)
    assert spotting.rescored(0.5, "99co", "propertiku.co.id", 0.97, spotted=0.0) == pytest.approx(0.35)
    assert spotting.rescored(0.5, "rumah123", "Qrumai2", 0.85, spotted=0.4) == pytest.approx(0.75)
    assert spotting.rescored(0.5, "rumah123", "rumah123", 0.9, spotted=None) == pytest.approx(0.75)  # no frames


def test_unspotted_damps_half_confident_text_that_spells_no_brand_and_nothing_else():
    rule = TextRescoring(spot=0.3, unspotted=0.02)
    assert rule.rescored(0.5, "rumah123", "SCenury2i", 0.59, spotted=0.01, best_spotted=0.01) == pytest.approx(0.35)
    assert TextRescoring(spot=0.3).rescored(0.5, "rumah123", "SCenury2i", 0.59, 0.01, 0.01) == 0.5  # off by default
    assert rule.rescored(0.5, "rumah123", "ah123", 0.59, spotted=0.1, best_spotted=0.1) == 0.5  # half the name
    assert rule.rescored(0.5, "rumah123", "23", 0.59, spotted=0.01, best_spotted=0.01) == 0.5  # too short to judge
    assert rule.rescored(0.5, "rumah123", "SCenury2i", 0.59, spotted=0.01) == 0.5  # other brands not spotted


def test_faint_spot_lifts_a_half_read_brand_by_the_smaller_boost_instead_of_any_damping():
    rule = TextRescoring(spot=0.3, boost=0.8, unspotted=0.02, faint_spot=0.05, faint_boost=0.3)
    assert rule.rescored(0.5, "rumah123", "Rurnal12", 0.59, spotted=0.1, best_spotted=0.1) == pytest.approx(0.65)
    assert rule.rescored(0.5, "rumah123", "Rurnal12", 0.95, spotted=0.1, best_spotted=0.1) == pytest.approx(0.65)
    assert rule.rescored(0.5, "rumah123", "rumah123", 0.9, spotted=0.4, best_spotted=0.4) == pytest.approx(0.9)
    assert rule.rescored(0.5, "rumah123", "SCenury2i", 0.59, spotted=0.04, best_spotted=0.04) == 0.5  # under both
    assert rule.rescored(0.5, "rumah123", "SCenury2i", 0.59, spotted=0.01, best_spotted=0.01) == pytest.approx(0.35)
    assert rule.rescored(0.5, "rumah123", "", 0.0, spotted=None) == 0.5  # no frames: nothing spotted faintly
    off = TextRescoring(spot=0.3, boost=0.8)  # off by default: confident other text is damped
    assert off.rescored(0.5, "rumah123", "Rurnal12", 0.95, spotted=0.1, best_spotted=0.1) == pytest.approx(0.35)


def test_the_experiments_rule_reads_a_cached_candidate_as_the_runtime_rescores_it():
    from experiments.keyword_spotting import Rule, rescored
    from wmstudio.runtime import Prediction

    runtime = TextRescoring(spot=0.3, boost=0.8, unspotted=0.02, faint_spot=0.05, faint_boost=0.3, floor=0.05)
    rule = Rule.of(runtime)
    for text, conf, spots in [
        ("Rurnal12", 0.9, {"rumah123": 0.1, "99co": 0.0}),  # faint
        ("rumah123", 0.9, {"rumah123": 0.6, "99co": 0.0}),  # spotted
        ("SCenury2i", 0.59, {"rumah123": 0.01, "99co": 0.0}),  # spells no brand
        ("SCenury2i", 0.59, {"rumah123": 0.03, "99co": 0.0}),  # half-confident, unchanged
    ]:
        box = (10.0, 10.0, 90.0, 30.0)
        read = {"box": box, "brand": "rumah123", "text": text, "conf": conf, "spot": spots["rumah123"], "spots": spots}
        row = {"item": None, "prediction": Prediction(100, 40, (Detection("rumah123", 0.5, box),)), "reads": [read]}
        expected = runtime.rescored(0.5, "rumah123", text, conf, spots["rumah123"], max(spots.values()))
        assert rescored(row, rule).prediction.candidates[0].score == pytest.approx(expected), text


def test_card_section_round_trips_and_rejects_unknown_settings():
    assert TextRescoring.from_card({}) is None
    rule = TextRescoring.from_card({"text_rescoring": {"boost": 0.4}})
    assert (
        rule is not None and rule.boost == 0.4 and TextRescoring.from_card({"text_rescoring": rule.to_card()}) == rule
    )
    with pytest.raises(ValueError, match="unknown text_rescoring"):
        TextRescoring.from_card({"text_rescoring": {"bost": 0.4}})


def test_reading_crop_adds_a_margin_inside_the_photo():
    crop = reading_crop(Image.new("RGB", (100, 50)), (0.0, 10.0, 50.0, 30.0))
    assert crop.size == (56, 31)  # 10 % of the width right, 25 % of the height above and below
    wide = reading_crop(Image.new("RGB", (100, 50)), (20.0, 10.0, 50.0, 40.0), margin_x=0.5, margin_y=0.5)
    assert wide.size == (61, 50)  # 15 px left and right; 15 px above and below, clipped to the photo


def _wordmark(text: str, size: tuple[int, int] = (400, 200)) -> tuple[Image.Image, tuple[float, float, float, float]]:
    image = Image.new("RGB", size, (90, 110, 80))
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype(str(FONT), 36)
    x0, y0, x1, y1 = draw.textbbox((60, 80), text, font=font)
    draw.text((60, 80), text, font=font, fill=(245, 245, 245))
    return image, (float(x0), float(y0), float(x1), float(y1))


@pytest.fixture(scope="module")
def reader() -> TextReader:
    pytest.importorskip("rapidocr_onnxruntime")
    return TextReader(threads=1)


def test_a_wider_reading_margin_spots_the_whole_name_behind_a_partial_box(reader):
    # On altered photos a candidate box often covers only the end of the name ("mah123").
    image, (x0, y0, x1, y1) = _wordmark("rumah123")
    partial = (x0 + 0.4 * (x1 - x0), y0, x1, y1)
    default_card = TextRescoring.from_card({"text_rescoring": {"spot": 0.3}})  # a card from before the margins
    wide = TextRescoring(spot=0.3, margin_x=0.6)
    assert default_card is not None and (default_card.margin_x, default_card.margin_y) == (0.1, 0.25)
    assert TextRescoring.from_card({"text_rescoring": wide.to_card()}) == wide
    candidate = Detection("rumah123", 0.5, partial)
    (tight,) = rescore_candidates(image, (candidate,), reader, default_card)
    (widened,) = rescore_candidates(image, (candidate,), reader, wide)
    assert tight.score <= 0.5  # "mah123" alone is not spotted
    assert widened.score == pytest.approx(0.75)  # the whole name is read and spotted: boosted


def test_a_candidate_spelling_half_the_name_is_read_again_wider_and_nothing_else_is(reader, monkeypatch):
    image, (x0, y0, x1, y1) = _wordmark("rumah123")
    half = Detection("rumah123", 0.5, (x0 + 0.4 * (x1 - x0), y0, x1, y1))  # "mah123"
    second_look = TextRescoring(spot=0.3, reread_part=0.3, reread_margin_x=0.7)
    assert TextRescoring.from_card({"text_rescoring": second_look.to_card()}) == second_look
    reads = []
    monkeypatch.setattr(reader, "tensor", lambda crop: reads.append(crop.width) or TextReader.tensor(crop))
    (once,) = rescore_candidates(image, (half,), reader, TextRescoring(spot=0.3))
    assert once.score <= 0.5 and len(reads) == 1
    (twice,) = rescore_candidates(image, (half,), reader, second_look)
    assert twice.score == pytest.approx(0.75) and len(reads) == 3 and reads[2] > reads[1]  # the wider read spots it
    image, box = _wordmark("Ray White")
    (other,) = rescore_candidates(image, (Detection("rumah123", 0.5, box),), reader, second_look)
    assert other.score < 0.5 and len(reads) == 4  # no part of a name: read once, not lifted


def test_the_recogniser_reads_a_wordmark(reader):
    image, box = _wordmark("rumah123")
    text, confidence = reader.read(reading_crop(image, box))
    assert brand_similarity(text, "rumah123") >= 0.75 and confidence > 0.5


def test_keyword_score_of_a_real_reading_separates_the_brand_from_other_names(reader):
    image, box = _wordmark("rumah123")
    brand = reader.probabilities(reading_crop(image, box))
    image, box = _wordmark("Ray White")
    other = reader.probabilities(reading_crop(image, box))
    assert keyword_score(brand, reader.alphabet, "rumah123") > 0.9
    assert keyword_score(other, reader.alphabet, "rumah123") < 0.3
    assert reader.decode(brand) == reader.read(reading_crop(*_wordmark("rumah123")))


def test_crops_of_one_padded_width_are_read_in_one_call_exactly_as_one_by_one(reader, monkeypatch):
    short_a = reading_crop(*_wordmark("rumah123"))
    short_b = reading_crop(*_wordmark("Ray White"))
    long_image, long_box = _wordmark("rumah123 rumah123 rumah123 rumah123", size=(1400, 200))
    long = reading_crop(long_image, long_box)  # wider than the 320 px padding: a width of its own
    crops = [short_a, long, short_b]
    assert len({reader.tensor(crop).shape[-1] for crop in crops}) == 2
    one_by_one = [reader.probabilities(crop) for crop in crops]
    calls = []
    run = reader.session.run
    monkeypatch.setattr(reader.session, "run", lambda *a, **k: calls.append(1) or run(*a, **k), raising=False)
    together = reader.probabilities_of(crops)
    assert len(calls) == 2  # the two short crops share a call, the long one has its own
    assert all(np.array_equal(a, b) for a, b in zip(one_by_one, together, strict=True))
    assert reader.probabilities_of([]) == []


def test_rescore_candidates_reads_only_the_best_above_the_floor(reader):
    image, box = _wordmark("rumah123")
    brand = Detection("rumah123", 0.5, box)
    other = Detection("99co", 0.4, box)
    faint = Detection("99co", 0.05, (0.0, 0.0, 30.0, 10.0))
    rescored = rescore_candidates(image, (other, faint, brand), reader, TextRescoring(top=2, floor=0.1))
    scores = {(d.brand, d.box): d.score for d in rescored}
    assert scores[("rumah123", box)] == pytest.approx(0.75)  # read as its own brand: boosted
    assert scores[("99co", box)] == pytest.approx(0.28)  # "rumah123" is confident other text for 99co
    assert scores[("99co", faint.box)] == 0.05  # under the floor: not read
    assert [d.score for d in rescored] == sorted((d.score for d in rescored), reverse=True)


def test_spotting_reads_the_name_through_spaces_and_a_dropped_dot(reader):
    for text, brand in (("rumah 123", "rumah123"), ("99co", "99co"), ("99.co", "99co")):
        image, box = _wordmark(text)
        probabilities = reader.probabilities(reading_crop(image, box))
        assert brand_spotting(probabilities, reader.alphabet, brand) > 0.9, text
    image, box = _wordmark("rumah.com")
    probabilities = reader.probabilities(reading_crop(image, box))
    assert brand_spotting(probabilities, reader.alphabet, "rumah123") < 0.1
    assert brand_spotting(probabilities, reader.alphabet, "99co") < 0.1
    rescored = rescore_candidates(image, (Detection("99co", 0.5, box),), reader, TextRescoring(spot=0.3))
    assert rescored[0].score == pytest.approx(0.35)  # a competitor's confident name: damped


def test_cross_brand_relabels_a_mark_the_network_named_wrongly_and_only_when_asked(reader):
    image, box = _wordmark("rumah123")
    named_wrongly = Detection("99co", 0.3, box)
    crossed = rescore_candidates(image, (named_wrongly,), reader, TextRescoring(spot=0.3, boost=0.8, cross_brand=True))
    assert crossed[0].brand == "rumah123" and crossed[0].score == pytest.approx(0.86)  # 1 - 0.7 * 0.2
    kept = rescore_candidates(image, (named_wrongly,), reader, TextRescoring(spot=0.3, boost=0.8))
    assert kept[0].brand == "99co" and kept[0].score == pytest.approx(0.21)  # other confident text: damped
    image, box = _wordmark("Ray White")
    other = rescore_candidates(
        image, (Detection("99co", 0.3, box),), reader, TextRescoring(spot=0.3, boost=0.8, cross_brand=True)
    )
    assert other[0].brand == "99co" and other[0].score < 0.3  # neither brand: no relabel
    rule = TextRescoring(spot=0.3, cross_brand=True)
    assert rule.other_brand("99co", {"rumah123": 0.6, "99co": 0.1}) == "rumah123"
    assert rule.other_brand("99co", {"rumah123": 0.2, "99co": 0.1}) is None
    assert TextRescoring(cross_brand=True).other_brand("99co", {"rumah123": 0.9}) is None  # needs spotting


def test_unspotted_needs_no_cross_brand_to_damp_a_competitor_read_without_confidence(reader):
    image, box = _wordmark("Ray White")
    candidate = Detection("rumah123", 0.5, box)
    unsure = {"spot": 0.3, "min_confidence": 1.01}  # no read is confident enough for the old damping alone
    (kept,) = rescore_candidates(image, (candidate,), reader, TextRescoring(**unsure))
    (damped,) = rescore_candidates(image, (candidate,), reader, TextRescoring(**unsure, unspotted=0.02))
    assert kept.score == 0.5 and damped.score == pytest.approx(0.35)
    image, box = _wordmark("rumah123")
    (brand,) = rescore_candidates(
        image, (Detection("rumah123", 0.5, box),), reader, TextRescoring(**unsure, unspotted=0.02)
    )
    assert brand.score == pytest.approx(0.75)  # its own name: boosted as before


def test_a_version_with_text_rescoring_loads_it_and_offers_the_network_alone(tmp_path, bundled_registry):
    pytest.importorskip("rapidocr_onnxruntime")
    champion = json.loads((bundled_registry / "registry.json").read_text())["champion"]
    folder = tmp_path / "v99"
    shutil.copytree(bundled_registry / champion, folder)
    views = ("second_view", "tile_view")  # more looks add candidates: here only the reading is compared
    card = json.loads((folder / "model_card.json").read_text())
    card = {key: value for key, value in card.items() if key not in views}
    (folder / "model_card.json").write_text(json.dumps({**card, "text_rescoring": {"boost": 0.5}}))
    detector = Detector.from_version_dir(folder, threads=1)
    alone = detector.network_only()
    assert detector.text_rescoring is not None and alone.text_rescoring is None
    assert detector.describe()["text_rescoring"]["boost"] == 0.5
    image, _ = _wordmark("Century 21 Realty")
    network = {(d.brand, d.box): d.score for d in alone.predict(image).candidates}
    for candidate in detector.predict(image).candidates:  # same boxes; scores only move with the text
        assert (candidate.brand, candidate.box) in network
    (folder / "model_card.json").write_text(json.dumps({**card, "text_rescoring": {"nope": 1}}))
    with pytest.raises(ModelLoadError, match="text rescoring"):
        Detector.from_version_dir(folder, threads=1)
