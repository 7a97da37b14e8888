"""Export a trained checkpoint to ONNX and register it as a new model version."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from training.onnx_batch import free_batch
from wmstudio.offline import apply_offline_env
from wmstudio.registry import Registry


def export_onnx(weights: Path, imgsz: int, out_path: Path, dynamic: bool = False) -> Path:
    """ONNX simplified with onnxslim, opset Ultralytics picks.

    Static height and width (imgsz×imgsz) by default, with the batch freed afterwards
    (:mod:`training.onnx_batch`); ``dynamic`` leaves batch, height and width free, for a version
    that runs its network at several input sizes (the outputs at ``imgsz`` are the same).
    """
    apply_offline_env()
    from ultralytics import YOLO

    # Ultralytics writes its export beside the weights: export a scratch copy, so exporting a
    # registered version's model.pt can never overwrite that version's served model.onnx.
    with tempfile.TemporaryDirectory(prefix="wmstudio-export-") as scratch:
        copy = Path(scratch) / "model.pt"
        shutil.copyfile(weights, copy)
        exported = Path(YOLO(str(copy)).export(format="onnx", imgsz=imgsz, dynamic=dynamic, simplify=True))
        out_path.parent.mkdir(parents=True, exist_ok=True)
        free_batch(exported, out_path)  # the runtime batches its extra looks (a dynamic export is copied)
    return out_path


def register_model(
    registry: Registry,
    weights: Path,
    classes: list[str],
    imgsz: int,
    threshold: float,
    data_version: str,
    recipe: dict,
    metrics: dict | None = None,
    parent: str | None = None,
    version: str | None = None,
    extra_sizes: Sequence[int] = (),
) -> str:
    """Create ``registry/<version>/`` with the ONNX model, the .pt weights and the model card.

    With ``extra_sizes`` the ONNX file is exported with dynamic height and width and the card
    lists them as ``extra_input_sizes``: the runtime then runs the network at each and pools the
    candidates (:class:`wmstudio.runtime.Detector`).
    """
    version = version or registry.reserve_version()
    folder = registry.root / version
    export_onnx(weights, imgsz, folder / "model.onnx", dynamic=bool(extra_sizes))
    shutil.copyfile(weights, folder / "model.pt")
    card = {
        "version": version,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "architecture": recipe.get("model", "yolo11n.yaml"),
        "classes": list(classes),
        "imgsz": imgsz,
        "threshold": round(float(threshold), 3),
        "data_version": data_version,
        "recipe": recipe,
        "metrics": metrics or {},
        "parent": parent,
        "licence": "Model trained with Ultralytics YOLO (AGPL-3.0).",
    }
    if extra_sizes:
        card["extra_input_sizes"] = [int(size) for size in extra_sizes]
    registry.write_card(version, card)
    return version


def update_card(registry: Registry, version: str, **fields: object) -> dict:
    """Set fields of a version's card; a field given as None is removed (a re-release may drop one)."""
    card = registry.card(version)
    card.update({key: value for key, value in fields.items() if value is not None})
    for key in [key for key, value in fields.items() if value is None]:
        card.pop(key, None)
    (registry.path(version) / "model_card.json").write_text(json.dumps(card, indent=2))
    return card
