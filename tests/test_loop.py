"""The champion/challenger gate with fake metrics, and a full loop turn with fake training (seconds)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from curation.labelstudio import LabelStudioUnavailable
from pipelines.loop import LoopSteps, TrainOutcome, run_once
from wmstudio.gate import GateConfig, gate
from wmstudio.loop_history import read_history
from wmstudio.registry import Registry

pytestmark = pytest.mark.unit

CHAMPION = {"val_f1": 0.80, "val_real_f1": 0.85, "val_synthetic_ap50": 0.90, "val_other_fp_rate": 0.05}
CONFIG = GateConfig(min_f1_delta=0.0, max_ap_drop=0.01, max_fp_rate=0.10)


def checks(decision) -> dict[str, bool]:
    return {c["name"]: c["passed"] for c in decision.checks}


def test_gate_promotes_a_challenger_that_does_not_regress() -> None:
    decision = gate({**CHAMPION, "val_f1": 0.82}, CHAMPION, CONFIG)
    assert decision.passed and decision.summary() == "all checks passed"
    assert gate(dict(CHAMPION), CHAMPION, CONFIG).passed  # equal is not a regression


@pytest.mark.parametrize(
    ("change", "failing"),
    [
        ({"val_f1": 0.79}, "val_f1"),
        ({"val_synthetic_ap50": 0.88}, "val_synthetic_ap50"),
        ({"val_other_fp_rate": 0.2}, "val_other_fp_rate"),
        ({"val_real_f1": 0.79}, "val_real_f1"),
    ],
)
def test_gate_rejects_each_kind_of_regression(change: dict, failing: str) -> None:
    decision = gate({**CHAMPION, **change}, CHAMPION, CONFIG)
    assert not decision.passed
    assert [name for name, ok in checks(decision).items() if not ok] == [failing]
    assert failing in decision.summary()


def test_gate_thresholds_are_configurable() -> None:
    better = {**CHAMPION, "val_f1": 0.82}
    assert not gate(better, CHAMPION, GateConfig(min_f1_delta=0.05)).passed  # demand a real gain
    small_drop = {**CHAMPION, "val_synthetic_ap50": 0.88}
    assert gate(small_drop, CHAMPION, GateConfig(max_ap_drop=0.05)).passed
    assert gate({**CHAMPION, "val_other_fp_rate": 0.2}, CHAMPION, GateConfig(max_fp_rate=0.25)).passed


def test_gate_reads_validation_figures_only() -> None:
    """Test figures are reported, never compared: a worse test F1 cannot block, a better one cannot promote."""
    worse_on_test = {**CHAMPION, "test_f1": 0.10, "test_real_f1": 0.0}
    assert gate(worse_on_test, {**CHAMPION, "test_f1": 0.99}, CONFIG).passed
    assert not gate({"test_f1": 1.0, "test_real_f1": 1.0}, CHAMPION, CONFIG).passed
    assert all(c["name"].startswith("val_") for c in gate(CHAMPION, CHAMPION, CONFIG).checks)
    small_real_drop = {**CHAMPION, "val_real_f1": 0.81}
    assert gate(small_real_drop, CHAMPION, CONFIG).passed  # within max_real_f1_drop (0.05): noise on few photos


def test_gate_edge_cases() -> None:
    assert gate(CHAMPION, None, CONFIG).passed  # no champion yet
    assert not gate({}, CHAMPION, CONFIG).passed  # a challenger without metrics never wins
    assert not gate({**CHAMPION, "val_f1": float("nan")}, CHAMPION, CONFIG).passed
    high_fp_champion = {**CHAMPION, "val_other_fp_rate": 0.3}
    assert gate({**CHAMPION, "val_other_fp_rate": 0.25}, high_fp_champion, CONFIG).passed  # over cap, yet better


# --- a loop turn with fake training ------------------------------------------------------------


class FakeSteps(LoopSteps):
    """Real registry and history; training replaced by copying the champion with chosen metrics."""

    def __init__(self, registry_root: Path, metrics: dict, labels: int = 3, label_studio_down: bool = False) -> None:
        self.registry = Registry(registry_root)
        self.metrics, self.labels, self.down = metrics, labels, label_studio_down
        self.calls: list[str] = []

    def pull(self) -> dict:
        self.calls.append("pull")
        if self.down:
            raise LabelStudioUnavailable("cannot reach Label Studio (test)")
        return {"labelled": self.labels}

    def human_manifests(self):
        return [], self.labels, f"human-{self.labels}" if self.labels else "none"

    def train_and_release(self, run_dir: Path, champion: str | None) -> TrainOutcome:
        self.calls.append("train")
        version = self.registry.next_version()
        shutil.copytree(self.registry.path(champion), self.registry.root / version)
        card = self.registry.card(champion) | {"version": version, "metrics": self.metrics, "parent": champion}
        self.registry.write_card(version, card)
        return TrainOutcome(version, self.metrics, "real+synth+" + f"human-{self.labels}", self.labels)

    def champion_metrics(self, champion: str, run_dir: Path) -> dict:
        self.calls.append("evaluate-champion")
        return CHAMPION

    def score_pool(self) -> dict:
        self.calls.append("score")
        return {"model_version": self.registry.champion(), "scored": 0, "queued": 0}

    def push(self) -> dict:
        self.calls.append("push")
        if self.down:
            raise LabelStudioUnavailable("cannot reach Label Studio (test)")
        return {"created": 0}

    def tag_rejected(self, version: str, reason: str) -> None:
        self.calls.append(f"tag-rejected {version}")


@pytest.fixture
def registry_root(tmp_path: Path, bundled_registry: Path) -> Path:
    target = tmp_path / "models"
    shutil.copytree(bundled_registry, target)
    return target


def test_loop_promotes_a_better_challenger_and_records_the_run(registry_root: Path, tmp_path: Path) -> None:
    steps = FakeSteps(registry_root, {**CHAMPION, "val_f1": 0.9})
    before = steps.registry.champion()
    record = run_once(steps, CONFIG, tmp_path / "loop")
    assert steps.calls == ["pull", "train", "evaluate-champion", "score", "push"]
    assert record["decision"] == "promoted" and record["champion_after"] == record["challenger"] != before
    assert steps.registry.champion() == record["challenger"]  # registry.json changed: the API hot-reloads
    history = read_history(tmp_path / "loop")
    assert len(history) == 1 and history[0]["run"] == record["run"]
    assert history[0]["metrics"]["challenger"]["val_f1"] == 0.9
    assert history[0]["data_version"].endswith("human-3") and history[0]["gate"]["passed"]
    assert json.loads((tmp_path / "loop" / record["run"] / "run.json").read_text())["decision"] == "promoted"


def test_loop_keeps_the_champion_when_the_gate_fails(registry_root: Path, tmp_path: Path) -> None:
    steps = FakeSteps(registry_root, {**CHAMPION, "val_other_fp_rate": 0.5})
    before = steps.registry.champion()
    record = run_once(steps, CONFIG, tmp_path / "loop")
    assert record["decision"] == "rejected" and "val_other_fp_rate" in record["reason"]
    assert steps.registry.champion() == before and record["challenger"] in steps.registry.versions()
    assert f"tag-rejected {record['challenger']}" in steps.calls  # MLflow marks the kept challenger rejected


def test_loop_skips_training_without_new_labels_and_survives_label_studio_down(
    registry_root: Path, tmp_path: Path
) -> None:
    steps = FakeSteps(registry_root, CHAMPION, labels=0, label_studio_down=True)
    record = run_once(steps, CONFIG, tmp_path / "loop")
    assert record["decision"] == "skipped" and "train" not in steps.calls
    assert any("pull" in e for e in record["errors"]) and any("push" in e for e in record["errors"])
    steps = FakeSteps(registry_root, {**CHAMPION, "val_f1": 0.9}, labels=2)
    assert run_once(steps, CONFIG, tmp_path / "loop")["decision"] == "promoted"
    again = run_once(steps, CONFIG, tmp_path / "loop")  # same labels as last time: nothing to learn
    assert again["decision"] == "skipped"
    assert [r["decision"] for r in read_history(tmp_path / "loop")] == ["skipped", "promoted", "skipped"]
