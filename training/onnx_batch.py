"""Free the batch size of a static ONNX detector, so the runtime can run several looks in one call.

Ultralytics' static export fixes every shape at 1×3×S×S, including the batch in the head's
``Reshape`` targets. The runtime's extra looks at one photo (grey surrounds, tiles) all run at
one input size: batched, four tiles took 66 ms against 72 ms for four calls on 2 cores
(:meth:`wmstudio.runtime.Detector.runs_at`). Height and width stay fixed, so ONNX Runtime still
plans for one size.

The rewrite is verified, not assumed: :func:`free_batch` runs the source one photo at a time and
the result on a batch of the same inputs, and refuses a graph whose outputs differ.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

BATCH_NAME = "batch"
VERIFY_BATCH = 3
TOLERANCE = 1e-4  # batched convolutions may block their sums differently; decisions need 1e-2


class BatchRewriteError(ValueError):
    """The graph has a shape the rewrite cannot free, or its batched outputs differ."""


def has_free_batch(model: onnx.ModelProto) -> bool:
    """Whether the first input's batch is symbolic (a dynamic export, or a freed one)."""
    return not model.graph.input[0].type.tensor_type.shape.dim[0].HasField("dim_value")


def freed(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy whose batch is symbolic: each ``Reshape`` target's leading 1 becomes 0 (ONNX's "copy
    this dimension from the input", the batch), inputs and outputs name their batch ``batch``."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    constants = {tensor.name: tensor for tensor in graph.initializer}
    constants |= {
        node.output[0]: attribute.t
        for node in graph.node
        if node.op_type == "Constant"
        for attribute in node.attribute
        if attribute.name == "value"  # other forms (value_ints, ...) are no reshape targets here
    }
    other_uses = {name for node in graph.node if node.op_type != "Reshape" for name in node.input}
    for node in graph.node:
        if node.op_type != "Reshape":
            continue
        target = constants.get(node.input[1])
        if target is None:
            raise BatchRewriteError(f"{node.name}: its target shape is computed, not a constant")
        if node.input[1] in other_uses:
            raise BatchRewriteError(f"{node.name}: its target shape is also an input of other operators")
        shape = numpy_helper.to_array(target).copy()
        if shape[0] not in (0, 1):
            raise BatchRewriteError(f"{node.name}: its target {shape.tolist()} does not start with the batch")
        if any(attribute.name == "allowzero" and attribute.i for attribute in node.attribute):
            raise BatchRewriteError(f"{node.name}: allowzero makes 0 a size, not a copy of the batch")
        shape[0] = 0
        target.CopyFrom(numpy_helper.from_array(shape, target.name))
    for value in (*graph.input, *graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = BATCH_NAME
    del graph.value_info[:]  # the static intermediate shapes no longer hold; ONNX Runtime infers them
    onnx.checker.check_model(model)
    return model


def verify(source: onnx.ModelProto, batched: onnx.ModelProto, seed: int = 0) -> float:
    """The largest output difference between the source run photo by photo and the batched graph
    run on the same inputs at once; raises when it exceeds :data:`TOLERANCE`."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    one = ort.InferenceSession(source.SerializeToString(), options, providers=["CPUExecutionProvider"])
    many = ort.InferenceSession(batched.SerializeToString(), options, providers=["CPUExecutionProvider"])
    spec = one.get_inputs()[0]
    inputs = np.random.default_rng(seed).random((VERIFY_BATCH, *spec.shape[1:]), dtype=np.float32)
    expected = np.concatenate([one.run(None, {spec.name: inputs[i : i + 1]})[0] for i in range(VERIFY_BATCH)])
    got = many.run(None, {spec.name: inputs})[0]
    if got.shape != expected.shape:
        raise BatchRewriteError(f"batched output shape {got.shape}, expected {expected.shape}")
    difference = float(np.abs(got - expected).max())
    if difference > TOLERANCE:
        raise BatchRewriteError(f"batched outputs differ from one-by-one runs by {difference:.2e}")
    return difference


def free_batch(source: Path, target: Path) -> float:
    """Write ``source`` with a free batch to ``target`` (a copy when it already has one); returns
    the verified largest output difference (0 for a copy)."""
    model = onnx.load(str(source))
    if has_free_batch(model):
        target.write_bytes(source.read_bytes())
        return 0.0
    batched = freed(model)
    difference = verify(model, batched)
    onnx.save(batched, str(target))
    return difference
