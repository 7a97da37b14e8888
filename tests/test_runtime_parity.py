"""The torch-free ONNX runtime gives what the PyTorch model gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.examples import synthetic_examples
from tests.conftest import trained_champion, untrained_version
from wmstudio.registry import Registry
from wmstudio.runtime import Detector
from wmstudio.runtime.detector import ModelInputError
from wmstudio.runtime.postprocess import iou_matrix
from wmstudio.runtime.preprocess import letterbox

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def weighted(bundled_registry, tmp_path_factory) -> tuple[Path, bool]:
    """A version whose ONNX file was exported from the ``model.pt`` beside it, and whether it is trained.

    Git carries the champion's ONNX file only. Where this checkout has its weights (the working
    registry) the trained champion is compared; otherwise an untrained network of the champion's
    input size, which still checks the runtime's numbers against PyTorch but finds no marks.
    """
    pytest.importorskip("torch")
    trained = trained_champion(bundled_registry)
    if trained is not None:
        return trained, True
    imgsz = Registry(bundled_registry).card(Registry(bundled_registry).champion())["imgsz"]
    return untrained_version(tmp_path_factory.mktemp("untrained") / "v1", imgsz), False


def needs_trained(weighted: tuple[Path, bool]) -> None:
    if not weighted[1]:
        pytest.skip("needs the champion's trained weights (model.pt is not in git: train, or fetch it from MLflow)")


@pytest.fixture(scope="module")
def models(weighted):
    torch = pytest.importorskip("torch")
    from ultralytics import YOLO

    folder = weighted[0]
    detector = Detector.from_version_dir(folder)
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
    for image, size in ((image, size) for image in images for size in detector.input_sizes):
        tensor, _ = letterbox(image, size)
        onnx_out = detector.raw(tensor)
        with torch.no_grad():
            torch_out = yolo.model(torch.from_numpy(tensor))
        torch_out = (torch_out[0] if isinstance(torch_out, (list, tuple)) else torch_out).numpy()
        assert onnx_out.shape == torch_out.shape
        np.testing.assert_allclose(onnx_out[0, 4:], torch_out[0, 4:], atol=2e-4)  # class scores
        np.testing.assert_allclose(onnx_out[0, :4], torch_out[0, :4], atol=2e-2)  # box pixels


def test_detections_match_ultralytics_predict(models, images, weighted):
    """Same input pixels on both sides (our letterboxed canvas, for which Ultralytics' own
    letterbox is the identity): our decoding, NMS and mapping back to original pixels must give
    Ultralytics' boxes and scores. Resize kernels are compared separately by the geometry tests."""
    needs_trained(weighted)
    detector, yolo, _ = models
    if detector.extra_sizes:
        pytest.skip("a multi-size version pools its sizes; Ultralytics' predict runs one")
    threshold = 0.25
    for image in images:
        tensor, placement = letterbox(image, detector.imgsz, detector.input_margin)
        canvas = (tensor[0].transpose(1, 2, 0) * 255).round().astype(np.uint8)
        ours = detector.network_only().detect(image, threshold)
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


def test_a_static_onnx_file_refuses_extra_input_sizes(bundled_registry):
    folder = Registry(bundled_registry).champion_path()
    card = Detector.from_version_dir(folder).card
    if "extra_input_sizes" in card:
        pytest.skip("the champion's ONNX file is dynamic")
    with pytest.raises(ModelInputError, match="export it with dynamic height and width"):
        Detector(folder / "model.onnx", card["classes"], card["imgsz"], 0.5, extra_sizes=(card["imgsz"] + 96,))


@pytest.fixture(scope="module")
def multi_size(models, weighted, tmp_path_factory):
    """The champion's network exported with dynamic height and width, run at two sizes."""
    from training.export import export_onnx

    detector, yolo, torch = models
    folder = tmp_path_factory.mktemp("dynamic")
    weights = weighted[0] / "model.pt"
    onnx = export_onnx(weights, detector.imgsz, folder / "dynamic.onnx", dynamic=True)
    extra = detector.imgsz + 96
    return Detector(onnx, detector.classes, detector.imgsz, detector.threshold, extra_sizes=(extra,)), yolo, torch


def test_a_dynamic_export_matches_pytorch_at_every_size(multi_size, images):
    detector, yolo, torch = multi_size
    assert detector.decode_size == detector.input_sizes[1] > detector.imgsz
    for image, size in ((image, size) for image in images[:3] for size in detector.input_sizes):
        tensor, _ = letterbox(image, size)
        with torch.no_grad():
            torch_out = yolo.model(torch.from_numpy(tensor))
        torch_out = (torch_out[0] if isinstance(torch_out, (list, tuple)) else torch_out).numpy()
        onnx_out = detector.raw(tensor)
        assert onnx_out.shape == torch_out.shape and onnx_out.shape[2] == 21 * (size // 32) ** 2
        np.testing.assert_allclose(onnx_out[0, 4:], torch_out[0, 4:], atol=2e-4)


def test_sizes_are_pooled_into_one_set_of_non_overlapping_candidates(multi_size, images, weighted):
    """Each reported candidate comes from one of the sizes, and one NMS runs over all of them."""
    needs_trained(weighted)
    detector = multi_size[0]
    pooled_any = False
    for image in images:
        per_size = [detector.candidates_at(image, size) for size in detector.input_sizes]
        found = {
            (float(s), tuple(map(float, b)))
            for boxes, scores, _ in per_size
            for b, s in zip(boxes, scores, strict=True)
        }
        candidates = detector.predict(image).candidates
        assert all((d.score, d.box) in found for d in candidates)
        boxes = np.asarray([d.box for d in candidates]).reshape(-1, 4)
        assert (iou_matrix(boxes, boxes) - np.eye(len(boxes))).max(initial=0) < 0.5
        best = max((float(scores.max()) for _, scores, _ in per_size if len(scores)), default=None)
        if best is not None:
            assert candidates[0].score == pytest.approx(best)  # the best of any size survives
            pooled_any = True
    assert pooled_any
