"""The model registry: versioned folders plus a champion pointer.

Layout::

    <state dir>/models/    the working registry (``settings.registry_dir``)
      registry.json        {"champion": "v1", "history": [{"version", "action", "time", ...}]}
      v1/model.onnx        served model (torch-free)
      v1/model.pt          PyTorch weights, for warm-starting the next version
      v1/model_card.json   version, classes, imgsz, threshold, data version, recipe, metrics
      v1/evaluation/       evaluation JSON, Markdown and plots

Promotion rewrites ``registry.json`` atomically; the API polls its modification time and
hot-reloads, so promotion is the only deploy step a new model needs.

Git carries only the champion (``models/``: its ONNX file, card and evaluation summaries, no
``.pt``) plus ``history.json``, the figures of every earlier version. An empty working registry
is seeded from it, so a fresh clone predicts and serves with no training; every version's runs,
weights and files live in MLflow (:mod:`wmstudio.tracking`).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from wmstudio.atomic import atomic_write

if TYPE_CHECKING:
    from wmstudio.settings import Settings

REGISTRY_FILE = "registry.json"
HISTORY_FILE = "history.json"
WEIGHTS_FILE = "model.pt"
VERSION_PATTERN = re.compile(r"^v(\d+)$")
NOT_BUNDLED = ("*.pt", "*.ckpt", ".*")  # weights and scratch files never leave the working registry

log = logging.getLogger(__name__)


class RegistryError(RuntimeError):
    pass


Listener = Callable[["Registry", dict], None]


class Registry:
    def __init__(self, root: Path, listeners: Sequence[Listener] = ()) -> None:
        """``listeners`` hear every recorded decision (promote, reject, restore, rollback), e.g.
        :func:`wmstudio.mlflow_registry.tracked_registry` mirrors them to the MLflow model registry."""
        self.root = Path(root)
        self.listeners = list(listeners)

    @classmethod
    def from_settings(cls, settings: Settings, listeners: Sequence[Listener] = ()) -> Registry:
        """The working registry, seeded from the bundled champion the first time it is opened empty."""
        registry = cls(settings.registry_dir, listeners)
        try:
            seed_registry(registry.root, settings.bundled_models_dir)
        except (OSError, RegistryError) as exc:  # a read-only or odd folder: readers say "no model" clearly
            log.warning("could not seed %s from %s: %s", registry.root, settings.bundled_models_dir, exc)
        return registry

    @property
    def index_path(self) -> Path:
        return self.root / REGISTRY_FILE

    def _read(self) -> dict:
        if not self.index_path.exists():
            return {"champion": None, "history": []}
        return json.loads(self.index_path.read_text())

    def _write(self, data: dict) -> None:
        """Replace the index atomically: a crash mid-write leaves the previous index, never half of one.

        The final newline keeps git diffs of the committed index clean.
        """
        atomic_write(self.index_path, json.dumps(data, indent=2) + "\n")

    def versions(self) -> list[str]:
        """Registered versions (folders with a model card), oldest first."""
        found = [p.name for p in self.root.glob("v*") if (p / "model_card.json").exists()]
        return sorted(
            found, key=lambda name: int(VERSION_PATTERN.match(name).group(1)) if VERSION_PATTERN.match(name) else 0
        )

    def next_version(self) -> str:
        """One above every version ever issued: folders here (registered or reserved), and
        versions moved out (history)."""
        folders = [p.name for p in self.root.glob("v*") if p.is_dir()]
        issued = folders + [h.get("version", "") for h in self.history()]
        numbers = [int(m.group(1)) for v in issued if (m := VERSION_PATTERN.match(v))]
        return f"v{max(numbers, default=0) + 1}"

    def reserve_version(self) -> str:
        """Claim the next version by creating its folder, so two trainings that finish together
        (the side-by-side runs of REPORT §3) never export into the same one."""
        self.root.mkdir(parents=True, exist_ok=True)
        while True:
            version = self.next_version()
            try:
                (self.root / version).mkdir()
            except FileExistsError:
                continue  # another process claimed it between the count and the mkdir
            return version

    def path(self, version: str) -> Path:
        folder = self.root / version
        if not (folder / "model_card.json").exists():
            raise RegistryError(f"model version {version!r} is not in the registry at {self.root}")
        return folder

    def weights(self, version: str) -> Path:
        """The version's PyTorch weights (for a warm start); the bundled model ships ONNX only."""
        path = self.path(version) / WEIGHTS_FILE
        if not path.exists():
            raise RegistryError(
                f"{version} has no PyTorch weights ({path}): a model bundled from git ships ONNX only. "
                "Train from scratch (leave out --warm-start), pass --warm-start PATH/TO/model.pt, or fetch the "
                "weights from the MLflow server that registered the version."
            )
        return path

    def card(self, version: str) -> dict:
        return json.loads((self.path(version) / "model_card.json").read_text())

    def write_card(self, version: str, card: dict) -> None:
        atomic_write(self.root / version / "model_card.json", json.dumps(card, indent=2))

    def champion(self) -> str | None:
        champion = self._read().get("champion")
        if champion is None and self.versions():
            return self.versions()[-1]
        return champion

    def champion_path(self) -> Path:
        champion = self.champion()
        if champion is None:
            raise RegistryError(f"no model in the registry at {self.root}; run `wmstudio train`")
        return self.path(champion)

    def resolve(self, version: str | None) -> Path:
        """The folder of ``version``, or of the champion when no version is named."""
        return self.path(version) if version else self.champion_path()

    def history(self) -> list[dict]:
        return self._read().get("history", [])

    def _record(self, data: dict, entry: dict) -> None:
        """Append a timestamped history entry to ``data`` and write the index."""
        entry = entry | {"time": datetime.now(UTC).isoformat(timespec="seconds")}
        data.setdefault("history", []).append(entry)
        self._write(data)
        for listener in self.listeners:
            listener(self, entry)

    def promote(self, version: str, reason: str = "", action: str = "promote") -> None:
        self.path(version)  # must exist
        data = self._read()
        previous = data.get("champion")
        data["champion"] = version
        self._record(data, {"version": version, "previous": previous, "action": action, "reason": reason})

    def reject(self, version: str, destination: Path, reason: str = "") -> Path:
        """Move a challenger that lost out of the registry, and record it so its number stays taken.

        The registry folder is what the image, the repository and the API carry: a rejected
        version does not belong there, but its weights stay at hand (``destination``) and its
        number is never issued again, so "v10" keeps meaning one model in notes and reports.
        """
        folder = self.path(version)
        if version == self.champion():
            raise RegistryError(f"{version} is the champion: promote another version before rejecting it")
        target = Path(destination) / version
        if target.exists():
            raise RegistryError(f"{target} already exists: move it away first")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(folder, target)
        entry = {"version": version, "previous": None, "action": "reject", "reason": reason}
        # relative: the registry travels (git, images)
        self._record(self._read(), entry | {"moved_to": os.path.relpath(target, self.root)})
        return target

    def restore(self, version: str, source: Path, reason: str = "") -> Path:
        """Bring a rejected version back from ``source`` (where ``reject`` moved it).

        A rejection is a judgement under the rules of its day; when a rule changes (the runtime,
        the gate, the data), the same weights deserve a new hearing without retraining. The
        version keeps its number, so reports that named it still mean this model.
        """
        origin = Path(source) / version
        if not (origin / "model_card.json").exists():
            raise RegistryError(f"no rejected version {version!r} at {origin}")
        target = self.root / version
        if target.exists():
            raise RegistryError(f"{target} already exists: the registry already holds a {version}")
        if not any(h.get("version") == version and h.get("action") == "reject" for h in self.history()):
            raise RegistryError(f"{version} was never rejected from this registry: register it instead")
        shutil.move(origin, target)
        self._record(self._read(), {"version": version, "previous": None, "action": "restore", "reason": reason})
        return target

    def champion_chain(self) -> list[str]:
        """The champions in force, oldest first, as the history built them: the last is current.

        A promotion pushes its version; a rollback pops the version it undid. Replaying the whole
        history (not looking at the last entry's ``previous``) is what makes a second rollback go
        further back instead of re-promoting the model the first one removed.
        """
        chain: list[str] = []
        for entry in self.history():
            version, action = entry.get("version"), entry.get("action")
            if not version:
                continue
            if action == "rollback":
                if chain:
                    chain.pop()  # the version it undid
                if version in chain:  # versions skipped on the way (rejected since) are undone too
                    del chain[len(chain) - chain[::-1].index(version) :]
                else:
                    chain.append(version)  # a hand-edited history: trust what the entry made champion
            elif action == "promote" and (not chain or chain[-1] != version):
                chain.append(version)
        return chain

    def rollback(self, reason: str = "rollback") -> str:
        """Undo the last promotion still in force: the champion before it is the champion again.

        Versions rejected (moved out) since are skipped; rolling back again goes one step
        further back, never forward to the version just rolled back.
        """
        chain = self.champion_chain()
        current = self.champion()
        if chain and chain[-1] != current:
            chain.append(current)  # the pointer was set outside promote(): undo that first
        registered = set(self.versions())
        earlier = [version for version in chain[:-1] if version in registered and version != current]
        if not earlier:
            raise RegistryError("no earlier champion to roll back to")
        previous = earlier[-1]
        self.path(previous)  # must exist
        data = self._read()
        data["champion"] = previous
        self._record(data, {"version": previous, "previous": current, "action": "rollback", "reason": reason})
        return previous

    def stamp(self) -> float:
        """Changes whenever the champion changes (used by the API's hot reload)."""
        return self.index_path.stat().st_mtime if self.index_path.exists() else 0.0


def copy_champion(source: Path, target: Path) -> str:
    """Copy ``source``'s champion (no weights), its index and ``history.json`` into ``target``.

    This is what git, the serving image and a fresh working registry carry: the served ONNX
    file, the card and the evaluation summaries. The version folder arrives complete before the
    index names it (staged, then renamed), so a reader never sees a half-copied champion.
    """
    origin = Registry(source)
    champion = origin.champion()
    if champion is None:
        raise RegistryError(f"no champion in {source} to copy")
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target, prefix=".seed-"))
    try:
        shutil.copytree(origin.path(champion), staging / champion, ignore=shutil.ignore_patterns(*NOT_BUNDLED))
        try:
            os.replace(staging / champion, target / champion)  # replaces an empty (reserved) folder too
        except OSError:
            if not (target / champion / "model_card.json").exists():  # another process seeding at once won
                raise
        if (Path(source) / HISTORY_FILE).exists() and Path(source).resolve() != target.resolve():
            shutil.copyfile(Path(source) / HISTORY_FILE, target / HISTORY_FILE)
        Registry(target)._write(origin._read() | {"champion": champion})
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return champion


def seed_registry(target: Path, bundled: Path) -> str | None:
    """Fill a missing or empty working registry from the bundled champion; returns the version, or
    None when there was nothing to do (a folder with anything in it is never touched, nor the
    bundled folder itself, and there may be nothing bundled)."""
    target, bundled = Path(target), Path(bundled)
    if not (bundled / REGISTRY_FILE).exists() or target.resolve() == bundled.resolve():
        return None
    if target.is_dir() and any(target.iterdir()):
        return None
    champion = copy_champion(bundled, target)
    log.info("seeded the model registry %s with the bundled champion %s", target, champion)
    return champion
