"""The second-stage verifier: labels from overlaps, strips from any position, ONNX parity, rescoring rule."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from wmstudio.registry import Registry
from wmstudio.runtime import Detector
from wmstudio.runtime.verifier import CROP_HEIGHT, CROP_WIDTH, Verifier, crop_strip, side_features

pytestmark = pytest.mark.model


def test_strip_is_the_box_wherever_it_is() -> None:
    image = Image.new("RGB", (800, 600), (0, 0, 0))
    for x, y in ((10, 10), (600, 500), (300, 250)):
        photo = image.copy()
        photo.paste((255, 255, 255), (x, y, x + 100, y + 25))
        strip = crop_strip(photo, (x, y, x + 100, y + 25))
        assert strip.shape == (CROP_HEIGHT, CROP_WIDTH, 3)
        centre = strip[CROP_HEIGHT // 2 - 3 : CROP_HEIGHT // 2 + 3, CROP_WIDTH // 2 - 10 : CROP_WIDTH // 2 + 10]
        assert centre.min() > 200, "the mark fills the middle of its strip at every position"
        assert strip[0, 0].max() < 60, "the margin shows the background around it"


def test_degenerate_box_gives_an_empty_strip() -> None:
    strip = crop_strip(Image.new("RGB", (50, 50)), (10, 10, 10.5, 30))
    assert strip.shape == (CROP_HEIGHT, CROP_WIDTH, 3) and strip.max() == 0


def test_side_features_say_brand_and_shape() -> None:
    features = side_features(0.7, 1, (0, 0, 200, 50), 500)
    assert features.tolist() == pytest.approx([0.7, 0.0, 1.0, np.log(4.0), 0.1])


def test_labels_use_the_candidates_own_brand() -> None:
    from training.verifier import label_candidates

    truths = [(0, (100.0, 100.0, 300.0, 150.0))]
    boxes = np.asarray([[100, 100, 300, 150], [100, 100, 300, 150], [105, 100, 190, 150], [500, 500, 600, 550]], float)
    classes = np.asarray([0, 1, 0, 0])
    # same brand on the mark: 1; other brand on it: 0; a partial overlap (IoU 0.43): ambiguous; clear: 0
    assert label_candidates(boxes, classes, truths) == [1.0, 0.0, None, 0.0]


@pytest.fixture(scope="module")
def tiny_verifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch = pytest.importorskip("torch")
    from training.verifier import build_network, export

    torch.manual_seed(0)
    model = build_network().eval()
    return export(model, tmp_path_factory.mktemp("verifier") / "verifier.onnx")


def test_onnx_matches_torch(tiny_verifier: Path) -> None:
    torch = pytest.importorskip("torch")
    from training.verifier import build_network

    torch.manual_seed(0)
    model = build_network().eval()
    strips = np.random.default_rng(1).integers(0, 255, (3, CROP_HEIGHT, CROP_WIDTH, 3), dtype=np.uint8)
    features = np.random.default_rng(2).random((3, 5), dtype=np.float32)
    from wmstudio.runtime.verifier import to_tensor

    with torch.no_grad():
        expected = torch.sigmoid(model(torch.from_numpy(to_tensor(strips)), torch.from_numpy(features))).numpy().ravel()
    got = Verifier.load(tiny_verifier).probabilities(strips, features)
    assert np.allclose(got, expected, atol=1e-5)


def test_rescore_touches_only_the_top_candidates_above_the_floor(tiny_verifier: Path) -> None:
    verifier = Verifier.load(tiny_verifier, floor=0.1, max_candidates=2)
    image = Image.new("RGB", (400, 300), (90, 90, 90))
    boxes = np.asarray([[10, 10, 110, 40], [200, 100, 300, 130], [50, 200, 150, 230], [0, 0, 30, 10]], float)
    scores = np.asarray([0.9, 0.5, 0.3, 0.05], dtype=np.float32)
    classes = np.asarray([0, 1, 0, 0])
    rescored = verifier.rescore(image, boxes, scores, classes)
    strips = np.stack([crop_strip(image, tuple(b)) for b in boxes[:2]])
    features = np.stack(
        [
            side_features(float(s), int(c), tuple(b), 300)
            for b, s, c in zip(boxes[:2], scores[:2], classes[:2], strict=True)
        ]
    )
    assert rescored[:2] == pytest.approx(verifier.probabilities(strips, features), abs=1e-6)
    assert rescored[2] < 0.1, "a candidate the verifier did not look at stays under the floor"
    assert rescored[3] == pytest.approx(0.05), "below the floor the detector's score stands"


def test_a_version_with_a_verifier_loads_it_and_network_only_drops_it(
    tiny_verifier: Path, bundled_registry: Path, tmp_path: Path
) -> None:
    source = Registry(bundled_registry).champion_path()
    folder = tmp_path / source.name
    folder.mkdir()
    for name in ("model.onnx", "model_card.json"):
        shutil.copy(source / name, folder / name)
    shutil.copy(tiny_verifier, folder / "verifier.onnx")
    card = json.loads((folder / "model_card.json").read_text())
    card["verifier"] = {"file": "verifier.onnx", "floor": 0.05, "max_candidates": 8}
    (folder / "model_card.json").write_text(json.dumps(card))
    detector = Detector.from_version_dir(folder)
    assert detector.verifier is not None and detector.network_only().verifier is None
    photo = Image.new("RGB", (640, 480), (120, 130, 125))
    with_verifier = detector.predict(photo)
    alone = detector.network_only().predict(photo)
    assert [d.box for d in with_verifier.candidates] != [] or [d.box for d in alone.candidates] == []
    assert sorted(d.box for d in with_verifier.candidates) == sorted(d.box for d in alone.candidates)
