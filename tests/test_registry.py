"""The registry: a rejected version leaves the folder but keeps its number, and can come back."""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import run_cli
from wmstudio.registry import Registry, RegistryError

pytestmark = pytest.mark.unit


def _registry(root: Path, versions: int) -> Registry:
    registry = Registry(root)
    for number in range(1, versions + 1):
        registry.write_card(f"v{number}", {"version": f"v{number}", "threshold": 0.5})
    return registry


def test_a_rejected_version_moves_out_is_recorded_and_its_number_is_not_reissued(tmp_path):
    registry = _registry(tmp_path / "models", 3)
    registry.promote("v2", "better")
    target = registry.reject("v3", tmp_path / "rejected", "failed the gate")
    assert target == tmp_path / "rejected" / "v3" and (target / "model_card.json").exists()
    assert registry.versions() == ["v1", "v2"]
    assert registry.history()[-1] | {"time": None} == {
        "version": "v3",
        "previous": None,
        "action": "reject",
        "reason": "failed the gate",
        "moved_to": os.path.relpath(target, registry.root),
        "time": None,
    }
    assert registry.next_version() == "v4"
    assert registry.champion() == "v2"
    assert registry.index_path.read_text().endswith("}\n"), "the committed index ends in a newline"


def test_the_champion_cannot_be_rejected_and_nothing_moves(tmp_path):
    registry = _registry(tmp_path / "models", 2)
    registry.promote("v2")
    with pytest.raises(RegistryError, match="champion"):
        registry.reject("v2", tmp_path / "rejected")
    with pytest.raises(RegistryError, match="not in the registry"):
        registry.reject("v9", tmp_path / "rejected")
    assert registry.versions() == ["v1", "v2"] and not (tmp_path / "rejected").exists()


def test_rollback_skips_rejections(tmp_path):
    registry = _registry(tmp_path / "models", 3)
    registry.promote("v1")
    registry.promote("v2")
    registry.reject("v3", tmp_path / "rejected")
    assert registry.rollback() == "v1"


def test_a_double_rollback_goes_further_back_never_forward(tmp_path):
    """v1 -> v2 -> v3, then two rollbacks: v2, then v1. The old code re-promoted v3 the second time."""
    registry = _registry(tmp_path / "models", 3)
    for version in ("v1", "v2", "v3"):
        registry.promote(version)
    assert registry.rollback("v3 misbehaves") == "v2" and registry.champion() == "v2"
    assert registry.rollback("v2 too") == "v1" and registry.champion() == "v1"
    with pytest.raises(RegistryError, match="no earlier champion"):
        registry.rollback()
    assert registry.champion() == "v1"
    assert [h["action"] for h in registry.history()][-2:] == ["rollback", "rollback"]
    assert registry.history()[-1]["previous"] == "v2"  # what was undone
    # a promotion after the rollbacks starts a new step that one rollback undoes
    registry.promote("v3", "fixed")
    assert registry.rollback() == "v1"


def test_rollback_skips_a_champion_rejected_since(tmp_path):
    registry = _registry(tmp_path / "models", 4)
    for version in ("v1", "v2", "v3"):
        registry.promote(version)
    registry.promote("v1", "back by hand")  # promoting an old champion is a step of its own
    registry.reject("v3", tmp_path / "rejected")
    assert registry.champion_chain() == ["v1", "v2", "v3", "v1"]
    assert registry.rollback() == "v2"  # v3, the one before, is gone: one further back
    assert registry.champion_chain() == ["v1", "v2"]
    assert registry.rollback() == "v1"


def test_the_bundled_history_replays_to_its_champion(bundled_registry):
    registry = Registry(bundled_registry)
    assert registry.champion_chain()[-1] == registry.champion()


def test_cli_reject_names_a_user_mistake_without_a_traceback(tmp_path):
    registry = _registry(tmp_path / "models", 2)
    registry.promote("v1")
    env = {"WMSTUDIO_REGISTRY_DIR": str(registry.root), "WMSTUDIO_STATE_DIR": str(tmp_path / "state")}
    refused = run_cli("models", "reject", "v1", env=env)
    assert refused.returncode == 2 and "champion" in refused.stderr and "Traceback" not in refused.stderr
    moved = run_cli("models", "reject", "v2", "--reason", "lost on validation", env=env)
    assert moved.returncode == 0, moved.stderr
    assert (tmp_path / "state" / "rejected" / "v2" / "model_card.json").exists()
    assert json.loads((registry.root / "registry.json").read_text())["history"][-1]["reason"] == "lost on validation"


def test_a_rejected_version_can_be_restored_with_its_number_but_not_as_champion(tmp_path):
    registry = _registry(tmp_path / "models", 3)
    registry.promote("v2")
    registry.reject("v3", tmp_path / "rejected", "failed the gate")
    (tmp_path / "elsewhere" / "v9").mkdir(parents=True)
    (tmp_path / "elsewhere" / "v9" / "model_card.json").write_text("{}")
    with pytest.raises(RegistryError, match="never rejected"):
        registry.restore("v9", tmp_path / "elsewhere")
    with pytest.raises(RegistryError, match="no rejected version"):
        registry.restore("v7", tmp_path / "rejected")
    target = registry.restore("v3", tmp_path / "rejected", "the check rule changed")
    assert target == registry.root / "v3" and registry.versions() == ["v1", "v2", "v3"]
    assert not (tmp_path / "rejected" / "v3").exists()
    assert registry.champion() == "v2"
    assert registry.history()[-1]["action"] == "restore" and registry.next_version() == "v4"
    with pytest.raises(RegistryError, match="no rejected version"):
        registry.restore("v3", tmp_path / "rejected")  # already back: nothing to restore


def test_cli_restore_round_trips_a_reject_and_names_mistakes(tmp_path):
    registry = _registry(tmp_path / "models", 2)
    registry.promote("v1")
    env = {"WMSTUDIO_REGISTRY_DIR": str(registry.root), "WMSTUDIO_STATE_DIR": str(tmp_path / "state")}
    assert run_cli("models", "reject", "v2", env=env).returncode == 0
    missing = run_cli("models", "restore", "v5", env=env)
    assert missing.returncode == 2 and "no rejected version" in missing.stderr and "Traceback" not in missing.stderr
    back = run_cli("models", "restore", "v2", "--reason", "new rule", env=env)
    assert back.returncode == 0, back.stderr
    assert registry.versions() == ["v1", "v2"] and registry.history()[-1]["reason"] == "new rule"


def test_reserved_versions_are_distinct_when_claimed_at_once(tmp_path):
    """Two trainings finishing together must not export into the same folder."""
    registry = _registry(tmp_path / "models", 2)
    with ThreadPoolExecutor(max_workers=8) as pool:
        claimed = list(pool.map(lambda _: Registry(registry.root).reserve_version(), range(8)))
    assert sorted(claimed, key=lambda v: int(v[1:])) == [f"v{n}" for n in range(3, 11)]
    assert registry.versions() == ["v1", "v2"], "a reserved folder has no card yet: not a registered version"
    assert registry.next_version() == "v11"
