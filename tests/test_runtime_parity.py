"""The torch-free ONNX runtime gives what the PyTorch model gives."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from app.examples import synthetic_examples
from wmstudio.registry import Registry
from wmstudio.runtime import Detector
from wmstudio.runtime.postprocess import iou_matrix
from wmstudio.runtime.preprocess import letterbox


@pytest.fixture(scope="module")
def models(bundled_registry):
    torch = pytest.importorskip("torch")
    from ultralytics import YOLO

    folder = Registry(bundled_registry).champion_path()
    detector = Detector.from_version_dir(folder)
    detector.mark_checks = ()  # parity is the network's; the template check is tested on its own
    yolo = YOLO(str(folder / "model.pt"))
    yolo.model.float().eval()
    return detector, yolo, torch


@pytest.fixture(scope="module")
def images(tmp_path_factory, data_dir_optional) -> list[Image.Image]:
    paths = synthetic_examples(tmp_path_factory.mktemp("examples"))
    if data_dir_optional is not None:
        listing = data_dir_optional / "listings" / "images"
        paths += sorted(listing.glob("*.jpg"))[:6]
    return [Image.open(p).convert("RGB") for p in paths]


@pytest.fixture(scope="module")
def data_dir_optional():
    from tests.conftest import DATA_DIR

    return DATA_DIR if (DATA_DIR / "listings").exists() else None


def test_raw_outputs_match_on_the_same_input(models, images):
    detector, yolo, torch = models
    for image in images:
        tensor, _ = letterbox(image, detector.imgsz)
        onnx_out = detector.raw(tensor)
        with torch.no_grad():
            torch_out = yolo.model(torch.from_numpy(tensor))
        torch_out = (torch_out[0] if isinstance(torch_out, (list, tuple)) else torch_out).numpy()
        assert onnx_out.shape == torch_out.shape
        np.testing.assert_allclose(onnx_out[0, 4:], torch_out[0, 4:], atol=2e-4)  # class scores
        np.testing.assert_allclose(onnx_out[0, :4], torch_out[0, :4], atol=2e-2)  # box pixels


def test_detections_match_ultralytics_predict(models, images):
    """Same input pixels on both sides (our letterboxed canvas, for which Ultralytics' own
    letterbox is the identity): our decoding, NMS and mapping back to original pixels must give
    Ultralytics' boxes and scores. Resize kernels are compared separately by the geometry tests."""
    detector, yolo, _ = models
    threshold = 0.25
    for image in images:
        tensor, placement = letterbox(image, detector.imgsz)
        canvas = (tensor[0].transpose(1, 2, 0) * 255).round().astype(np.uint8)
        ours = detector.detect(image, threshold)
        result = yolo.predict(
            canvas[:, :, ::-1].copy(), imgsz=detector.imgsz, conf=threshold, iou=0.5, agnostic_nms=True, verbose=False
        )[0]
        theirs_boxes = placement.to_original(result.boxes.xyxy.numpy())
        theirs_scores = result.boxes.conf.numpy()
        assert len(ours) == len(theirs_boxes)
        for detection in ours:
            ious = iou_matrix(np.asarray([detection.box]), theirs_boxes)
            match = int(ious.argmax())
            assert ious[0, match] > 0.97
            assert abs(theirs_scores[match] - detection.score) < 0.01
