"""``wmstudio loop``: one turn (or several) of the active-learning loop, every turn recorded.

pull human answers → retrain warm-started from the champion (real + synthetic + human-labelled
pool photos) → evaluate the challenger on the *fixed* test sets → champion/challenger gate →
promote or not (the API hot-reloads a promotion: it polls ``registry.json``) → score the pool
with the champion → push the next batch to Label Studio.

Every run appends one JSON line to ``state_dir/loop/history.jsonl`` (run id, times, data
version, labels used, both sides' metrics, each gate check, the decision, queue counts, errors)
so the dashboard can draw the history. Label Studio being down is not fatal: the run trains on
the labels already in the store, records the error and pushes nothing; the next run catches up.

The steps are methods of :class:`LoopSteps` so tests can replace training with a fake and check
the orchestration and the gate in seconds.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from wmstudio.gate import GateConfig, gate
from wmstudio.loop_history import append_history, read_history

log = logging.getLogger(__name__)


# --- steps -------------------------------------------------------------------------------------


@dataclass
class TrainOutcome:
    version: str  # registered challenger version
    metrics: dict
    data_version: str
    labels: int


class LoopSteps:
    """The real steps. Tests subclass it and replace ``train_and_release`` (minutes → milliseconds)."""

    def __init__(self, settings: Any, epochs: int = 10, hours: float = 0.25, k: int | None = None) -> None:
        from wmstudio.mlflow_registry import tracked_registry

        self.settings = settings
        self.registry = tracked_registry(settings)  # promotions also move MLflow's champion alias
        self.epochs, self.hours = epochs, hours
        self.k = k or settings.queue_batch_size

    def transaction(self):
        from wmstudio.store.session import transaction

        return transaction()

    def label_studio(self):
        from curation.labelstudio import LabelStudioSync

        return LabelStudioSync.from_settings(self.settings)

    def pull(self) -> dict:
        return asdict(self.label_studio().pull(self.transaction))

    def human_manifests(self) -> tuple[list[tuple[Any, Path]], int, str]:
        """Human-labelled photos as manifests per dataset folder (train/val by hash; never test)."""
        from sqlalchemy import select

        from wmstudio.data.manifest import Box, Item, Manifest
        from wmstudio.store.models import Label

        groups: dict[str, Manifest] = {}
        roots: dict[str, Path] = {}
        with self.transaction() as session:
            labels = session.scalars(select(Label).where(Label.source == "human").order_by(Label.created)).all()
            latest: dict[int, list] = {}
            for label in labels:  # the newest author's answer per image wins
                rows = latest.setdefault(label.image_id, [])
                if rows and rows[-1].author != label.author:
                    rows.clear()
                rows.append(label)
            for rows in latest.values():
                image = rows[0].image
                if image.split == "test":  # the fixed test set never trains
                    continue
                level = next((r for r in rows if r.box is None), None)
                boxes = [Box(r.brand, list(r.box)) for r in rows if r.box is not None and r.brand]
                brand = level.brand if level is not None else (boxes[0].brand if boxes else None)
                bucket = int(hashlib.sha256(image.sha256.encode()).hexdigest()[:8], 16) % 100
                item = Item(
                    image.sha256, image.path, image.width, image.height, brand, boxes, source="human",
                    origin=image.origin, split="val" if bucket < 15 else "train",
                )  # fmt: skip
                name = image.dataset.name
                groups.setdefault(name, Manifest(name=f"human-{name}")).add(item)
                roots[name] = Path(image.dataset.root)
        sources = [(manifest, roots[name]) for name, manifest in sorted(groups.items())]
        count = sum(len(m.items) for m, _ in sources)
        version = hashlib.sha256("+".join(m.version() for m, _ in sources).encode()).hexdigest()[:12]
        return sources, count, version if count else "none"

    def train_and_release(self, run_dir: Path, champion: str | None) -> TrainOutcome:
        from training.pipeline import REAL_NEGATIVE_REPEATS, REAL_POSITIVE_REPEATS, prepare_default_data
        from training.release import release_model
        from training.train import TrainRecipe, train
        from training.yolo_data import Source, write_yolo_dataset

        human, count, human_version = self.human_manifests()
        data = prepare_default_data(self.settings.data_dir, self.settings.state_dir)
        sources = [
            Source(data.real, data.real_dir, REAL_POSITIVE_REPEATS, REAL_NEGATIVE_REPEATS),
            Source(data.synthetic, data.synthetic_dir),
            *(Source(manifest, root, 3, 2) for manifest, root in human),  # people's labels weigh more
        ]
        data_yaml = write_yolo_dataset(sources, run_dir / "yolo")
        from training.warm_start import start_weights

        start = str(start_weights(self.registry, champion, data, self.settings)) if champion else None
        imgsz = int(self.registry.card(champion).get("imgsz", 320)) if champion else 320
        recipe = TrainRecipe(imgsz=imgsz, epochs=self.epochs, time_hours=self.hours or None, warm_start=start)
        best = train(data_yaml, run_dir / "train", recipe)
        version = release_model(self.registry, best, data, recipe.to_dict(), parent=champion)
        data_version = f"{data.real.version()}+{data.synthetic.version()}+human:{human_version}"
        from training.export import update_card

        card = update_card(self.registry, version, data_version=data_version, human_labels=count)
        return TrainOutcome(version, card.get("metrics", {}), data_version, count)

    def champion_metrics(self, champion: str, run_dir: Path) -> dict:
        """The champion re-evaluated on today's validation variants (the data the challenger is judged on),
        its threshold chosen there by the release's rule, as the challenger's was."""
        from training.release import evaluate_version

        try:
            return evaluate_version(
                self.registry, champion, self.settings.state_dir, "val", run_dir / "champion", recalibrate=True
            )["metrics"]
        except FileNotFoundError:
            return self.registry.card(champion).get("metrics", {})

    def score_pool(self) -> dict:
        from curation.queue import build_queue
        from wmstudio.runtime import Detector

        detector = Detector.from_version_dir(self.registry.champion_path(), self.settings.inference_threads)
        with self.transaction() as session:
            report = build_queue(
                session,
                detector,
                [self.settings.queue_pool_dataset],
                self.settings.queue_tta,
                self.settings.near_duplicate_distance,
                self.k,
            )
        return {"model_version": report.model_version, "scored": report.scored, "queued": report.queued}

    def push(self) -> dict:
        return asdict(self.label_studio().push(self.transaction, self.k))

    def tag_rejected(self, version: str, reason: str) -> None:
        """The gate kept the champion: the challenger stays registered, MLflow marks it rejected."""
        from wmstudio.mlflow_registry import tag_version

        tag_version(version, "rejected", reason, self.settings)


# --- orchestration -----------------------------------------------------------------------------


def run_once(steps: LoopSteps, config: GateConfig, loop_dir: Path, min_new_labels: int = 1) -> dict:
    """One loop turn; returns (and appends to the history) the run record."""
    from curation.labelstudio import LabelStudioConfigError, LabelStudioUnavailable

    offline = (LabelStudioUnavailable, LabelStudioConfigError)
    run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + f"-{int(time.time() * 1000) % 1000:03d}"
    run_dir = loop_dir / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    champion = steps.registry.champion()
    record: dict = {"run": run_id, "started": datetime.now(UTC).isoformat(timespec="seconds")}
    record |= {"champion_before": champion, "errors": [], "gate_config": asdict(config)}
    try:
        record["pull"] = steps.pull()
    except offline as exc:
        record["errors"].append(f"pull: {exc}")
    _, labels, human_version = steps.human_manifests()
    previous = [r for r in read_history(loop_dir) if r.get("labels") is not None]
    last_version = previous[-1].get("human_data_version") if previous else None
    record |= {"labels": labels, "human_data_version": human_version}
    if labels < min_new_labels or human_version == last_version:
        record |= {"decision": "skipped", "reason": "no new human labels since the last run"}
    else:
        outcome = steps.train_and_release(run_dir, champion)
        champion_metrics = steps.champion_metrics(champion, run_dir) if champion else None
        decision = gate(outcome.metrics, champion_metrics, config)
        record |= {
            "challenger": outcome.version,
            "data_version": outcome.data_version,
            "metrics": {"challenger": outcome.metrics, "champion": champion_metrics},
            "gate": asdict(decision),
        }
        if decision.passed:
            steps.registry.promote(outcome.version, f"active-learning loop {run_id}: {decision.summary()}")
            record["decision"] = "promoted"
        else:
            record["decision"] = "rejected"
            steps.tag_rejected(outcome.version, f"active-learning loop {run_id}: {decision.summary()}")
        record["reason"] = decision.summary()
    record["champion_after"] = steps.registry.champion()
    try:
        record["queue"] = steps.score_pool()
    except Exception as exc:  # scoring must not lose the record of a training run
        log.exception("scoring the pool failed")
        record["errors"].append(f"score: {exc}")
    try:
        record["push"] = steps.push()
    except offline as exc:
        record["errors"].append(f"push: {exc}")
    record["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    append_history(loop_dir, record)
    (run_dir / "run.json").write_text(json.dumps(record, indent=1, default=str))
    return record


def loop_command(
    rounds: Annotated[int, typer.Option(help="How many turns to run.")] = 1,
    k: Annotated[int | None, typer.Option("-k", help="Tasks to push per turn (default: batch size).")] = None,
    epochs: Annotated[int, typer.Option(help="Warm-start fine-tuning epochs per turn.")] = 10,
    hours: Annotated[float, typer.Option(help="Wall-clock cap per training (0: epochs only).")] = 0.25,
    min_new_labels: Annotated[int, typer.Option(help="Train only with at least this many human labels.")] = 1,
    min_f1_delta: Annotated[float | None, typer.Option(help="Gate: required real-test F1 gain.")] = None,
    max_ap_drop: Annotated[float | None, typer.Option(help="Gate: allowed synthetic AP50 drop.")] = None,
    max_fp_rate: Annotated[float | None, typer.Option(help="Gate: other-mark false-positive cap.")] = None,
) -> None:
    """Active learning: pull labels → retrain (warm start) → gate → promote → score pool → push."""
    from wmstudio.offline import apply_offline_env
    from wmstudio.settings import get_settings

    settings = get_settings()
    apply_offline_env(settings.state_dir)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    base = GateConfig.from_settings(settings)
    config = GateConfig(
        base.min_f1_delta if min_f1_delta is None else min_f1_delta,
        base.max_ap_drop if max_ap_drop is None else max_ap_drop,
        base.max_fp_rate if max_fp_rate is None else max_fp_rate,
    )
    steps = LoopSteps(settings, epochs, hours, k)
    for _ in range(rounds):
        record = run_once(steps, config, settings.loop_dir, min_new_labels)
        print(json.dumps({key: record.get(key) for key in ("run", "decision", "reason", "labels", "errors")}))
