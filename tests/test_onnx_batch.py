"""Freeing a static ONNX detector's batch: the same outputs, several looks in one call."""

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from app.examples import synthetic_examples
from training.onnx_batch import BatchRewriteError, free_batch, freed, has_free_batch
from wmstudio.registry import Registry
from wmstudio.runtime import Detector
from wmstudio.runtime.tile_view import TileView

pytestmark = pytest.mark.unit


def _reshape_graph(target: list[int], computed: bool = False) -> onnx.ModelProto:
    """x (1, 2, 3) -> Reshape(target) -> y: the smallest graph with a batch inside a shape."""
    nodes, initializers = [], []
    if computed:  # the target comes from the input's own shape, as dynamic exports do
        nodes.append(helper.make_node("Shape", ["x"], ["shape"]))
    else:
        initializers.append(numpy_helper.from_array(np.asarray(target, dtype=np.int64), "shape"))
    nodes.append(helper.make_node("Reshape", ["x", "shape"], ["y"]))
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 6] if not computed else [1, 2, 3])],
        initializers,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_a_small_graph_takes_a_batch_and_shapes_that_hide_the_batch_are_refused(tmp_path):
    source = tmp_path / "small.onnx"
    onnx.save(_reshape_graph([1, 6]), source)
    assert not has_free_batch(onnx.load(source))
    difference = free_batch(source, tmp_path / "freed.onnx")
    model = onnx.load(tmp_path / "freed.onnx")
    assert has_free_batch(model) and difference == 0.0
    assert numpy_helper.to_array(model.graph.initializer[0]).tolist() == [0, 6]  # 0: copy the batch
    again = tmp_path / "again.onnx"
    assert free_batch(tmp_path / "freed.onnx", again) == 0.0  # already free: copied as it is
    assert again.read_bytes() == (tmp_path / "freed.onnx").read_bytes()
    with pytest.raises(BatchRewriteError, match="does not start with the batch"):
        freed(_reshape_graph([2, 3]))  # a leading 2 is no batch: rewriting it would break the graph
    with pytest.raises(BatchRewriteError, match="computed"):
        freed(_reshape_graph([], computed=True))


@pytest.fixture(scope="module")
def static_and_freed(bundled_registry: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Detector, Detector]:
    registry = Registry(bundled_registry)
    source = registry.path(registry.champion())
    folder = tmp_path_factory.mktemp("freed")
    (folder / "model_card.json").write_bytes((source / "model_card.json").read_bytes())
    free_batch(source / "model.onnx", folder / "model.onnx")
    static = Detector.from_version_dir(source)
    static.batched = False  # the bundled file may be free already: make one run look by look
    return static, Detector.from_version_dir(folder)


def test_the_freed_detector_finds_the_same_candidates_with_fewer_network_calls(static_and_freed, monkeypatch, tmp_path):
    static, batched = static_and_freed
    assert batched.batched
    photo = Image.open(synthetic_examples(tmp_path / "examples")[0]).convert("RGB")
    calls = {"static": 0, "batched": 0}
    for name, detector in (("static", static), ("batched", batched)):
        detector.tile_view = TileView(2, 0.25, 0.0, 1.0)  # every photo takes the four tiles
        run = detector.session.run

        def counted(*args, _run=run, _name=name, **kwargs):
            calls[_name] += 1
            return _run(*args, **kwargs)

        monkeypatch.setattr(detector.session, "run", counted, raising=False)
    one_by_one, at_once = static.tile_candidates(photo), batched.tile_candidates(photo)
    assert one_by_one, "the tiles of a marked photo found nothing"
    assert [(d.brand, round(d.score, 4)) for d in one_by_one] == [(d.brand, round(d.score, 4)) for d in at_once]
    assert np.allclose([d.box for d in one_by_one], [d.box for d in at_once], atol=0.01)
    assert calls == {"static": 4, "batched": 1}
    assert [d.score for d in static.predict(photo).candidates] == pytest.approx(
        [d.score for d in batched.predict(photo).candidates], abs=1e-4
    )  # the whole pipeline (views, tiles, reading) decides the same
