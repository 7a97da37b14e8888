"""Rebuild a version's PyTorch weights from its served ONNX file, for a warm start.

git ships only the champion's ONNX file (``models/``); its ``model.pt`` lives in the MLflow
store that registered it. On a fresh clone that store is empty, and ``--warm-start champion``
would have nothing to start from: the retraining loop would start from scratch and lose what the
champion learned. The ONNX file holds the same network, its batch norms folded into the
convolutions (Ultralytics fuses before export, and keeps the PyTorch parameter names).

So the architecture is built from its YAML, fused the same way, and loaded from the ONNX
initialisers (checked against ONNX Runtime's output). The folds are then undone so that the
network can train again: each batch norm gets, as its running statistics, the mean and variance
of its convolution's output on real photos, and a scale and shift that make it the identity
composed with the fused bias. In evaluation mode the result computes exactly what the ONNX file
does; in training mode batch statistics are close to the calibrated ones, so the first updates
start from the champion's function instead of a re-normalised one.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from PIL import Image

log = logging.getLogger(__name__)


QUANTIZED_TOLERANCE = 0.15  # class scores (0–1) of an int8 file against its dequantized network


class OnnxWeightsError(ValueError):
    """The ONNX file does not hold the network the card names."""


def module_path(node_name: str) -> str:
    """The PyTorch module path of an exported node: ``/model.10/m/m.0/attn/pe/conv/Conv`` is
    ``model.10.m.0.attn.pe.conv`` (a child of a container repeats the container's name)."""
    segments = node_name.strip("/").split("/")[:-1]
    path: list[str] = []
    for previous, segment in zip(["", *segments], segments, strict=False):
        path.append(segment[len(previous) + 1 :] if previous and segment.startswith(previous + ".") else segment)
    return ".".join(path)


def onnx_parameters(onnx_path: Path) -> dict[str, torch.Tensor]:
    """The fused PyTorch parameters in the ONNX file, keyed by their PyTorch names.

    The exporter keeps parameter names, but folds identical tensors into one initialiser (an
    untrained network's zero biases all share one name), so each convolution's weight and bias
    are also looked up through the node that uses them.
    """
    graph = onnx.load(str(onnx_path)).graph
    arrays = {init.name: torch.from_numpy(numpy_helper.to_array(init).copy()) for init in graph.initializer}
    arrays |= dequantized_weights(graph.node, arrays)
    parameters = dict(arrays)
    for node in graph.node:
        if node.op_type != "Conv":
            continue
        path = module_path(node.name)
        for suffix, name in zip((".weight", ".bias"), node.input[1:], strict=False):
            if name in arrays:
                parameters[path + suffix] = arrays[name]
    return parameters


def dequantized_weights(nodes: Sequence[onnx.NodeProto], arrays: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The float tensors an int8 file's weights stand for, keyed by the dequantizing node's output.

    A quantized file (:mod:`training.quantize`, QDQ format) feeds each convolution a
    ``DequantizeLinear`` of int8 weights, per output channel: ``(q - zero_point) * scale``. Those
    are the network's weights as it runs them, so a warm start from such a file trains on from them.
    """
    found = {}
    for node in nodes:
        if node.op_type != "DequantizeLinear" or not all(name in arrays for name in node.input):
            continue  # an activation's dequantization: no weight
        quantized, scale = arrays[node.input[0]].double(), arrays[node.input[1]].double()
        zero = arrays[node.input[2]].double() if len(node.input) > 2 else torch.zeros_like(scale)
        if scale.numel() > 1:  # per channel along ``axis`` (1 unless the node says otherwise)
            axis = next((a.i for a in node.attribute if a.name == "axis"), 1) % quantized.dim()
            shape = [-1 if dim == axis else 1 for dim in range(quantized.dim())]
            scale, zero = scale.reshape(shape), zero.reshape(shape)
        found[node.output[0]] = ((quantized - zero) * scale).float()
    return found


def fused_network(architecture: str, classes: Sequence[str], onnx_path: Path) -> torch.nn.Module:
    """The architecture with its batch norms folded, loaded from the ONNX file (every tensor must match)."""
    from ultralytics.nn.tasks import DetectionModel

    network = DetectionModel(architecture, nc=len(classes), verbose=False)
    network.fuse(verbose=False)
    parameters = onnx_parameters(onnx_path)
    expected = network.state_dict()
    missing = sorted(set(expected) - set(parameters))
    if missing:
        raise OnnxWeightsError(
            f"{onnx_path} is not a fused {architecture} with {len(classes)} classes: no {missing[:3]}"
        )
    shapes = [k for k in expected if tuple(expected[k].shape) != tuple(parameters[k].shape)]
    if shapes:
        raise OnnxWeightsError(f"{onnx_path}: shapes differ from {architecture} at {shapes[:3]}")
    network.load_state_dict({k: parameters[k] for k in expected})
    return network.eval()


def unfused_network(
    architecture: str, classes: Sequence[str], fused: torch.nn.Module, calibration: torch.Tensor
) -> torch.nn.Module:
    """The trainable architecture computing what ``fused`` computes, batch norms calibrated on ``calibration``."""
    from ultralytics.nn.modules import Conv
    from ultralytics.nn.tasks import DetectionModel

    network = DetectionModel(architecture, nc=len(classes), verbose=False)
    fused_state = fused.state_dict()
    state = network.state_dict()
    with_bn = {name for name, module in network.named_modules() if isinstance(module, Conv) and hasattr(module, "bn")}
    for key in state:
        owner = key.rsplit(".", 2)[0]
        if owner in with_bn and key.startswith(f"{owner}.bn."):
            continue  # set below from the calibration
        state[key] = fused_state[key].clone()  # the fused conv weights, and every unfused layer as it is
    network.load_state_dict(state)
    # Batch norms as the identity plus the fused bias first; then the conv outputs they see.
    outputs: dict[str, list[torch.Tensor]] = {}
    hooks = []
    for name in with_bn:
        module = network.get_submodule(name)
        bias = fused_state[f"{name}.conv.bias"]
        module.bn.running_mean.zero_()
        module.bn.running_var.fill_(1.0 - module.bn.eps)
        module.bn.weight.data.fill_(1.0)
        module.bn.bias.data.copy_(bias)
        hooks.append(
            module.conv.register_forward_hook(lambda _m, _i, out, name=name: outputs.setdefault(name, []).append(out))
        )
    network.eval()
    with torch.no_grad():
        network(calibration)
    for hook in hooks:
        hook.remove()
    for name in with_bn:
        bn = network.get_submodule(name).bn
        seen = torch.cat(outputs[name]).transpose(0, 1).flatten(1)  # channels x values
        mean, var = seen.mean(dim=1), seen.var(dim=1, unbiased=False)
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(var)
        bn.weight.data.copy_(torch.sqrt(var + bn.eps))  # scale undoes the normalisation ...
        bn.bias.data.add_(mean)  # ... and the shift puts the mean back: the identity plus the fused bias
    return network


def calibration_batch(photos: Sequence[Path], imgsz: int) -> torch.Tensor:
    """Photos letterboxed to the training size, as the trainer feeds them (RGB in [0, 1])."""
    batch = []
    for path in photos:
        with Image.open(path) as image:
            rgb = image.convert("RGB")
        scale = imgsz / max(rgb.size)
        resized = rgb.resize((max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale))), Image.BILINEAR)
        canvas = Image.new("RGB", (imgsz, imgsz), (114, 114, 114))
        canvas.paste(resized, ((imgsz - resized.width) // 2, (imgsz - resized.height) // 2))
        batch.append(np.asarray(canvas, dtype=np.float32).transpose(2, 0, 1) / 255.0)
    if not batch:
        raise OnnxWeightsError("batch-norm calibration needs at least one photo")
    return torch.from_numpy(np.stack(batch))


def largest_difference(network: torch.nn.Module, onnx_path: Path, batch: torch.Tensor, first_row: int = 0) -> float:
    """Largest absolute difference between the network's raw output and ONNX Runtime's on ``batch[:1]``,
    from output row ``first_row`` on (rows 0–3 are box coordinates in pixels, the rest class scores)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    size = session.get_inputs()[0].shape[2:]
    image = batch[:1]
    if all(isinstance(side, int) for side in size):
        image = torch.nn.functional.interpolate(image, size=tuple(size), mode="bilinear")
    expected = session.run(None, {session.get_inputs()[0].name: image.numpy()})[0]
    network.eval()
    with torch.no_grad():
        got = network(image)
    got = got[0] if isinstance(got, (list, tuple)) else got
    return float(np.abs(got.numpy() - expected)[:, first_row:].max())


def rebuild_weights(
    onnx_path: Path,
    architecture: str,
    classes: Sequence[str],
    imgsz: int,
    calibration_photos: Sequence[Path],
    out: Path,
    tolerance: float = 1e-2,
) -> Path:
    """Write an Ultralytics checkpoint at ``out`` that computes what ``onnx_path`` computes.

    Raises :class:`OnnxWeightsError` when the file is another network or the rebuilt one
    disagrees with ONNX Runtime by more than ``tolerance`` (outputs are box pixels and scores).

    An int8 file (:mod:`training.quantize`) gives its dequantized weights; its activations are
    rounded too, which moves the box outputs of low-scoring anchors by up to 140 px, so only the
    class scores are compared, within ``QUANTIZED_TOLERANCE`` (v52: 0.07 apart at most on eight train photos).
    """
    from training.quantize import is_quantized

    calibration = calibration_batch(calibration_photos, imgsz)
    fused = fused_network(architecture, classes, onnx_path)
    network = unfused_network(architecture, classes, fused, calibration)
    quantized = is_quantized(onnx_path)
    tolerance = max(tolerance, QUANTIZED_TOLERANCE) if quantized else tolerance
    difference = largest_difference(network, onnx_path, calibration, first_row=4 if quantized else 0)
    if difference > tolerance:
        raise OnnxWeightsError(f"rebuilt weights differ from {onnx_path} by {difference:.4f} (tolerance {tolerance})")
    network.names = dict(enumerate(classes))
    network.args = {"imgsz": imgsz, "task": "detect", "model": architecture}
    out.parent.mkdir(parents=True, exist_ok=True)
    checkpoint = {
        "model": network.float(),
        "train_args": {"imgsz": imgsz, "task": "detect", "model": architecture},
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "rebuilt_from": str(onnx_path),
    }
    torch.save(checkpoint, out)
    log.info("rebuilt %s from %s (largest output difference %.2e)", out, onnx_path, difference)
    return out
