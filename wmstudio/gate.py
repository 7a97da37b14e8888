"""The champion/challenger promotion gate: when a new version may replace the champion.

It lives in the core because everything that promotes (the retraining loop, the Airflow DAG,
the comparison scripts) must apply the same rule, and none of them should have to import the
others to get it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wmstudio.registry import Registry


@dataclass(frozen=True)
class GateConfig:
    """Thresholds of the champion/challenger gate (``WMSTUDIO_GATE_*``)."""

    min_f1_delta: float = 0.0  # challenger validation F1 (all variants) − champion's must be ≥ this
    max_ap_drop: float = 0.01  # validation synthetic AP50 (worst brand) may drop at most this much
    max_fp_rate: float = 0.02  # validation other-agency alarm rate cap (or no worse than the champion)
    max_real_f1_drop: float = 0.05  # validation real Rumah123 F1 may drop at most this much

    @classmethod
    def from_settings(cls, settings: Any) -> GateConfig:
        return cls(
            settings.gate_min_f1_delta,
            settings.gate_max_ap_drop,
            settings.gate_max_fp_rate,
            settings.gate_max_real_f1_drop,
        )


@dataclass
class GateDecision:
    passed: bool
    checks: list[dict] = field(default_factory=list)

    def summary(self) -> str:
        failed = [c["name"] for c in self.checks if not c["passed"]]
        return "all checks passed" if self.passed else "failed: " + ", ".join(failed)

    def failures(self) -> list[str]:
        """Each failed check in words: what the challenger had, against what, and the rule."""
        failed = [c for c in self.checks if not c["passed"]]
        return [f"{c['name']} {c['challenger']} vs {c['champion']} (needs {c['rule']})" for c in failed]


class GateFailed(ValueError):
    """A hand promotion that the gate refuses; ``failures`` says which checks failed."""

    def __init__(self, version: str, champion: str, failures: list[str]) -> None:
        super().__init__(f"{version} fails the promotion gate against {champion}: {'; '.join(failures)}")
        self.failures = failures


def _number(metrics: dict | None, key: str) -> float | None:
    value = (metrics or {}).get(key)
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def _at_least(name: str, challenger: dict, champion: dict | None, margin: float) -> dict:
    value, reference = _number(challenger, name), _number(champion, name)
    return {
        "name": name,
        "challenger": value,
        "champion": reference,
        "rule": f">= champion {'+' if margin >= 0 else '-'} {abs(margin)}",
        "passed": value is not None and (reference is None or value >= reference + margin - 1e-9),
    }


def gate(challenger: dict, champion: dict | None, config: GateConfig) -> GateDecision:
    """Promote only if the challenger does not regress the champion on validation figures.

    Every figure is pooled over the robustness variants of the *validation* photos (the release
    writes them as ``val_*``); test figures are reported, never read here, so the test split
    stays an unbiased estimate of what ships.

    * ``val_f1``: challenger ≥ champion + ``min_f1_delta`` (the listing systems' question);
    * ``val_real_f1``: challenger ≥ champion − ``max_real_f1_drop`` (real Rumah123 photos are few,
      so a small drop is noise, a large one is not);
    * ``val_synthetic_ap50``: challenger ≥ champion − ``max_ap_drop`` (box quality, worst brand);
    * ``val_other_fp_rate``: ≤ ``max_fp_rate``, or no worse than the champion (flagging other
      agencies' marks is the costly error).

    A metric the challenger lacks fails its check; one only the champion lacks is not compared.
    Without a champion, any challenger with metrics passes.
    """
    checks = [
        _at_least("val_f1", challenger, champion, config.min_f1_delta),
        _at_least("val_real_f1", challenger, champion, -config.max_real_f1_drop),
        _at_least("val_synthetic_ap50", challenger, champion, -config.max_ap_drop),
    ]
    fp, fp_champion = _number(challenger, "val_other_fp_rate"), _number(champion, "val_other_fp_rate")
    checks.append(
        {
            "name": "val_other_fp_rate",
            "challenger": fp,
            "champion": fp_champion,
            "rule": f"<= {config.max_fp_rate} or <= champion",
            "passed": fp is not None
            and (fp <= config.max_fp_rate + 1e-9 or (fp_champion is not None and fp <= fp_champion + 1e-9)),
        }
    )
    return GateDecision(all(c["passed"] for c in checks), checks)


# The card field naming the validation data a release measured its figures on. Synthetic photos
# are rendered with the machine's fonts, so two machines' validation sets differ: v38 scored
# pooled F1 0.878 on one and 0.852 on another. Figures from different sets do not compare.
EVALUATION_DATA = "evaluation_data_version"


def same_evaluation_data(challenger_card: dict, champion_card: dict) -> bool:
    """Whether both cards' figures were measured on the same validation data (both must say)."""
    measured_on = challenger_card.get(EVALUATION_DATA)
    return measured_on is not None and measured_on == champion_card.get(EVALUATION_DATA)


def gated_promote(
    registry: Registry,
    version: str,
    reason: str,
    config: GateConfig,
    force: bool = False,
    champion_metrics: dict | None = None,
) -> str:
    """Promote ``version`` if it passes the gate against the champion; return the reason recorded.

    Every hand promotion (the CLI, the dashboard) goes through here, so none can skip the rule
    the retraining loop applies by accident. ``force`` promotes anyway and writes the failed
    checks into the recorded reason, so the history says the gate was overridden and why.

    ``champion_metrics`` are the champion's figures re-measured on the challenger's validation
    data (as the loop does). Without them the champion's card is used, and only if both cards
    were measured on the same data; otherwise that is a failed check of its own.
    """
    champion = registry.champion()
    if champion is not None and champion != version:
        challenger_card, champion_card = registry.card(version), registry.card(champion)
        failures = []
        if champion_metrics is None:
            champion_metrics = champion_card.get("metrics", {})
            if not same_evaluation_data(challenger_card, champion_card):
                ours, theirs = (c.get(EVALUATION_DATA, "unrecorded data") for c in (challenger_card, champion_card))
                failures.append(
                    f"validation data: {version} was measured on {ours}, {champion} on {theirs} (re-measure "
                    f"{champion} on the same data: `wmstudio models promote` does when the datasets are here)"
                )
        decision = gate(challenger_card.get("metrics", {}), champion_metrics, config)
        failures += decision.failures()
        if failures and not force:
            raise GateFailed(version, champion, failures)
        if failures:
            reason = f"{reason} (forced past the gate: {'; '.join(failures)})"
    registry.promote(version, reason)
    return reason
