"""Seed a state folder for the dashboard tests: demo dataset, store rows, a two-version registry.

Shared by the AppTest tests and the browser test, so both look at the same known content.
The caller sets ``WMSTUDIO_STATE_DIR`` (and clears the settings cache) before calling.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from sqlalchemy import select

from app.dashboard_data import sync_dataset_to_store
from app.demo_data import ensure_demo_dataset
from wmstudio.registry import Registry
from wmstudio.settings import get_settings
from wmstudio.store.models import Dataset, Flag, Image, QueueItem
from wmstudio.store.session import transaction

QUEUE_REASONS = ("score 0.48 near the threshold", "brands disagree", "no label yet", "model unsure")


def seed_dataset() -> Path:
    """The synthetic demo dataset (40 photos), generated the way a first start does it."""
    settings = get_settings()
    folder = ensure_demo_dataset(settings)
    assert folder is not None
    sync_dataset_to_store(folder.name, folder)
    return folder


def seed_store(dataset: str) -> dict[str, list[int]]:
    """Two duplicate flags (one cluster), two label issues, four queue items (one already sent)."""
    with transaction() as session:
        images = session.scalars(
            select(Image).join(Dataset).where(Dataset.name == dataset).order_by(Image.sha256)
        ).all()
        assert len(images) >= 8, "the demo dataset is too small to seed"
        flags = [
            Flag(image_id=images[0].id, kind="near_duplicate", score=0.97, cluster="dup-1", reason="dHash distance 2"),
            Flag(image_id=images[1].id, kind="near_duplicate", score=0.97, cluster="dup-1", reason="dHash distance 2"),
            Flag(
                image_id=images[2].id,
                kind="label_issue",
                score=0.91,
                reason="labelled rumah123 but looks clean",
                details={"given": "rumah123", "suggested": "none"},
            ),
            Flag(image_id=images[3].id, kind="box_issue", score=0.66, reason="box misses half of the mark"),
        ]
        queue = [
            QueueItem(image_id=images[4 + i].id, score=0.9 - i * 0.1, reason=reason, model_version="v1")
            for i, reason in enumerate(QUEUE_REASONS)
        ]
        queue[-1].status, queue[-1].label_studio_task_id = "sent", 42
        session.add_all(flags + queue)
        session.flush()
        return {"flags": [f.id for f in flags], "queue": [q.id for q in queue]}


def _evaluation(f1: float) -> dict:
    thresholds = [round(0.1 * i, 1) for i in range(1, 10)]
    curve = {
        "threshold": thresholds,
        "precision": [min(1.0, 0.5 + t * f1 / 2) for t in thresholds],
        "recall": [max(0.0, 1.0 - t * (1.1 - f1)) for t in thresholds],
    }
    brand = {"precision": f1, "recall": f1, "f1": f1, "ap50": f1, "ap50_95": f1 / 2, "mean_iou": 0.7, "pr_curve": curve}
    return {"threshold": 0.5, "images": 10, "per_brand": {"rumah123": brand, "99co": brand}, "errors": []}


def seed_loop_history(state: Path) -> None:
    """One recorded loop run: the challenger v2 beat the champion v1 and was promoted."""
    folder = state / "loop"
    folder.mkdir(parents=True, exist_ok=True)
    record = {"time": "2026-11-23T17:00:00+00:00", "challenger": "v2", "champion": "v1", "promoted": True,
              "gate": {"passed": True}}  # fmt: skip
    (folder / "history.jsonl").write_text(json.dumps(record) + "\n")


def seed_registry(bundled: Path, target: Path) -> Path:
    """A registry with v1 (the bundled champion, renamed) and a better challenger v2, both evaluated."""
    champion = Registry(bundled).champion_path()
    target.mkdir(parents=True)
    for version in ("v1", "v2"):
        shutil.copytree(champion, target / version)
    promotion = {"version": "v1", "previous": None, "action": "promote", "reason": "bundled", "time": "2026-01-01"}
    (target / "registry.json").write_text(json.dumps({"champion": "v1", "history": [promotion]}))
    registry = Registry(target)
    for version, f1 in (("v1", 0.62), ("v2", 0.81)):
        card = registry.card(version)
        card |= {
            "version": version,
            "parent": "v1" if version == "v2" else None,
            "evaluation_data_version": "seeded+validation",  # both measured on the same photos
            "metrics": {
                "val_f1": f1,
                "val_real_f1": f1 - 0.05,
                "val_synthetic_ap50": f1 + 0.1,
                "val_other_fp_rate": 0.01,
                "test_f1": f1 - 0.02,
            },
        }
        registry.write_card(version, card)
        folder = target / version / "evaluation"
        folder.mkdir(exist_ok=True)
        (folder / "test_real.json").write_text(json.dumps(_evaluation(f1)))
    return target


def seed_state(bundled: Path, state: Path) -> dict:
    """A state folder as a first start leaves it: demo dataset, store findings, two models, loop history."""
    import pytest

    registry = seed_registry(bundled, state / "models")
    seed_loop_history(state)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WMSTUDIO_STATE_DIR", str(state))
        patch.setenv("WMSTUDIO_DEMO_SOURCE", "synthetic")
        get_settings.cache_clear()
        folder = seed_dataset()
        ids = seed_store(folder.name)
    get_settings.cache_clear()
    return {"state": state, "registry": registry, "folder": folder, "dataset": folder.name, **ids}
