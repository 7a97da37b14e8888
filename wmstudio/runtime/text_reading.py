"""Read the text of the detector's best candidates and rescore them by what it says.

The network cannot tell a brand's wordmark from other agencies' wordmarks at a threshold that
finds the brand (issue #30): both are light text on a photo. What the text *says* separates them.
A version whose card has a ``text_rescoring`` section crops its best candidates, reads them with
PP-OCR's text recogniser, and

- boosts a candidate whose text matches its brand's name: ``1 - (1 - s)(1 - boost)``;
- damps one whose confident text is something else: ``s (1 - damp)``;
- leaves unreadable ones as the network scored them.

The recogniser is PP-OCRv4's, as shipped inside the ``rapidocr-onnxruntime`` wheel (Apache-2.0;
nothing is downloaded). Only its ONNX file is used, through ONNX Runtime like the detector:
importing the rapidocr package would pull OpenCV, with its GUI libraries, into the serving path.
Pre-processing (BGR, height 48, values in [-1, 1], right padding) and greedy CTC decoding follow
rapidocr's ``TextRecognizer``; the grey levels are stretched first. The parameters were chosen on validation
(``python -m experiments.ocr_rescoring``).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, fields, replace
from difflib import SequenceMatcher
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image, ImageOps

from wmstudio.brands import BRANDS

BRAND_TEXT = {"rumah123": "rumah123", "99co": "99.co"}
assert set(BRAND_TEXT) == set(BRANDS), "every brand needs the text its mark says"
REC_MODEL = "models/ch_PP-OCRv4_rec_infer.onnx"
REC_HEIGHT = 48
MAX_WIDTH = 960  # a 20:1 crop at height 48; longer ones are squeezed


class TextReaderUnavailable(RuntimeError):
    """The version asks for text rescoring, but the recogniser's package is not installed."""


@dataclass(frozen=True)
class TextRescoring:
    """The card's ``text_rescoring`` section: which candidates are read and how scores move."""

    floor: float = 0.15  # candidates scoring below this are not read
    top: int = 3  # at most this many (the best) per photo
    match: float = 0.75  # brand-name similarity from which the text counts as the brand's
    boost: float = 0.5
    damp: float = 0.3
    min_confidence: float = 0.8  # other text must be read this confidently to damp
    min_chars: int = 3

    @classmethod
    def from_card(cls, card: dict) -> TextRescoring | None:
        section = card.get("text_rescoring")
        if section is None:
            return None
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(section) - known)
        if unknown:
            raise ValueError(f"unknown text_rescoring settings {unknown}; known: {sorted(known)}")
        return cls(**section)

    def to_card(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def rescored(self, score: float, brand: str, text: str, confidence: float) -> float:
        if brand_similarity(text, brand) >= self.match:
            return 1 - (1 - score) * (1 - self.boost)
        if confidence >= self.min_confidence and len(text.strip()) >= self.min_chars:
            return score * (1 - self.damp)
        return score


def brand_similarity(text: str, brand: str) -> float:
    """Best ``SequenceMatcher`` ratio of the brand's name against any window of the text.

    OCR on a semi-transparent mark misreads a glyph or two ("rumahi23") and often reads more
    than the mark (a URL around it): a windowed ratio tolerates both.
    """
    target = BRAND_TEXT[brand]
    text = "".join(ch for ch in text.lower() if ch.isalnum() or ch == ".")
    best = 0.0
    for width in range(max(1, len(target) - 2), len(target) + 3):
        for start in range(0, max(1, len(text) - width + 1)):
            window = text[start : start + width]
            if window:
                best = max(best, SequenceMatcher(None, window, target).ratio())
    return best


def reading_crop(image: Image.Image, box: tuple[float, float, float, float]) -> Image.Image:
    """The candidate with a margin: boxes are often tight on the glyphs OCR needs whole."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    return image.crop(
        (
            max(0, int(x0 - 0.1 * w)),
            max(0, int(y0 - 0.25 * h)),
            min(image.width, int(x1 + 0.1 * w) + 1),
            min(image.height, int(y1 + 0.25 * h) + 1),
        )
    )


def recogniser_path() -> Path:
    """The recogniser inside the installed wheel, found without importing the package (OpenCV)."""
    spec = importlib.util.find_spec("rapidocr_onnxruntime")
    if spec is None or not spec.submodule_search_locations:
        raise TextReaderUnavailable(
            "this model version reads candidate text and needs rapidocr-onnxruntime (pip install rapidocr-onnxruntime)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / REC_MODEL
    if not path.exists():
        raise TextReaderUnavailable(f"rapidocr-onnxruntime is installed without its recogniser {REC_MODEL}")
    return path


class TextReader:
    """PP-OCRv4's recogniser on ONNX Runtime: a crop in, (text, confidence) out."""

    def __init__(self, threads: int = 2, model_path: Path | None = None) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Its worker threads must not spin after a read: the detector's session runs next on the
        # same cores (spinning threads of one session slowed the other twofold in bench_versions).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(
            str(model_path or recogniser_path()), options, providers=["CPUExecutionProvider"]
        )
        characters = self.session.get_modelmeta().custom_metadata_map["character"].splitlines()
        self.alphabet = ["", *characters, " "]  # index 0 is the CTC blank
        self.input_name = self.session.get_inputs()[0].name

    @staticmethod
    def tensor(crop: Image.Image) -> np.ndarray:
        # Stretched grey levels: a faint white mark on a bright wall becomes legible text (on the
        # train and validation real marks 5 of 9 read as "rumah123" against 3 of 9 unstretched).
        rgb = ImageOps.autocontrast(crop.convert("L"), cutoff=1).convert("RGB")
        width = min(MAX_WIDTH, max(REC_HEIGHT // 4, round(REC_HEIGHT * rgb.width / max(1, rgb.height))))
        resized = np.asarray(rgb.resize((width, REC_HEIGHT), Image.BILINEAR), dtype=np.float32)[:, :, ::-1]
        chw = (resized.transpose(2, 0, 1) / 255.0 - 0.5) / 0.5
        padded = np.zeros((3, REC_HEIGHT, max(width, REC_HEIGHT * 320 // 48)), dtype=np.float32)
        padded[:, :, :width] = chw
        return padded[np.newaxis]

    def read(self, crop: Image.Image) -> tuple[str, float]:
        probabilities = self.session.run(None, {self.input_name: self.tensor(crop)})[0][0]
        best, confidence = probabilities.argmax(axis=1), probabilities.max(axis=1)
        keep = (best != 0) & np.append(True, best[1:] != best[:-1])  # drop blanks and repeats
        if not keep.any():
            return "", 0.0
        text = "".join(self.alphabet[i] for i in best[keep])
        return text, float(confidence[keep].mean())


def rescore_candidates(image: Image.Image, candidates: tuple, reader: TextReader, rescoring: TextRescoring) -> tuple:
    """The candidates with the best few read and rescored, best first again."""
    ranked = sorted(candidates, key=lambda d: -d.score)
    read = [d for d in ranked[: rescoring.top] if d.score >= rescoring.floor]
    changed = {}
    for candidate in read:
        text, confidence = reader.read(reading_crop(image, candidate.box))
        changed[id(candidate)] = replace(
            candidate, score=rescoring.rescored(candidate.score, candidate.brand, text, confidence)
        )
    return tuple(sorted((changed.get(id(d), d) for d in ranked), key=lambda d: -d.score))
