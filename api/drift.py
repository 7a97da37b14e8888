"""Drift of the served predictions: is the model still seeing the world it was evaluated on?

A detector fails quietly: a portal changes its watermark, a client starts sending thumbnails,
and the share of photos flagged as watermarked moves while every request still returns 200.
The monitor keeps a rolling window of the last N served images (watermarked flag and highest
detection score) and compares it with a reference:

* the model card's ``metrics.watermark_rate`` and ``metrics.score_histogram`` when the
  evaluation wrote them (only meaningful when the evaluation set mirrors production traffic),
* otherwise the first full window the model served (drift then means "changed since deploy").

It is a Prometheus collector, so values are computed at scrape time from the window, never
per request: ``wmstudio_watermark_rate_rolling``, ``wmstudio_watermark_rate_reference``,
``wmstudio_watermark_rate_drift`` (absolute difference), ``wmstudio_score_psi`` (population
stability index of the score histogram) and ``wmstudio_drift_window_samples``. Until enough
samples exist the comparisons are NaN, which no alert rule fires on.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric

DEFAULT_BINS = 10
PSI_FLOOR = 1e-4  # empty bins get this share so the logarithm stays finite


class ServedModel(Protocol):
    """What the monitor needs from a detector (``wmstudio.runtime.Detector`` fits)."""

    version: str
    threshold: float
    card: dict


@dataclass(frozen=True)
class DriftReference:
    """Expected watermark rate and score distribution (bin shares over [0, 1], summing to 1)."""

    watermark_rate: float
    score_histogram: tuple[float, ...]
    source: str  # "model_card" or "first_window"


def score_histogram(scores: Iterable[float], bins: int = DEFAULT_BINS) -> tuple[float, ...]:
    """Shares of scores in ``bins`` equal bins over [0, 1] (1.0 falls in the last bin)."""
    counts = [0] * bins
    total = 0
    for score in scores:
        counts[min(max(int(score * bins), 0), bins - 1)] += 1
        total += 1
    return tuple(count / total for count in counts) if total else tuple(0.0 for _ in counts)


def population_stability_index(expected: Sequence[float], actual: Sequence[float]) -> float:
    """PSI = sum((a - e) * ln(a / e)); below 0.1 is stable, above 0.25 is a major shift."""
    if len(expected) != len(actual):
        raise ValueError(f"histograms differ in length: {len(expected)} != {len(actual)}")
    psi = 0.0
    for e, a in zip(expected, actual, strict=True):
        e, a = max(e, PSI_FLOOR), max(a, PSI_FLOOR)
        psi += (a - e) * math.log(a / e)
    return psi


def reference_from_card(card: dict, bins: int = DEFAULT_BINS) -> DriftReference | None:
    """The reference the evaluation wrote into the card's metrics, if it wrote a usable one."""
    metrics = card.get("metrics") or {}
    rate, histogram = metrics.get("watermark_rate"), metrics.get("score_histogram")
    if not isinstance(rate, int | float) or not isinstance(histogram, list) or len(histogram) != bins:
        return None
    total = float(sum(histogram))
    if total <= 0 or any(not isinstance(v, int | float) or v < 0 for v in histogram):
        return None
    return DriftReference(float(rate), tuple(float(v) / total for v in histogram), "model_card")


class DriftMonitor:
    """Rolling watermark rate and score distribution of served images, against a reference."""

    def __init__(
        self,
        window: int = 1000,
        reference: DriftReference | None = None,
        bins: int = DEFAULT_BINS,
        min_samples: int | None = None,
    ) -> None:
        if window < 1:
            raise ValueError("window must be at least 1")
        self.window = window
        self.bins = bins
        self.min_samples = min(window, min_samples if min_samples is not None else max(window // 2, 1))
        self.reference = reference
        self.model_version: str | None = None
        self._samples: deque[tuple[bool, float]] = deque(maxlen=window)
        self._lock = threading.Lock()

    # --- feeding ---------------------------------------------------------------------------

    def observe(self, watermarked: bool, max_score: float) -> None:
        """One served image: was it reported watermarked, and its highest detection score (0 if none)."""
        with self._lock:
            self._samples.append((bool(watermarked), float(max_score)))
            if self.reference is None and len(self._samples) == self.window:
                self.reference = DriftReference(*self._summary(), source="first_window")

    def observe_record(self, record: dict, model: ServedModel) -> None:
        """Observe an API prediction record, judged at the model's own threshold.

        The request's ``min_score`` must not move the statistic, so the flag is recomputed from
        the scores at the operating threshold. A different model version resets the window and
        takes that model's reference: its scores are not comparable with the old model's.
        """
        if model.version != self.model_version:
            if self.model_version is None and self.reference is not None:
                self.model_version = model.version  # first model, reference given explicitly: keep it
            else:
                self.reset(model.version, model.card)
        scores = [float(d["score"]) for d in record.get("detections", [])]
        self.observe(any(s >= model.threshold for s in scores), max(scores, default=0.0))

    def reset(self, model_version: str | None = None, card: dict | None = None) -> None:
        """Start over for a new model: empty window, reference from its card (or its first window)."""
        with self._lock:
            self.model_version = model_version
            self.reference = reference_from_card(card or {}, self.bins)
            self._samples.clear()

    # --- reading ---------------------------------------------------------------------------

    def _summary(self) -> tuple[float, tuple[float, ...]]:
        rate = sum(flag for flag, _ in self._samples) / len(self._samples)
        return rate, score_histogram((score for _, score in self._samples), self.bins)

    def snapshot(self) -> dict[str, float]:
        """Current values (NaN where not enough data or no reference yet)."""
        nan = math.nan
        with self._lock:
            samples = len(self._samples)
            rate, histogram = self._summary() if samples else (nan, ())
            reference = self.reference
        enough = samples >= self.min_samples and reference is not None
        return {
            "samples": float(samples),
            "rolling_rate": rate,
            "reference_rate": reference.watermark_rate if reference else nan,
            "drift": abs(rate - reference.watermark_rate) if enough and reference else nan,
            "psi": population_stability_index(reference.score_histogram, histogram) if enough and reference else nan,
        }

    # --- prometheus ------------------------------------------------------------------------

    def register(self, registry: CollectorRegistry) -> DriftMonitor:
        """Expose the gauges on ``registry`` (returns self, so creation and registration are one line)."""
        registry.register(self)
        return self

    def describe(self) -> Iterator[Metric]:
        return self._families(dict.fromkeys(("samples", "rolling_rate", "reference_rate", "drift", "psi"), 0.0))

    def collect(self) -> Iterator[Metric]:
        return self._families(self.snapshot())

    def _families(self, values: dict[str, float]) -> Iterator[Metric]:
        described = (
            ("wmstudio_drift_window_samples", "Served images in the drift window", "samples"),
            ("wmstudio_watermark_rate_rolling", "Share of recent served images reported watermarked", "rolling_rate"),
            (
                "wmstudio_watermark_rate_reference",
                "Expected watermarked share (card or first window)",
                "reference_rate",
            ),
            ("wmstudio_watermark_rate_drift", "Absolute rolling minus reference watermark rate", "drift"),
            ("wmstudio_score_psi", "Population stability index of the max-score histogram", "psi"),
        )
        for name, documentation, key in described:
            yield GaugeMetricFamily(name, documentation, value=values[key])
