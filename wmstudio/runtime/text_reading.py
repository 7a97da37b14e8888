"""Read the text of the detector's best candidates and rescore them by what it says.

The network cannot tell a brand's wordmark from other agencies' wordmarks at a threshold that
finds the brand (issue #30): both are light text on a photo. What the text *says* separates them.
A version whose card has a ``text_rescoring`` section crops its best candidates, reads them with
PP-OCR's text recogniser, and

- boosts a candidate whose text matches its brand's name: ``1 - (1 - s)(1 - boost)``; the match
  is the greedy reading's similarity to the name or, where the card sets ``spot``, the name
  spotted in the recogniser's frame probabilities (:func:`keyword_score`);
- with ``faint_spot``, lifts one whose own brand is spotted faintly by a smaller boost;
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
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from difflib import SequenceMatcher
from functools import lru_cache
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image, ImageOps

from wmstudio.brands import BRANDS

BRAND_TEXT = {"rumah123": "rumah123", "99co": "99.co"}
assert set(BRAND_TEXT) == set(BRANDS), "every brand needs the text its mark says"
# The spellings keyword spotting accepts: OCR often drops the small dot of the 99.co logo.
BRAND_KEYWORDS = {"rumah123": ("rumah123",), "99co": ("99.co", "99co")}
assert set(BRAND_KEYWORDS) == set(BRANDS), "every brand needs its keywords"
# A prefix and a suffix of each name: what a box over half the mark reads ("rumah", "ah123", "99.").
BRAND_PARTS = {"rumah123": ("rumah", "123"), "99co": ("99", ".co")}
assert set(BRAND_PARTS) == set(BRANDS), "every brand needs its name parts"
REC_MODEL = "models/ch_PP-OCRv4_rec_infer.onnx"
REC_HEIGHT = 48
MAX_WIDTH = 960  # a 20:1 crop at height 48; longer ones are squeezed


class TextReaderUnavailable(RuntimeError):
    """The version asks for text rescoring, but the recogniser's package is not installed."""


# Default reading-crop margins: a tenth of the box's width, a quarter of its height, each side.
MARGIN_X, MARGIN_Y = 0.1, 0.25


@dataclass(frozen=True)
class TextRescoring:
    """The card's ``text_rescoring`` section: which candidates are read and how scores move."""

    floor: float = 0.15  # candidates scoring below this are not read
    top: int = 3  # at most this many (the best) per photo
    match: float = 0.75  # brand-name similarity from which the greedy text counts as the brand's
    spot: float | None = None  # if set, the brand is spotted in the frames instead, from this score
    boost: float = 0.5
    damp: float = 0.3
    min_confidence: float = 0.8  # other text must be read this confidently to damp
    min_chars: int = 3
    # With spotting: a candidate whose text spots the other brand takes that brand (and the boost).
    # The network found a mark but named the wrong one; 5 % of v37's validation misses.
    cross_brand: bool = False
    # With spotting: text spotting no brand above this is damped at any confidence. The alarms left
    # on other agencies' marks were mostly half-confident reads ("SCenury2i" at 0.59): the
    # confidence bar let them pass, though they spelled nothing like a brand (issue #30).
    unspotted: float | None = None
    # With spotting: a candidate whose text spots part of a name (BRAND_PARTS) from this score, but
    # no whole name, is read again with ``reread_margin_x`` of its width on each side (issue #30).
    reread_part: float | None = None
    reread_margin_x: float = 0.5
    # With spotting: the candidate's own brand spotted faintly (from this score, under ``spot``) lifts
    # it by ``faint_boost`` instead of any damping. Of v46's validation misses that the network had
    # found, 44 spotted their brand at 0.05-0.3, of 1,035 other agencies' marks 26 (issue #30).
    faint_spot: float | None = None
    faint_boost: float = 0.3
    # The reading crop's margin on each side, as a share of the candidate's width and height.
    margin_x: float = MARGIN_X
    margin_y: float = MARGIN_Y

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

    def says_brand(self, brand: str, text: str, spotted: float | None) -> bool:
        """Spotting when the card asks for it and a score is given, else the greedy text's similarity."""
        if self.spot is not None and spotted is not None:
            return spotted >= self.spot
        return brand_similarity(text, brand) >= self.match

    def rescored(
        self,
        score: float,
        brand: str,
        text: str,
        confidence: float,
        spotted: float | None = None,
        best_spotted: float | None = None,
    ) -> float:
        """``spotted``: the candidate's brand spotted in its frames; ``best_spotted``: the best of every
        brand's (needed by ``unspotted``)."""
        if self.says_brand(brand, text, spotted):
            return self.boosted(score)
        if self.spotted_faintly(spotted):
            return self.boosted(score, self.faint_boost)
        other_text = confidence >= self.min_confidence or self.spells_no_brand(best_spotted)
        if other_text and len(text.strip()) >= self.min_chars:
            return score * (1 - self.damp)
        return score

    def spells_no_brand(self, best_spotted: float | None) -> bool:
        return self.unspotted is not None and best_spotted is not None and best_spotted < self.unspotted

    def spotted_faintly(self, spotted: float | None) -> bool:
        return self.faint_spot is not None and spotted is not None and spotted >= self.faint_spot

    def boosted(self, score: float, boost: float | None = None) -> float:
        return 1 - (1 - score) * (1 - (self.boost if boost is None else boost))

    def other_brand(self, brand: str, spotted_by_brand: dict[str, float]) -> str | None:
        """With ``cross_brand``, the other brand the text spots (None when off, unspotted or without spotting)."""
        if not self.cross_brand or self.spot is None:
            return None
        others = [(score, name) for name, score in spotted_by_brand.items() if name != brand and score >= self.spot]
        return max(others)[1] if others else None


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


def reading_crop(
    image: Image.Image, box: tuple[float, float, float, float], margin_x: float = MARGIN_X, margin_y: float = MARGIN_Y
) -> Image.Image:
    """The candidate with a margin: boxes are often tight on the glyphs OCR needs whole, and on an
    altered photo a box may cover only part of the name ("ah123")."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    return image.crop(
        (
            max(0, int(x0 - margin_x * w)),
            max(0, int(y0 - margin_y * h)),
            min(image.width, int(x1 + margin_x * w) + 1),
            min(image.height, int(y1 + margin_y * h) + 1),
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
        self.alphabet = ("", *characters, " ")  # index 0 is the CTC blank
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

    def probabilities(self, crop: Image.Image) -> np.ndarray:
        """Per frame (about 8 px of the resized crop), the probability of every character."""
        return self.session.run(None, {self.input_name: self.tensor(crop)})[0][0]

    def probabilities_of(self, crops: Sequence[Image.Image]) -> list[np.ndarray]:
        """:meth:`probabilities` of several crops, those padded to one width read in one call.

        Only equal padded widths share a call: padding a crop wider than it alone would be
        changes what the recogniser's global mixing sees, so it could change the reading.
        """
        tensors = [self.tensor(crop) for crop in crops]
        by_width: dict[int, list[int]] = {}
        for index, tensor in enumerate(tensors):
            by_width.setdefault(tensor.shape[-1], []).append(index)
        found: dict[int, np.ndarray] = {}
        for indices in by_width.values():
            batch = np.concatenate([tensors[i] for i in indices])
            found |= dict(zip(indices, self.session.run(None, {self.input_name: batch})[0], strict=True))
        return [found[index] for index in range(len(crops))]

    def read(self, crop: Image.Image) -> tuple[str, float]:
        return self.decode(self.probabilities(crop))

    def decode(self, probabilities: np.ndarray) -> tuple[str, float]:
        """Greedy CTC decoding: the most likely character per frame, blanks and repeats dropped."""
        best, confidence = probabilities.argmax(axis=1), probabilities.max(axis=1)
        keep = (best != 0) & np.append(True, best[1:] != best[:-1])  # drop blanks and repeats
        if not keep.any():
            return "", 0.0
        text = "".join(self.alphabet[i] for i in best[keep])
        return text, float(confidence[keep].mean())


def keyword_score(probabilities: np.ndarray, alphabet: Sequence[str], keyword: str) -> float:
    """How well the frames spell the keyword somewhere, in (0, 1]: 1 when the greedy reading has it.

    Greedy decoding keeps only the top character per frame, so a faint glyph read second best
    ("rumai2" for rumah123) is lost. Here the keyword is aligned to the frames by CTC's rules
    (blanks between characters, repeats merged, either case), free frames before and after, and
    each frame is scored by its probability relative to that frame's best. The result is the
    best alignment's ratio to the greedy path, per keyword character (a geometric mean), so
    one misread glyph costs what its probability ratio says, not the whole match.
    """
    gap_columns, char_columns = _keyword_columns(tuple(alphabet), keyword.lower())
    wanted = sorted({*gap_columns, *(i for columns in char_columns for i in columns)})
    position_of = {column: position for position, column in enumerate(wanted)}
    floor = np.log(np.maximum(probabilities.max(axis=1, keepdims=True), 1e-12))  # each frame's best
    relative = np.log(np.maximum(probabilities[:, wanted], 1e-12)) - floor  # only the columns it needs

    def best_of(columns: tuple[int, ...]) -> np.ndarray:
        if not columns:
            return np.full(len(probabilities), -np.inf, dtype=relative.dtype)
        return relative[:, [position_of[c] for c in columns]].max(axis=1)

    length, states = len(keyword), 2 * len(keyword) + 1
    emit = np.repeat(best_of(gap_columns)[:, None], states, axis=1)  # even states: blank or a space ("rumah 123")
    for position, columns in enumerate(char_columns):
        emit[:, 2 * position + 1] = best_of(columns)
    can_skip = np.zeros(states, dtype=bool)  # blank skipped between two different characters
    can_skip[3::2] = [a != b for a, b in zip(keyword.lower()[1:], keyword.lower()[:-1], strict=True)]
    from_prefix = np.full(states, -np.inf)
    from_prefix[:2] = 0.0  # the keyword starts on its leading blank or its first character
    score = np.full(states, -np.inf)
    best = -np.inf
    for frame in emit:
        from_previous = np.concatenate(([-np.inf], score[:-1]))
        from_skip = np.where(can_skip, np.concatenate(([-np.inf, -np.inf], score[:-2])), -np.inf)
        score = np.maximum.reduce([score, from_previous, from_skip, from_prefix]) + frame
        best = max(best, score[-1], score[-2])  # then free frames to the end
    return float(np.exp(best / max(1, length)))


@lru_cache(maxsize=16)
def _keyword_columns(alphabet: tuple[str, ...], keyword: str) -> tuple[tuple[int, ...], tuple[tuple[int, ...], ...]]:
    """Columns of the blank and spaces, and of each keyword character in either case (looked up once)."""
    gaps = (0, *(i for i, symbol in enumerate(alphabet) if i and not symbol.strip()))
    chars = tuple(tuple(i for i, symbol in enumerate(alphabet) if symbol and symbol.lower() == c) for c in keyword)
    return gaps, chars


def brand_spotting(probabilities: np.ndarray, alphabet: Sequence[str], brand: str) -> float:
    """The best :func:`keyword_score` of the brand's spellings."""
    return max(keyword_score(probabilities, alphabet, keyword) for keyword in BRAND_KEYWORDS[brand])


def part_spotting(probabilities: np.ndarray, alphabet: Sequence[str]) -> float:
    """The best keyword score of any brand's name part (:data:`BRAND_PARTS`): half a mark read."""
    return max(keyword_score(probabilities, alphabet, part) for parts in BRAND_PARTS.values() for part in parts)


def _named_when_read_wider(
    image: Image.Image, candidate, reader: TextReader, rescoring: TextRescoring, probabilities: np.ndarray
) -> str | None:
    """The brand a wider second read spots, taken only when the first read spelled part of a name.

    On crops and corners a box often covers part of the mark ("ah123"). A wider crop for every
    candidate takes in other text as well and cost real F1; as a second look it can only lift.
    """
    if rescoring.reread_part is None or part_spotting(probabilities, reader.alphabet) < rescoring.reread_part:
        return None
    wide = reader.probabilities(reading_crop(image, candidate.box, rescoring.reread_margin_x, rescoring.margin_y))
    spots = {brand: brand_spotting(wide, reader.alphabet, brand) for brand in BRAND_KEYWORDS}
    if spots[candidate.brand] >= rescoring.spot:
        return candidate.brand
    return rescoring.other_brand(candidate.brand, spots)


def _rescored_candidate(
    image: Image.Image, candidate, reader: TextReader, rescoring: TextRescoring, probabilities: np.ndarray
):
    """One candidate read (``probabilities`` of its reading crop) and rescored: boosted (perhaps
    relabelled) when its text names a brand, damped when it says something else, unchanged when
    unreadable."""
    text, confidence = reader.decode(probabilities)
    if rescoring.spot is None:
        return replace(candidate, score=rescoring.rescored(candidate.score, candidate.brand, text, confidence))
    spotted, best_spotted = brand_spotting(probabilities, reader.alphabet, candidate.brand), None
    # the other brands only when needed: a relabel, the bar for text that spells no brand, a second look
    needs_others = rescoring.cross_brand or rescoring.unspotted is not None or rescoring.reread_part is not None
    if spotted < rescoring.spot and needs_others:
        others = (brand for brand in BRAND_KEYWORDS if brand != candidate.brand)
        spots = {candidate.brand: spotted} | {b: brand_spotting(probabilities, reader.alphabet, b) for b in others}
        best_spotted = max(spots.values())
        named = rescoring.other_brand(candidate.brand, spots) or _named_when_read_wider(
            image, candidate, reader, rescoring, probabilities
        )
        if named is not None:  # the text names a brand after all: that brand, boosted
            return replace(candidate, brand=named, score=rescoring.boosted(candidate.score))
    score = rescoring.rescored(candidate.score, candidate.brand, text, confidence, spotted, best_spotted)
    return replace(candidate, score=score)


def rescore_candidates(image: Image.Image, candidates: tuple, reader: TextReader, rescoring: TextRescoring) -> tuple:
    """The candidates with the best few read and rescored, best first again."""
    ranked = sorted(candidates, key=lambda d: -d.score)
    read = [d for d in ranked[: rescoring.top] if d.score >= rescoring.floor]
    crops = [reading_crop(image, candidate.box, rescoring.margin_x, rescoring.margin_y) for candidate in read]
    readings = reader.probabilities_of(crops) if crops else []
    changed = {
        id(candidate): _rescored_candidate(image, candidate, reader, rescoring, probabilities)
        for candidate, probabilities in zip(read, readings, strict=True)
    }
    return tuple(sorted((changed.get(id(d), d) for d in ranked), key=lambda d: -d.score))
