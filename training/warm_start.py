"""The weights a warm start begins from: the version's own, its MLflow copy, or rebuilt from ONNX.

A fresh clone has the champion's ONNX file but not its ``model.pt`` (git carries served files
only, and the MLflow store that holds the weights is local to the machine that trained it).
Without this fallback ``wmstudio train --warm-start champion`` and the retraining loop would
stop, or start from scratch and throw the champion away.
"""

from __future__ import annotations

import logging
from pathlib import Path

from training.onnx_weights import rebuild_weights
from training.pipeline import PreparedData
from wmstudio.mlflow_registry import warm_start_weights
from wmstudio.registry import WEIGHTS_FILE, Registry, RegistryError
from wmstudio.settings import Settings

log = logging.getLogger(__name__)
CALIBRATION_PHOTOS = 64  # batch-norm statistics settle well before this many photos


def calibration_photos(data: PreparedData, count: int = CALIBRATION_PHOTOS) -> list[Path]:
    """Train photos spread over the synthetic split (the real ones are too few and too alike)."""
    items = sorted(
        (item for item in data.synthetic.items.values() if item.split == "train"), key=lambda item: item.sha256
    )
    step = max(1, len(items) // count)
    return [data.synthetic_dir / item.path for item in items[::step][:count]]


def start_weights(registry: Registry, version: str, data: PreparedData, settings: Settings | None = None) -> Path:
    """``version``'s PyTorch weights; rebuilt from its ONNX file into its folder when nowhere else."""
    try:
        return warm_start_weights(registry, version, settings)
    except RegistryError:
        folder = registry.path(version)
        card = registry.card(version)
        log.info("%s has no %s here or in MLflow: rebuilding it from %s/model.onnx", version, WEIGHTS_FILE, folder)
        return rebuild_weights(
            folder / "model.onnx",
            card.get("architecture", "yolo11n.yaml"),
            card["classes"],
            int(card.get("imgsz", 320)),
            calibration_photos(data),
            folder / WEIGHTS_FILE,
        )
