"""The watermark detector: an ONNX model plus its card, with no torch anywhere.

Used by the API (the one serving path), the CLI ``predict``, evaluation and the uncertainty
queue, so every consumer sees identical pre- and post-processing.

A version may also read the text of its best candidates and rescore them by what it says
(``text_rescoring`` in its card, :mod:`wmstudio.runtime.text_reading`); ``network_only()`` gives
the same version without that stage, so evaluation can report the network alone beside it.

A version may run its network at more than one input size (``extra_input_sizes`` in its card,
with an ONNX file whose height and width are dynamic). The candidates of every size are pooled
and suppressed together: a small mark gets more pixels at the larger size, while a large or
tiled one stays at the scale the network was trained on. See ``experiments/multiscale.py`` for
how the sizes are chosen on validation. ``input_margin`` in the card surrounds the photo with grey
inside the input, so marks at its edges are seen with context (``experiments/edge_margin.py``).
``second_view`` runs the network again inside other surrounds on photos the first pass leaves
undecided, and pools the views (:mod:`wmstudio.runtime.second_view`); ``tile_view`` looks at
overlapping tiles of such a photo, each at full input size (:mod:`wmstudio.runtime.tile_view`);
``panel_view`` looks at each panel of a composed photo, a collage's cells or a framed photo without
its frame (:mod:`wmstudio.runtime.panel_view`).
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnxruntime as ort
from onnxruntime.capi import onnxruntime_pybind11_state as ort_state
from PIL import Image

from wmstudio.runtime.panel_view import PanelView
from wmstudio.runtime.postprocess import MAX_DETECTIONS, decode_yolo, nms
from wmstudio.runtime.preprocess import letterbox
from wmstudio.runtime.second_view import SecondView
from wmstudio.runtime.text_reading import TextReader, TextReaderUnavailable, TextRescoring, rescore_candidates
from wmstudio.runtime.tile_view import TileView

if TYPE_CHECKING:
    from wmstudio.registry import Registry

CANDIDATE_FLOOR = 0.01  # raw candidates kept for heatmaps, PR curves and uncertainty


# ONNX Runtime's own exceptions derive from Exception only: name them, so a corrupt model.onnx is
# a load failure the caller can handle, not an unexpected error.
ORT_ERRORS: tuple[type[Exception], ...] = tuple(
    getattr(ort_state, name)
    for name in ("Fail", "InvalidArgument", "InvalidGraph", "InvalidProtobuf", "NoModel", "NoSuchFile",
                 "NotImplemented", "RuntimeException", "EPFail", "EngineError")
    if hasattr(ort_state, name)
)  # fmt: skip


class ModelInputError(ValueError):
    """The ONNX file cannot run at the sizes its card asks for."""


class ModelLoadError(ValueError):
    """A version's files cannot be turned into a working detector (corrupt ONNX, bad card, ...)."""


@dataclass(frozen=True)
class Detection:
    brand: str
    score: float
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in original pixels

    def to_dict(self) -> dict:
        return {"brand": self.brand, "score": round(self.score, 4), "box": [round(v, 1) for v in self.box]}


@dataclass(frozen=True)
class Prediction:
    """All candidates above the floor; ``above(threshold)`` gives what is reported."""

    width: int
    height: int
    candidates: tuple[Detection, ...] = field(default_factory=tuple)

    def above(self, threshold: float) -> list[Detection]:
        return [d for d in self.candidates if d.score >= threshold]

    def brand_scores(self) -> dict[str, float]:
        """Highest score per brand (0 when absent): the image-level score."""
        scores: dict[str, float] = {}
        for detection in self.candidates:
            scores[detection.brand] = max(scores.get(detection.brand, 0.0), detection.score)
        return scores


def pooled(detections: tuple[Detection, ...], iou_threshold: float) -> tuple[Detection, ...]:
    """Candidates of several runs (input sizes, views) as one list: a mark more than one found is
    kept once, at its best score."""
    if not detections:
        return ()
    boxes = np.asarray([d.box for d in detections], dtype=float)
    keep = nms(boxes, np.asarray([d.score for d in detections]), iou_threshold)[:MAX_DETECTIONS]
    return tuple(detections[int(i)] for i in keep)  # nms returns them best first


class Detector:
    """Loads ``model.onnx`` and ``model_card.json`` from a registry version folder."""

    def __init__(
        self,
        onnx_path: Path,
        classes: list[str],
        imgsz: int,
        threshold: float,
        version: str = "unversioned",
        threads: int = 2,
        card: dict | None = None,
        extra_sizes: tuple[int, ...] = (),
    ) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        except ORT_ERRORS as exc:
            raise ModelLoadError(f"model {version}: ONNX Runtime cannot load {onnx_path}: {exc}") from exc
        self.input_name = self.session.get_inputs()[0].name
        self.classes = list(classes)
        self.imgsz = imgsz
        self.threshold = threshold
        self.version = version
        self.card = card or {}
        self.extra_sizes = tuple(int(size) for size in extra_sizes)
        self.input_margin = float(self.card.get("input_margin", 0.0))
        # A dynamic batch runs several looks at one size (surrounds, tiles) in one call, with the
        # same outputs: four tiles took 66 ms against 72 ms one by one on 2 cores.
        self.batched = not isinstance(self.session.get_inputs()[0].shape[0], int)
        try:
            self.text_rescoring = TextRescoring.from_card(self.card)
            self.text_reader = TextReader(threads) if self.text_rescoring else None
        except (TextReaderUnavailable, ValueError, *ORT_ERRORS) as exc:
            raise ModelLoadError(f"model {version}: its text rescoring cannot load: {exc}") from exc
        try:
            self.second_view = SecondView.from_card(self.card)
            self.tile_view = TileView.from_card(self.card)
            self.panel_view = PanelView.from_card(self.card)
        except ValueError as exc:
            raise ModelLoadError(f"model {version}: {exc}") from exc
        self._check_input_shape()  # after the views: a panel may run at its own size
        self._lock = threading.Lock()

    def _check_input_shape(self) -> None:
        """A static ONNX file runs at its one size only: say so at load, not at the first photo."""
        height, width = self.session.get_inputs()[0].shape[2:]
        static = isinstance(height, int) and isinstance(width, int)
        sizes = (*self.input_sizes, *([self.panel_view.input_size(self.imgsz)] if self.panel_view else []))
        wrong = sorted({size for size in sizes if static and (size, size) != (height, width)})
        if wrong:
            raise ModelInputError(
                f"model {self.version}: the ONNX input is fixed at {height}x{width}, but the card asks for "
                f"input sizes {wrong}; export it with dynamic height and width"
            )

    @property
    def input_sizes(self) -> tuple[int, ...]:
        """The training size first, then any extra sizes the network also runs at."""
        return (self.imgsz, *self.extra_sizes)

    @property
    def decode_size(self) -> int:
        """The largest input size: JPEG draft decoding must not go below it."""
        return max(self.input_sizes)

    @classmethod
    def from_version_dir(cls, folder: Path, threads: int = 2) -> Detector:
        return cls.from_card(folder / "model.onnx", json.loads((folder / "model_card.json").read_text()), threads)

    @classmethod
    def from_card(cls, onnx_path: Path, card: dict, threads: int = 2) -> Detector:
        """A network file run as ``card`` says: experiments try a card's fields changed, or the same
        card on another export of the network, without writing a version folder."""
        return cls(
            onnx_path,
            card["classes"],
            int(card["imgsz"]),
            float(card["threshold"]),
            card["version"],
            threads,
            card,
            tuple(card.get("extra_input_sizes", ())),
        )

    @classmethod
    def from_registry(cls, registry: Registry | Path, version: str | None = None, threads: int = 2) -> Detector:
        """The named version, or the champion; raises ``RegistryError`` when there is none."""
        from wmstudio.registry import Registry

        registry = registry if isinstance(registry, Registry) else Registry(registry)
        return cls.from_version_dir(registry.resolve(version), threads)

    def raw(self, tensor: np.ndarray) -> np.ndarray:
        """The model's raw output for a pre-processed input (for parity tests)."""
        return self.session.run(None, {self.input_name: tensor})[0]

    def candidates_at(
        self, image: Image.Image, size: int, iou_threshold: float = 0.5, margin: float | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Boxes (original pixels), scores and classes of the network run at one input size
        (inside ``margin`` of grey, by default the card's ``input_margin``)."""
        return self.runs_at([(image, self.input_margin if margin is None else margin)], size, iou_threshold)[0]

    def runs_at(
        self, looks: Sequence[tuple[Image.Image, float]], size: int, iou_threshold: float = 0.5
    ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """:meth:`candidates_at` for several (photo, margin) looks at one input size, in one network
        call when the ONNX file's batch is dynamic (one call per look otherwise)."""
        placed = [letterbox(image, size, margin) for image, margin in looks]
        if self.batched and len(placed) > 1:
            outputs = list(self.raw(np.concatenate([tensor for tensor, _ in placed])))
        else:
            outputs = [self.raw(tensor)[0] for tensor, _ in placed]
        runs = []
        for output, (_, placement) in zip(outputs, placed, strict=True):
            boxes, scores, classes = decode_yolo(output[np.newaxis], CANDIDATE_FLOOR, iou_threshold)
            runs.append((placement.to_original(boxes), scores, classes))
        return runs

    def predict(self, image: Image.Image, iou_threshold: float = 0.5) -> Prediction:
        """Every candidate above a low floor, boxes in original pixels."""
        rgb = image.convert("RGB")
        ranked = self._views(rgb, (self.input_margin,), iou_threshold)[0]
        best = ranked[0].score if ranked else 0.0
        if self.second_view is not None and self.second_view.wanted(best):
            more = self._views(rgb, self.second_view.input_margins, iou_threshold)
            ranked = pooled((*ranked, *(d for view in more for d in view)), iou_threshold)
        if self.tile_view is not None and self.tile_view.wanted(best):
            ranked = pooled((*ranked, *self._read(rgb, self.tile_candidates(rgb, iou_threshold))), iou_threshold)
        if self.panel_view is not None and self.panel_view.wanted(best):
            ranked = pooled((*ranked, *self._read(rgb, self.panel_candidates(rgb, iou_threshold))), iou_threshold)
        return Prediction(image.width, image.height, ranked)

    def _views(self, rgb: Image.Image, margins: Sequence[float], iou_threshold: float) -> list[tuple[Detection, ...]]:
        """One look at the photo per margin: the network at every input size inside that margin
        (the margins of one size in one call), then the reading of each look."""
        looks = [(rgb, margin) for margin in margins]
        per_size = [self.runs_at(looks, size, iou_threshold) for size in self.input_sizes]
        views = []
        for runs in zip(*per_size, strict=True):
            detections = tuple(d for boxes, scores, classes in runs for d in self._detections(boxes, scores, classes))
            # the same mark found at two sizes is one mark, as within one size (and as across views)
            if len(runs) > 1:
                ranked = pooled(detections, iou_threshold)
            else:
                ranked = tuple(sorted(detections, key=lambda d: -d.score))
            views.append(self._read(rgb, ranked))
        return views

    def _detections(self, boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray) -> list[Detection]:
        """One run's arrays as named detections."""
        return [
            Detection(self.classes[int(c)], float(s), tuple(float(v) for v in b))
            for b, s, c in zip(boxes, scores, classes, strict=True)
        ]

    def _read(self, rgb: Image.Image, ranked: tuple[Detection, ...]) -> tuple[Detection, ...]:
        """A view's candidates after the reading (unchanged without one)."""
        if self.text_rescoring is not None and self.text_reader is not None:
            return rescore_candidates(rgb, ranked, self.text_reader, self.text_rescoring)
        return ranked

    def tile_candidates(self, rgb: Image.Image, iou_threshold: float = 0.5) -> tuple[Detection, ...]:
        """The network on each of the card's tiles at the training size, boxes in the photo's pixels:
        pieces cut by a tile's inner edge dropped, the rest pooled (best first)."""
        if self.tile_view is None:
            return ()
        found = []
        tiles = self.tile_view.tiles(rgb.width, rgb.height)
        runs = self.runs_at([(rgb.crop(tile), 0.0) for tile in tiles], self.imgsz, iou_threshold)
        for tile, (boxes, scores, classes) in zip(tiles, runs, strict=True):
            boxes = boxes + np.asarray([tile[0], tile[1], tile[0], tile[1]], dtype=float)
            keep = self.tile_view.whole_inside(boxes, tile, rgb.width, rgb.height)
            found += self._detections(boxes[keep], scores[keep], classes[keep])
        return pooled(tuple(found), iou_threshold)

    def panel_candidates(self, rgb: Image.Image, iou_threshold: float = 0.5) -> tuple[Detection, ...]:
        """The network on each panel of a composed photo (a collage's cells, a framed photo without
        its frame) at the training size, boxes in the photo's pixels, pieces cut by a seam dropped,
        the rest pooled (best first); none for a plain photo."""
        panels = self.panel_view.panels(rgb) if self.panel_view is not None else []
        if not panels:
            return ()
        found = []
        looks = [(rgb.crop(panel.box), self.input_margin) for panel in panels]
        runs = self.runs_at(looks, self.panel_view.input_size(self.imgsz), iou_threshold)
        for panel, (boxes, scores, classes) in zip(panels, runs, strict=True):
            x0, y0 = panel.box[:2]
            boxes = boxes + np.asarray([x0, y0, x0, y0], dtype=float)
            keep = panel.whole_inside(boxes)  # a piece of a mark cut by a seam is the plain view's to find
            found += self._detections(boxes[keep], scores[keep], classes[keep])
        return pooled(tuple(found), iou_threshold)

    def network_only(self) -> Detector:
        """This version without its text rescoring (sharing the loaded network): "the network alone"."""
        alone = copy.copy(self)
        alone.text_rescoring = None
        alone.text_reader = None
        alone.second_view = None  # one pass: the extra views are part of the pipeline, as the reading is
        alone.tile_view = None
        alone.panel_view = None
        return alone

    def detect(self, image: Image.Image, min_score: float | None = None) -> list[Detection]:
        """Detections at the operating threshold (or ``min_score``)."""
        return self.predict(image).above(self.threshold if min_score is None else min_score)

    def self_check(self) -> None:
        """Run the network once on a blank photo; raise ``ModelLoadError`` if it cannot.

        A file ONNX Runtime parses may still fail at the first run (a wrong output shape, a missing
        kernel): checking at load keeps such a version from replacing a working one.
        """
        try:
            self.predict(Image.new("RGB", (64, 48), (114, 114, 114)))
        except (*ORT_ERRORS, ValueError, IndexError) as exc:
            raise ModelLoadError(f"model {self.version} does not run: {exc}") from exc

    def describe(self) -> dict:
        return {
            "version": self.version,
            "classes": self.classes,
            "imgsz": self.imgsz,
            "input_sizes": list(self.input_sizes),
            "input_margin": self.input_margin,
            "second_view": self.second_view.to_card() if self.second_view else None,
            "tile_view": self.tile_view.to_card() if self.tile_view else None,
            "panel_view": self.panel_view.to_card() if self.panel_view else None,
            "quantized": self.card.get("quantized"),
            "threshold": self.threshold,
            "text_rescoring": self.text_rescoring.to_card() if self.text_rescoring else None,
            "metrics": self.card.get("metrics", {}),
        }
