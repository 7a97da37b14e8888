"""The figures of every model version ever registered, in one small file (``models/history.json``).

Git keeps only the champion's files; the versions before it are gone from the tree but not from
the record: each keeps its card's headline figures (created, parent, threshold, metrics) and the
last decision about it (promote, reject, ...) with its reason. The full runs, plots and weights
are in MLflow; this file is what a clone has without a server.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from pathlib import Path

from wmstudio.registry import (
    HISTORY_FILE,
    NOT_BUNDLED,
    REGISTRY_FILE,
    VERSION_PATTERN,
    Registry,
    RegistryError,
    copy_champion,
)

CARD_FIELDS = ("created", "parent", "architecture", "imgsz", "threshold", "data_version", "validation_f1")


def _number(version: str) -> int:
    match = VERSION_PATTERN.match(version)
    return int(match.group(1)) if match else 0


def card_entry(card: dict) -> dict:
    """A card's figures: what a reader compares across versions (no recipe, no curves)."""
    entry = {"version": card["version"]} | {key: card[key] for key in CARD_FIELDS if card.get(key) is not None}
    entry["metrics"] = card.get("metrics") or {}
    if card.get("network_metrics"):
        entry["network_metrics"] = card["network_metrics"]
    return entry


def decisions(history: Iterable[dict]) -> dict[str, dict]:
    """The last decision recorded about each version (later entries win)."""
    last: dict[str, dict] = {}
    for entry in history:
        if entry.get("version"):
            last[entry["version"]] = {
                "decision": entry.get("action", ""),
                "reason": entry.get("reason", ""),
                "decided": entry.get("time", ""),
            }
    return last


def build_history(registry: Registry, previous: Iterable[dict] = ()) -> list[dict]:
    """Every version the registry knows (cards, decisions) merged over ``previous`` entries.

    A version present in ``previous`` but no longer in the registry keeps its entry: that is the
    point of the file. Sorted oldest first.
    """
    merged = {entry["version"]: dict(entry) for entry in previous}
    for version in registry.versions():
        try:
            merged[version] = merged.get(version, {}) | card_entry(registry.card(version))
        except (OSError, ValueError, KeyError, RegistryError):
            continue
    for version, decision in decisions(registry.history()).items():
        merged[version] = {"version": version} | merged.get(version, {}) | decision
    champion = registry.champion()
    for version, entry in merged.items():
        entry.setdefault("decision", "registered")  # trained and kept, never promoted nor rejected
        entry["champion"] = version == champion
    return sorted(merged.values(), key=lambda entry: _number(entry["version"]))


def read_history(path: Path) -> list[dict]:
    """Entries of a history file; none when it is missing."""
    return json.loads(Path(path).read_text())["versions"] if Path(path).exists() else []


def write_history(path: Path, entries: list[dict]) -> Path:
    path.write_text(json.dumps({"versions": entries}, indent=1) + "\n")
    return path


def bundle(registry: Registry, target: Path) -> str:
    """Make ``target`` (the committed ``models/``) hold the registry's champion and nothing else.

    The other versions' folders there are removed (and any weights: git carries ONNX only);
    their figures stay in ``history.json``, merged from the file, the folder's own index and
    cards, and the working registry, newest last. Returns the bundled champion.
    """
    target = Path(target)
    champion = registry.champion()
    if champion is None:
        raise RegistryError(f"no champion in {registry.root} to bundle")
    entries = read_history(target / HISTORY_FILE)
    same = target.resolve() == registry.root.resolve()
    if not same and (target / REGISTRY_FILE).exists():
        entries = build_history(Registry(target), entries)
    entries = build_history(registry, entries)
    for folder in target.glob("v*"):
        if folder.is_dir() and not (same and folder.name == champion):
            shutil.rmtree(folder)
    copy_champion(registry.root, target)
    for pattern in NOT_BUNDLED:
        for path in (target / champion).rglob(pattern):
            path.unlink()
    write_history(target / HISTORY_FILE, entries)
    return champion
