"""Text rescoring of candidates: name matching, the rule, the real PP-OCR recogniser, the detector stage."""

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

from wmstudio.runtime import Detection, Detector
from wmstudio.runtime.detector import ModelLoadError
from wmstudio.runtime.text_reading import TextReader, TextRescoring, brand_similarity, reading_crop, rescore_candidates

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


def test_the_recogniser_reads_a_wordmark(reader):
    image, box = _wordmark("rumah123")
    text, confidence = reader.read(reading_crop(image, box))
    assert brand_similarity(text, "rumah123") >= 0.75 and confidence > 0.5


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


def test_a_version_with_text_rescoring_loads_it_and_offers_the_network_alone(tmp_path, bundled_registry):
    pytest.importorskip("rapidocr_onnxruntime")
    champion = json.loads((bundled_registry / "registry.json").read_text())["champion"]
    folder = tmp_path / "v99"
    shutil.copytree(bundled_registry / champion, folder)
    card = json.loads((folder / "model_card.json").read_text())
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
