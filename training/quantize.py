"""The network in 8-bit integers: the same version's ONNX file quantized for serving on CPU.

Issue #30. The network is most of a photo's latency: one run of the 416 px float network is about
27 ms on 2 cores, and a composed or undecided photo takes several (surrounds, tiles, panels). With
weights and activations in int8 ONNX Runtime uses the CPU's integer dot products (VNNI where there
is one): 18.6 ms a run here, four looks in one call 58 ms against 81 ms.

ONNX Runtime's static quantization does the work (``onnxruntime.quantization.quantize_static``,
QDQ format, weights per channel). Activation ranges are calibrated on train photos only, letterboxed
as the runtime does. Three parts stay in float, where int8 costs accuracy for little time:

- ``/model.0/``: the first convolution reads the photo's pixels;
- ``/model.10/``: the attention block (its softmax is sensitive to scale);
- ``/model.23/``: the detection head, whose box offsets and class scores are decoded directly.
  Quantized, the 120 spot-check photos lost every mark.

See ``docs/experiments.md`` (7 December, late night) for the spot checks behind the choice.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process
from PIL import Image
from tqdm import tqdm

from wmstudio.runtime.preprocess import letterbox

log = logging.getLogger(__name__)

FLOAT_PARTS = ("/model.0/", "/model.10/", "/model.23/")  # node-name prefixes kept in float
CALIBRATION_PHOTOS = 96


class PhotoBatches(CalibrationDataReader):
    """Train photos letterboxed as the runtime letterboxes them, one at a time, with a progress bar."""

    def __init__(self, input_name: str, photos: Sequence[Path], imgsz: int) -> None:
        self.input_name = input_name
        self.imgsz = imgsz
        self._photos: Iterator[Path] = iter(tqdm(photos, desc="calibrating int8 ranges", unit="photo"))

    def get_next(self) -> dict[str, np.ndarray] | None:
        photo = next(self._photos, None)
        if photo is None:
            return None
        with Image.open(photo) as image:
            tensor, _ = letterbox(image.convert("RGB"), self.imgsz, 0.0)
        return {self.input_name: tensor}


def is_quantized(onnx_path: Path) -> bool:
    """Whether the file holds quantized weights (QDQ nodes), as :func:`quantize_network` writes."""
    return any(node.op_type == "DequantizeLinear" for node in onnx.load(str(onnx_path)).graph.node)


def quantize_network(
    source: Path, out: Path, calibration_photos: Sequence[Path], imgsz: int, float_parts: Sequence[str] = FLOAT_PARTS
) -> Path:
    """Write ``source``'s network with int8 weights and activations to ``out``.

    The batch, height and width stay as they are in ``source`` (a freed batch stays free).
    """
    if not calibration_photos:
        raise ValueError("int8 calibration needs train photos; none were given")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="wmstudio-int8-") as scratch:
        prepared = Path(scratch) / "prepared.onnx"
        # graph optimisations first (folds, fusions), so the quantizer sees what ONNX Runtime runs;
        # the symbolic shape pass cannot follow Ultralytics' head and is not needed for QDQ
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        model = onnx.load(str(prepared))
        keep_float = [node.name for node in model.graph.node if node.name.startswith(tuple(float_parts))]
        reader = PhotoBatches(model.graph.input[0].name, calibration_photos, imgsz)
        quantize_static(
            str(prepared),
            str(out),
            reader,
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=keep_float,
        )
    log.info("quantized %s to int8 at %s (%d nodes kept in float)", source, out, len(keep_float))
    return out
