"""The MLflow model registry mirrors the folder registry: each decision moves the ``champion``
alias and tags the version (status, reason), through the folder registry's listeners.

The folder registry stays the truth serving reads; this is the record a team browses in the
MLflow UI. Also here: fetching a version's weights back from its run (a warm start from a
champion that came from git), backfilling MLflow from a clone, and the UI links the dashboard
shows. Best effort like :mod:`wmstudio.tracking`: a tracking failure is a warning.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from wmstudio.model_history import decisions, read_history
from wmstudio.registry import HISTORY_FILE, WEIGHTS_FILE, Registry, RegistryError
from wmstudio.settings import Settings, get_settings
from wmstudio.tracking import (
    VERSION_TAG,
    best_effort,
    client,
    experiment_id,
    log_metrics,
    log_params,
    log_version,
    model_version,
    run,
    set_tags,
)

log = logging.getLogger(__name__)

CHAMPION_ALIAS = "champion"
STATUS = {"promote": "champion", "rollback": "champion", "reject": "rejected", "restore": "candidate"}


def _ensure_version(mlflow_client: Any, registry: Registry, version: str, settings: Settings) -> Any | None:
    """The MLflow model version of ``version``, registering it from its folder when MLflow lacks it
    (a champion seeded from git, a registry older than tracking)."""
    found = model_version(mlflow_client, settings, version)
    if found is None and (registry.root / version / "model_card.json").exists():
        log_version(registry, version, "import", settings, fresh=True)
        found = model_version(mlflow_client, settings, version)
    return found


def record_decision(registry: Registry, entry: Mapping[str, Any], settings: Settings | None = None) -> None:
    """Mirror one registry decision: ``champion`` alias on promote/rollback, status and reason tags."""
    settings = settings or get_settings()
    mlflow_client = client(settings)
    action, version = entry.get("action", ""), entry.get("version", "")
    if mlflow_client is None or action not in STATUS:
        return
    found = best_effort(_ensure_version)(mlflow_client, registry, version, settings)
    if found is None:
        log.warning("MLflow has no model version for %s: the %s is in the folder registry only", version, action)
        return
    best_effort(_apply_decision)(mlflow_client, settings, found, entry)


def _apply_decision(mlflow_client: Any, settings: Settings, found: Any, entry: Mapping[str, Any]) -> None:
    name, action = settings.mlflow_model_name, entry["action"]
    tags = {"status": STATUS[action], "reason": entry.get("reason", ""), "decided": entry.get("time", "")}
    if STATUS[action] == "champion":
        previous = entry.get("previous")
        replaced = None if previous in (None, entry["version"]) else model_version(mlflow_client, settings, previous)
        if replaced is not None:
            mlflow_client.set_model_version_tag(name, replaced.version, "status", "retired")
        mlflow_client.set_registered_model_alias(name, CHAMPION_ALIAS, found.version)
    for key, value in tags.items():
        mlflow_client.set_model_version_tag(name, found.version, key, str(value)[:5000])
        if found.run_id:
            mlflow_client.set_tag(found.run_id, f"decision.{key}", str(value)[:5000])


def tracked_registry(settings: Settings | None = None) -> Registry:
    """The working registry whose decisions are mirrored to the MLflow model registry."""
    settings = settings or get_settings()
    return Registry.from_settings(settings, [lambda registry, entry: record_decision(registry, entry, settings)])


def tag_version(version: str, status: str, reason: str, settings: Settings | None = None) -> None:
    """Tag a version without a registry move (the loop's gate rejecting a challenger it keeps)."""
    settings = settings or get_settings()
    mlflow_client = client(settings)
    if mlflow_client is None:
        return
    found = best_effort(model_version)(mlflow_client, settings, version)
    if found is not None:
        entry = {"action": "reject" if status == "rejected" else "restore", "reason": reason, "version": version}
        best_effort(_apply_decision)(mlflow_client, settings, found, entry)


# --- weights, backfill and links ----------------------------------------------------------------


def warm_start_weights(registry: Registry, version: str, settings: Settings | None = None) -> Path:
    """The version's ``model.pt``: from its folder, else fetched from its MLflow run into the folder.

    Raises :class:`RegistryError` saying what to do when neither has it (the bundled champion
    ships ONNX only).
    """
    folder = registry.path(version)
    if not (folder / WEIGHTS_FILE).exists():
        _fetch_weights(folder, version, settings or get_settings())
    return registry.weights(version)


@best_effort
def _fetch_weights(folder: Path, version: str, settings: Settings) -> Path | None:
    mlflow_client = client(settings)
    found = model_version(mlflow_client, settings, version) if mlflow_client is not None else None
    if found is None or not found.run_id:
        return None
    names = [item.path for item in mlflow_client.list_artifacts(found.run_id, "weights")]
    if f"weights/{WEIGHTS_FILE}" not in names:
        return None
    downloaded = Path(mlflow_client.download_artifacts(found.run_id, f"weights/{WEIGHTS_FILE}", str(folder)))
    shutil.move(downloaded, folder / WEIGHTS_FILE)
    shutil.rmtree(folder / "weights", ignore_errors=True)
    log.info("fetched %s's weights from MLflow run %s", version, found.run_id)
    return folder / WEIGHTS_FILE


def sync(settings: Settings | None = None) -> dict:
    """Backfill MLflow from what the clone has: each registered version without a model version
    (imported from its folder), each ``history.json`` entry without a run (its figures and the
    decision as tags), then the ``champion`` alias. Safe to run again: nothing is logged twice."""
    settings = settings or get_settings()
    mlflow_client = client(settings)
    if mlflow_client is None:
        raise RegistryError("MLflow tracking is off (WMSTUDIO_MLFLOW_ENABLED=false) or mlflow is not installed")
    registry = Registry.from_settings(settings)
    imported = [v for v in registry.versions() if model_version(mlflow_client, settings, v) is None]
    for version in imported:
        log_version(registry, version, "import", settings, fresh=True)
    experiment = experiment_id(mlflow_client, settings)
    history_path = registry.root / HISTORY_FILE
    entries = read_history(history_path if history_path.exists() else settings.bundled_models_dir / HISTORY_FILE)
    recorded = []
    for entry in entries:
        version = entry["version"]
        if version in registry.versions():
            continue
        if mlflow_client.search_runs([experiment], f"tags.{VERSION_TAG} = '{version}'", max_results=1):
            continue
        with run(f"history {version}", "history", settings, {VERSION_TAG: version}) as active:
            if active is None:
                continue
            log_params({k: v for k, v in entry.items() if k not in ("metrics", "network_metrics", "reason")})
            log_metrics(entry.get("metrics") or {})
            log_metrics(entry.get("network_metrics") or {}, prefix="network.")
            set_tags({"decision": entry.get("decision", ""), "reason": entry.get("reason", "")})
        recorded.append(version)
    champion = registry.champion()
    if champion:
        last = decisions(registry.history()).get(champion, {})
        entry = {"action": "promote", "version": champion, "reason": last.get("reason", "")}
        record_decision(registry, entry | {"time": last.get("decided", "")}, settings)
    return {"imported": imported, "history_runs": recorded, "champion": champion}


def ui_links(card: Mapping[str, Any], settings: Settings | None = None) -> dict[str, str]:
    """MLflow UI links of a version (its run, its model version) from the ids in its card."""
    ids = card.get("mlflow") or {}
    base = (settings or get_settings()).resolved_mlflow_ui_url
    links = {}
    if ids.get("run_id") and ids.get("experiment_id"):
        links["run"] = f"{base}/#/experiments/{ids['experiment_id']}/runs/{ids['run_id']}"
    if ids.get("model_name") and ids.get("model_version"):
        links["model version"] = f"{base}/#/models/{ids['model_name']}/versions/{ids['model_version']}"
    return links
