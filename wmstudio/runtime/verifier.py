"""A second look at each candidate: a small CNN that rescores the detector's boxes from their pixels.

The detector sees the whole photo at a few hundred pixels and must decide from there whether a
faint white wordmark is Rumah123, 99.co, or another agency's logo, a phone number or a sign. The
verifier sees only the candidate, cut from the decoded photo with a margin and resized to a fixed
strip, plus what the detector said about it (score, brand, box shape). It is trained on the
detector's own candidates on *train* photos and their robustness variants (crop, border,
thumbnail, ...), so it learns exactly the confusions the detector makes, wherever the mark sits:
nothing in it depends on the position of the box.

It runs on at most ``max_candidates`` candidates scoring at least ``floor`` (a few milliseconds
per photo), and replaces their score with its probability that the box holds a mark of
that brand. Candidates below the floor keep the detector's score, so nothing is found that the
detector did not propose. The ONNX file and its settings travel with the model version
(``verifier`` in ``model_card.json``), so a version is judged and served as one unit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

CROP_HEIGHT = 40
CROP_WIDTH = 160
CROP_MARGIN = 0.15  # of the box's size, on each side: the mark's edges and a little background
FEATURES = 5  # detector score, brand (one-hot for two brands), log aspect, box height / photo height


def crop_strip(image: Image.Image, box: tuple[float, float, float, float]) -> np.ndarray:
    """The box with a margin, resized to CROP_HEIGHT × CROP_WIDTH, as uint8 HWC RGB."""
    x0, y0, x1, y1 = box
    mx, my = (x1 - x0) * CROP_MARGIN, (y1 - y0) * CROP_MARGIN
    window = (math.floor(x0 - mx), math.floor(y0 - my), math.ceil(x1 + mx), math.ceil(y1 + my))
    if window[2] - window[0] < 2 or window[3] - window[1] < 2:
        return np.zeros((CROP_HEIGHT, CROP_WIDTH, 3), dtype=np.uint8)
    strip = image.crop(window).resize((CROP_WIDTH, CROP_HEIGHT), Image.Resampling.BILINEAR)
    return np.asarray(strip.convert("RGB"), dtype=np.uint8)


def side_features(
    score: float, brand_index: int, box: tuple[float, float, float, float], image_height: int
) -> np.ndarray:
    """What the detector knows about the candidate besides its pixels."""
    x0, y0, x1, y1 = box
    width, height = max(x1 - x0, 1.0), max(y1 - y0, 1.0)
    return np.asarray(
        [
            score,
            float(brand_index == 0),
            float(brand_index == 1),
            math.log(width / height),
            height / max(image_height, 1),
        ],
        dtype=np.float32,
    )


def to_tensor(strips: np.ndarray) -> np.ndarray:
    """uint8 NHWC strips to the float NCHW input the network was trained on (scaled to [-1, 1])."""
    return (strips.astype(np.float32) / 127.5 - 1.0).transpose(0, 3, 1, 2)


@dataclass
class Verifier:
    """The verifier's ONNX session and the rule for which candidates it rescores."""

    session: ort.InferenceSession
    floor: float = 0.05
    max_candidates: int = 8

    @classmethod
    def load(cls, path: Path, floor: float = 0.05, max_candidates: int = 8, threads: int = 1) -> Verifier:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        return cls(session, floor, max_candidates)

    @classmethod
    def from_card(cls, folder: Path, entry: dict) -> Verifier:
        return cls.load(folder / entry["file"], float(entry["floor"]), int(entry["max_candidates"]))

    def probabilities(self, strips: np.ndarray, features: np.ndarray) -> np.ndarray:
        """P(the strip holds a mark of the named brand) for each candidate."""
        if not len(strips):
            return np.zeros(0, dtype=np.float32)
        logits = self.session.run(None, {"crop": to_tensor(strips), "features": features.astype(np.float32)})[0]
        return 1.0 / (1.0 + np.exp(-logits.reshape(-1)))

    def rescore(self, image: Image.Image, boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray) -> np.ndarray:
        """The candidates' scores with the verifier's probability for the top ones above the floor.

        Candidates above the floor beyond the first ``max_candidates`` are held just under the
        floor: nothing the verifier has not looked at can reach an operating threshold.
        """
        above = [i for i in np.argsort(-scores) if scores[i] >= self.floor]
        chosen, unseen = above[: self.max_candidates], above[self.max_candidates :]
        rescored = scores.astype(np.float32).copy()
        rescored[unseen] = np.minimum(rescored[unseen], self.floor * 0.99)
        if not chosen:
            return rescored
        strips = np.stack([crop_strip(image, tuple(boxes[i])) for i in chosen])
        features = np.stack(
            [side_features(float(scores[i]), int(classes[i]), tuple(boxes[i]), image.height) for i in chosen]
        )
        rescored[chosen] = self.probabilities(strips, features)
        return rescored
