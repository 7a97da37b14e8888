"""Experiment tracking and model history in MLflow.

Every ``wmstudio train`` is an MLflow run (recipe, data version, per-epoch metrics, plots), its
release logs the card's metrics, the evaluation files, the ONNX file and the weights into the
same run and registers the version in the MLflow model registry (tag ``wmstudio_version``);
``wmstudio evaluate`` is a run of its own. Decisions (the ``champion`` alias, status tags) are
mirrored by :mod:`wmstudio.mlflow_registry`.

The folder registry stays what serving reads (torch-free and MLflow-free, see the import-linter
contract); MLflow is the record. So tracking is best effort: a tracking failure is logged as a
warning and never loses a model that took an hour to train. The default store is embedded (SQLite
``<state_dir>/mlflow.db``, artifacts ``<state_dir>/mlartifacts``); ``MLFLOW_TRACKING_URI`` points
it at a shared server. ``mlflow`` is imported only when a function needs it.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import json
import logging
import math
import os
import re
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from wmstudio.registry import Registry
from wmstudio.settings import Settings, get_settings

log = logging.getLogger(__name__)

# MLflow's own usage telemetry and phone-home: off, in code (the machines have no internet).
PHONE_HOME_OFF = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
# A shared server that is down must not hold a finished training for minutes of retries.
HTTP_PATIENCE = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}
VERSION_TAG = "wmstudio_version"
KIND_TAG = "wmstudio_kind"  # train, release, evaluate, import, history
EVALUATION_SUFFIXES = (".json", ".png", ".md")
TRAINING_FILES = ("*.png", "*.jpg", "results.csv", "args.yaml")
METRIC_KEY = re.compile(r"[^/\w.\- :]")  # characters MLflow refuses in metric and param names
BATCH = 900  # MLflow takes at most 1000 metrics per log_batch

T = TypeVar("T")


@dataclass(frozen=True)
class Run:
    """The MLflow run this process logs to (one ``wmstudio train`` or ``evaluate``)."""

    client: Any  # mlflow.MlflowClient
    run_id: str
    experiment_id: str
    settings: Settings


_current: contextvars.ContextVar[Run | None] = contextvars.ContextVar("wmstudio_mlflow_run", default=None)


def best_effort(function: Callable[..., T]) -> Callable[..., T | None]:
    """Log a tracking failure as a warning and return None: the record must never cost a model."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> T | None:
        try:
            return function(*args, **kwargs)
        except Exception as exc:
            log.warning("MLflow %s failed: %s: %s", function.__name__, type(exc).__name__, exc, exc_info=True)
            return None

    return wrapper


def quiet_environment() -> None:
    """No telemetry, short HTTP retries (without overriding what the caller set)."""
    for key, value in (PHONE_HOME_OFF | HTTP_PATIENCE).items():
        os.environ.setdefault(key, value)


@functools.lru_cache(maxsize=8)
def _client_for(uri: str) -> Any:
    quiet_environment()
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def client(settings: Settings | None = None) -> Any | None:
    """An MLflow client for the configured store, or None when tracking is off or MLflow absent."""
    settings = settings or get_settings()
    if not settings.mlflow_enabled:
        return None
    try:
        return _client_for(settings.resolved_mlflow_tracking_uri)
    except ImportError:
        log.warning("mlflow is not installed (pip install -e '.[train]'): runs are not tracked")
        return None


def _is_server(settings: Settings) -> bool:
    return settings.resolved_mlflow_tracking_uri.startswith(("http://", "https://", "databricks"))


def experiment_id(mlflow_client: Any, settings: Settings) -> str:
    """The project's experiment, created on first use with the local artifact folder (embedded store)."""
    found = mlflow_client.get_experiment_by_name(settings.mlflow_experiment)
    if found is not None:
        return found.experiment_id
    location = None if _is_server(settings) else settings.mlflow_artifacts_dir.as_uri()
    try:
        return mlflow_client.create_experiment(settings.mlflow_experiment, artifact_location=location)
    except Exception:  # created by a process running at the same time
        found = mlflow_client.get_experiment_by_name(settings.mlflow_experiment)
        if found is None:
            raise
        return found.experiment_id


@best_effort
def _start(settings: Settings, name: str, kind: str, tags: Mapping[str, str]) -> Run | None:
    mlflow_client = client(settings)
    if mlflow_client is None:
        return None
    experiment = experiment_id(mlflow_client, settings)
    created = mlflow_client.create_run(experiment, run_name=name, tags={KIND_TAG: kind, **tags})
    log.info("MLflow run %s (%s) in %s", created.info.run_id, name, settings.resolved_mlflow_tracking_uri)
    return Run(mlflow_client, created.info.run_id, experiment, settings)


@contextlib.contextmanager
def run(name: str, kind: str, settings: Settings | None = None, tags: Mapping[str, str] | None = None) -> Iterator:
    """Log inside an MLflow run: the current one if there is one (a release inside ``wmstudio
    train``), else a new run that ends FINISHED, or FAILED when the block raises."""
    active = _current.get()
    if active is not None:
        if tags:
            set_tags(tags)
        yield active
        return
    started = _start(settings or get_settings(), name, kind, dict(tags or {}))
    if started is None:
        yield None
        return
    token = _current.set(started)
    status = "FAILED"
    try:
        yield started
        status = "FINISHED"
    finally:
        _current.reset(token)
        with contextlib.redirect_stdout(sys.stderr):  # MLflow prints the run's link: keep stdout for results
            best_effort(started.client.set_terminated)(started.run_id, status)


# --- logging into the current run ----------------------------------------------------------------


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as dotted keys (``synth.opacity``), the shape MLflow params and metrics take."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = METRIC_KEY.sub("", f"{prefix}{key}")
        if isinstance(value, Mapping):
            flat |= flatten(value, f"{name}.")
        else:
            flat[name] = value
    return flat


def _numeric(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isinf(value)


@best_effort
def set_tags(tags: Mapping[str, Any]) -> None:
    active = _current.get()
    if active is not None:
        for key, value in tags.items():
            active.client.set_tag(active.run_id, key, str(value)[:5000])


@best_effort
def log_params(params: Mapping[str, Any], prefix: str = "") -> None:
    """Log (flattened) params; keys the run already has are kept (MLflow params are write-once)."""
    active = _current.get()
    if active is None:
        return
    from mlflow.entities import Param

    known = active.client.get_run(active.run_id).data.params
    fresh = [Param(k, str(v)[:6000]) for k, v in flatten(params, prefix).items() if k not in known]
    for start in range(0, len(fresh), 100):
        active.client.log_batch(active.run_id, params=fresh[start : start + 100])


@best_effort
def log_metrics(metrics: Mapping[str, Any], step: int = 0, prefix: str = "") -> None:
    """Numeric values as metrics; text values (e.g. the worst variant's name) as tags."""
    active = _current.get()
    if active is None:
        return
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    flat = flatten(metrics, prefix)
    numbers = [Metric(k, float(v), now, step) for k, v in flat.items() if _numeric(v)]
    for start in range(0, len(numbers), BATCH):
        active.client.log_batch(active.run_id, metrics=numbers[start : start + BATCH])
    texts = {k: v for k, v in flat.items() if not _numeric(v) and v is not None}
    if texts:
        set_tags(texts)


def log_epoch(epoch: int, metrics: Mapping[str, Any]) -> None:
    """Per-epoch training metrics (losses, precision, recall, mAP, learning rates) at step ``epoch``."""
    log_metrics({k: v for k, v in metrics.items() if _numeric(v)}, step=epoch)


@best_effort
def log_files(folder: Path, artifact_path: str, patterns: tuple[str, ...] = ("*",)) -> int:
    """Files (not sub-folders) of ``folder`` matching ``patterns`` under ``artifact_path``."""
    active = _current.get()
    if active is None or not Path(folder).is_dir():
        return 0
    files = sorted({path for pattern in patterns for path in Path(folder).glob(pattern) if path.is_file()})
    for path in files:
        active.client.log_artifact(active.run_id, str(path), artifact_path)
    return len(files)


def log_training(run_dir: Path) -> None:
    """The trainer's plots (PR, F1, confusion, batches, results) and its results.csv / args.yaml."""
    log_files(run_dir, "training", TRAINING_FILES)


# --- releases, evaluations and the model registry ----------------------------------------------


def _card_params(card: Mapping[str, Any]) -> dict[str, Any]:
    fields = ("architecture", "imgsz", "data_version", "parent", "threshold_rule", "classes")
    return {k: card[k] for k in fields if card.get(k) is not None} | flatten(card.get("recipe") or {})


def _card_metrics(card: Mapping[str, Any]) -> dict[str, Any]:
    metrics = dict(card.get("metrics") or {})
    metrics |= {k: card[k] for k in ("threshold", "validation_f1", "network_threshold") if card.get(k) is not None}
    metrics |= flatten(card.get("network_metrics") or {}, "network.")
    return metrics


def variant_metrics(report: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Per stage, set, robustness variant and brand figures of a robustness report
    (``{"stages": {stage: {set: {variant: {"per_brand": {brand: {...}}, ...}}}}}``), flat."""
    figures = ("precision", "recall", "f1", "ap50")
    flat: dict[str, float] = {}
    for stage, sets in (report.get("stages") or {}).items():
        for name, by_variant in (sets or {}).items():
            for variant, summary in (by_variant or {}).items():
                key = f"{prefix}{stage}.{name}.{variant}"
                if _numeric(summary.get("other_mark_fp_rate")):
                    flat[f"{key}.other_fp_rate"] = summary["other_mark_fp_rate"]
                for brand, values in (summary.get("per_brand") or {}).items():
                    if values.get("positives"):
                        flat |= {f"{key}.{brand}.{f}": values[f] for f in figures if _numeric(values.get(f))}
    return flat


def _log_reports(folder: Path) -> None:
    """Every robustness report JSON in ``folder`` as per-variant metrics, named by its file."""
    for path in sorted(Path(folder).glob("*.json")) if Path(folder).is_dir() else []:
        try:
            report = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(report, dict) and "stages" in report:
            log_metrics(variant_metrics(report, f"{path.stem}."))


def _log_version_files(folder: Path) -> None:
    """The served files (ONNX, card, verifier) as the registered model, weights and evaluation apart."""
    served = tuple(p.name for p in folder.iterdir() if p.is_file() and p.suffix != ".pt" and not p.name.startswith("."))
    log_files(folder, "model", served)
    log_files(folder, "weights", ("*.pt",))
    log_files(folder / "evaluation", "evaluation", tuple(f"*{suffix}" for suffix in EVALUATION_SUFFIXES))
    _log_reports(folder / "evaluation")


def _ensure_registered_model(mlflow_client: Any, name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        mlflow_client.create_registered_model(name, description="Watermark Studio brand-watermark detector (ONNX).")
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise


def model_version(mlflow_client: Any, settings: Settings, version: str) -> Any | None:
    """The newest MLflow model version registered for our ``version`` (a re-release adds one)."""
    found = mlflow_client.search_model_versions(
        f"name='{settings.mlflow_model_name}' and tags.{VERSION_TAG}='{version}'"
    )
    return max(found, key=lambda mv: int(mv.version)) if found else None


def _register(active: Run, registry: Registry, version: str) -> dict:
    """Register the run's ``model`` artifacts as a model version; note the ids in the card."""
    settings, mlflow_client = active.settings, active.client
    _ensure_registered_model(mlflow_client, settings.mlflow_model_name)
    card = registry.card(version)
    artifact_uri = mlflow_client.get_run(active.run_id).info.artifact_uri
    registered = mlflow_client.create_model_version(
        settings.mlflow_model_name,
        source=f"{artifact_uri}/model",
        run_id=active.run_id,
        tags={VERSION_TAG: version, "status": "candidate", "data_version": str(card.get("data_version", ""))},
        description=f"{version}: threshold {card.get('threshold')}, parent {card.get('parent') or 'none'}",
    )
    ids = {
        "tracking_uri": settings.mlflow_tracking_uri or "embedded",
        "experiment_id": active.experiment_id,
        "run_id": active.run_id,
        "model_name": settings.mlflow_model_name,
        "model_version": str(registered.version),
    }
    registry.write_card(version, card | {"mlflow": ids})
    return ids


def log_version(registry: Registry, version: str, kind: str, settings: Settings, fresh: bool = False) -> dict | None:
    """Log a version's card and files and register it, in the current run (or a ``fresh`` one)."""
    card = registry.card(version)
    token = _current.set(None) if fresh else None
    try:
        with run(f"{kind} {version}", kind, settings, {VERSION_TAG: version}) as active:
            if active is None:
                return None
            log_params(_card_params(card))
            log_metrics(_card_metrics(card))
            set_tags({VERSION_TAG: version, "data_version": card.get("data_version", "")})
            _log_version_files(registry.path(version))
            return best_effort(_register)(active, registry, version)
    finally:
        if token is not None:
            _current.reset(token)


def log_release(registry: Registry, version: str, settings: Settings | None = None) -> dict | None:
    """Log a released version (card metrics, evaluation files, ONNX, weights) and register it.

    Inside ``wmstudio train`` this lands in the training run; called alone (a re-release, the
    loop) it starts a run of its own. Returns the MLflow ids written into the card, or None.
    """
    return log_version(registry, version, "release", settings or get_settings())


def log_evaluation(version: str, report: Mapping[str, Any], folder: Path, settings: Settings | None = None) -> None:
    """A ``wmstudio evaluate`` run: the report's metrics and the folder's JSON/PNG/Markdown files."""
    split = str(report.get("split", ""))
    tags = {VERSION_TAG: version, "split": split}
    with run(f"evaluate {version} {split}".strip(), "evaluate", settings, tags) as active:
        if active is None:
            return
        log_params({"version": version, "split": split, "seed": report.get("seed", 0)})
        log_params({"variants": ",".join(report.get("variants", ()))})
        log_metrics(report.get("metrics") or {})
        log_metrics({f"threshold.{k}": v for k, v in (report.get("thresholds") or {}).items()})
        log_metrics(variant_metrics(report, f"{split}."))
        log_files(folder, "evaluation", tuple(f"*{suffix}" for suffix in EVALUATION_SUFFIXES))
