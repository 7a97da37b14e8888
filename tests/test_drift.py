"""Drift monitor: a planted shift raises drift and PSI; a stable stream keeps them near zero."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from api.drift import DriftMonitor, DriftReference, population_stability_index, reference_from_card, score_histogram

pytestmark = pytest.mark.unit

WINDOW = 500


def stream(rate: float, n: int, seed: int, high: tuple[float, float] = (0.7, 0.98)) -> list[tuple[bool, float]]:
    """Images watermarked with probability ``rate``: high scores when marked, low ones otherwise."""
    rng = np.random.default_rng(seed)
    marked = rng.random(n) < rate
    scores = np.where(marked, rng.uniform(*high, n), rng.uniform(0.0, 0.2, n))
    return list(zip(marked.tolist(), scores.tolist(), strict=True))


def feed(monitor: DriftMonitor, samples: list[tuple[bool, float]]) -> None:
    for watermarked, score in samples:
        monitor.observe(watermarked, score)


def test_first_window_becomes_reference_and_stable_stream_stays_near_zero():
    monitor = DriftMonitor(window=WINDOW)
    feed(monitor, stream(0.3, WINDOW - 1, seed=1))
    assert monitor.reference is None
    assert math.isnan(monitor.snapshot()["drift"])  # no reference yet: no alert can fire
    feed(monitor, stream(0.3, 1 + 3 * WINDOW, seed=2))
    assert monitor.reference is not None and monitor.reference.source == "first_window"
    assert monitor.reference.watermark_rate == pytest.approx(0.3, abs=0.07)
    values = monitor.snapshot()
    assert values["samples"] == WINDOW
    assert values["drift"] < 0.06
    assert values["psi"] < 0.1


def test_planted_rate_shift_raises_drift_and_psi():
    monitor = DriftMonitor(window=WINDOW)
    feed(monitor, stream(0.3, WINDOW, seed=3))
    reference = monitor.reference
    feed(monitor, stream(0.7, WINDOW, seed=4))  # the whole window is now the shifted traffic
    values = monitor.snapshot()
    assert monitor.reference == reference  # the reference is frozen, not rolling
    assert values["rolling_rate"] == pytest.approx(0.7, abs=0.06)
    assert values["drift"] == pytest.approx(0.4, abs=0.08)
    assert values["psi"] > 0.25


def test_score_shift_with_same_rate_shows_in_psi_only():
    """Watermarks still found, but with weaker scores (say, a restyled mark): PSI sees it."""
    monitor = DriftMonitor(window=WINDOW)
    feed(monitor, stream(0.4, WINDOW, seed=5, high=(0.8, 0.99)))
    feed(monitor, stream(0.4, WINDOW, seed=6, high=(0.3, 0.5)))
    values = monitor.snapshot()
    assert values["drift"] < 0.08
    assert values["psi"] > 0.25


def test_reference_from_model_card_is_used_immediately():
    histogram = [60, 5, 0, 0, 0, 0, 0, 5, 10, 20]  # counts are normalised
    card = {"version": "v7", "threshold": 0.5, "metrics": {"watermark_rate": 0.35, "score_histogram": histogram}}
    reference = reference_from_card(card)
    assert reference is not None and reference.source == "model_card"
    assert sum(reference.score_histogram) == pytest.approx(1.0)
    assert reference_from_card({"metrics": {"watermark_rate": 0.35}}) is None  # half a reference is none
    assert reference_from_card({"metrics": {"watermark_rate": 0.3, "score_histogram": [1, 2]}}) is None

    monitor = DriftMonitor(window=100, min_samples=50)
    model = FakeModel("v7", 0.5, card)
    for i in range(60):
        monitor.observe_record({"detections": [{"score": 0.9}] if i % 2 else []}, model)
    values = monitor.snapshot()
    assert values["reference_rate"] == 0.35
    assert values["rolling_rate"] == 0.5
    assert values["drift"] == pytest.approx(0.15)


@dataclass
class FakeModel:
    version: str
    threshold: float
    card: dict = field(default_factory=dict)


def test_observe_record_uses_model_threshold_and_resets_on_new_version():
    monitor = DriftMonitor(window=10, min_samples=1)
    v1 = FakeModel("v1", 0.5)
    monitor.observe_record({"detections": [{"score": 0.3}]}, v1)  # below threshold: not watermarked
    monitor.observe_record({"detections": [{"score": 0.6}, {"score": 0.95}]}, v1)
    assert monitor.snapshot()["rolling_rate"] == 0.5
    assert monitor.snapshot()["samples"] == 2
    monitor.observe_record({"detections": []}, FakeModel("v2", 0.5))
    assert monitor.model_version == "v2"
    assert monitor.snapshot()["samples"] == 1  # the old model's samples are gone


def test_gauges_on_a_prometheus_registry():
    registry = CollectorRegistry()
    reference = DriftReference(0.2, score_histogram([0.05] * 8 + [0.9] * 2), "model_card")
    monitor = DriftMonitor(window=20, reference=reference, min_samples=10).register(registry)
    feed(monitor, [(True, 0.9)] * 20)
    assert registry.get_sample_value("wmstudio_watermark_rate_rolling") == 1.0
    assert registry.get_sample_value("wmstudio_watermark_rate_reference") == 0.2
    assert registry.get_sample_value("wmstudio_watermark_rate_drift") == pytest.approx(0.8)
    assert registry.get_sample_value("wmstudio_score_psi") > 1.0
    assert registry.get_sample_value("wmstudio_drift_window_samples") == 20
    text = generate_latest(registry).decode()
    assert "# TYPE wmstudio_watermark_rate_drift gauge" in text
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        DriftMonitor().register(registry)  # a second monitor on one registry is a wiring mistake


def test_psi_basics():
    assert population_stability_index([0.5, 0.5], [0.5, 0.5]) == 0.0
    assert population_stability_index([0.5, 0.5], [0.9, 0.1]) > 0.25
    assert math.isfinite(population_stability_index([1.0, 0.0], [0.0, 1.0]))  # empty bins are floored
    assert score_histogram([0.0, 1.0, 0.55], bins=10) == (1 / 3, 0, 0, 0, 0, 1 / 3, 0, 0, 0, 1 / 3)
