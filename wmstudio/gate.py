"""The champion/challenger promotion gate: when a new version may replace the champion.

It lives in the core because everything that promotes (the retraining loop, the Airflow DAG,
the comparison scripts) must apply the same rule, and none of them should have to import the
others to get it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class GateConfig:
    """Thresholds of the champion/challenger gate (``WMSTUDIO_GATE_*``)."""

    min_f1_delta: float = 0.0  # challenger real-test F1 − champion's must be ≥ this
    max_ap_drop: float = 0.01  # synthetic-test AP50 (worst brand) may drop at most this much
    max_fp_rate: float = 0.10  # other-agency false-positive rate cap (or no worse than the champion)

    @classmethod
    def from_settings(cls, settings: Any) -> GateConfig:
        return cls(settings.gate_min_f1_delta, settings.gate_max_ap_drop, settings.gate_max_fp_rate)


@dataclass
class GateDecision:
    passed: bool
    checks: list[dict] = field(default_factory=list)

    def summary(self) -> str:
        failed = [c["name"] for c in self.checks if not c["passed"]]
        return "all checks passed" if self.passed else "failed: " + ", ".join(failed)


def _number(metrics: dict | None, key: str) -> float | None:
    value = (metrics or {}).get(key)
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def gate(challenger: dict, champion: dict | None, config: GateConfig) -> GateDecision:
    """Promote only if the challenger does not regress the champion on the agreed metrics.

    * ``real_test_f1``: challenger ≥ champion + ``min_f1_delta`` (the listing systems' question);
    * ``synthetic_test_ap50``: challenger ≥ champion − ``max_ap_drop`` (box quality, both brands);
    * ``real_other_fp_rate``: ≤ ``max_fp_rate``, or no worse than the champion (flagging other
      agencies' marks is the costly error).

    A metric the challenger lacks fails its check; one only the champion lacks is not compared.
    Without a champion, any challenger with metrics passes.
    """
    checks = []
    f1, f1_champion = _number(challenger, "real_test_f1"), _number(champion, "real_test_f1")
    checks.append(
        {
            "name": "real_test_f1",
            "challenger": f1,
            "champion": f1_champion,
            "rule": f">= champion + {config.min_f1_delta}",
            "passed": f1 is not None and (f1_champion is None or f1 >= f1_champion + config.min_f1_delta - 1e-9),
        }
    )
    ap, ap_champion = _number(challenger, "synthetic_test_ap50"), _number(champion, "synthetic_test_ap50")
    checks.append(
        {
            "name": "synthetic_test_ap50",
            "challenger": ap,
            "champion": ap_champion,
            "rule": f">= champion - {config.max_ap_drop}",
            "passed": ap is not None and (ap_champion is None or ap >= ap_champion - config.max_ap_drop - 1e-9),
        }
    )
    fp, fp_champion = _number(challenger, "real_other_fp_rate"), _number(champion, "real_other_fp_rate")
    checks.append(
        {
            "name": "real_other_fp_rate",
            "challenger": fp,
            "champion": fp_champion,
            "rule": f"<= {config.max_fp_rate} or <= champion",
            "passed": fp is None
            or fp <= config.max_fp_rate + 1e-9
            or (fp_champion is not None and fp <= fp_champion + 1e-9),
        }
    )
    return GateDecision(all(c["passed"] for c in checks), checks)
