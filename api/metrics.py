"""Prometheus metrics of the service, on a registry of its own (one per app instance)."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import Response

LATENCY_BUCKETS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0)
SCORE_BUCKETS = tuple(round(0.1 * i, 1) for i in range(1, 11))


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "wmstudio_requests_total", "HTTP requests", ["route", "method", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "wmstudio_request_latency_seconds",
            "Request latency",
            ["route", "method", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.images = Counter("wmstudio_images_processed_total", "Images run through the model", registry=self.registry)
        self.watermarked = Counter(
            "wmstudio_watermarked_images_total", "Images reported as watermarked", ["brand"], registry=self.registry
        )
        self.detections = Counter("wmstudio_detections_total", "Reported detections", ["brand"], registry=self.registry)
        self.scores = Histogram(
            "wmstudio_detection_score", "Scores of reported detections", buckets=SCORE_BUCKETS, registry=self.registry
        )
        self.image_errors = Counter("wmstudio_image_errors_total", "Rejected images", ["code"], registry=self.registry)
        self.model_info = Gauge(
            "wmstudio_model_info", "Served model version (value 1)", ["version"], registry=self.registry
        )
        self.inference_seconds = Histogram(
            "wmstudio_inference_seconds", "Model time per image", buckets=LATENCY_BUCKETS, registry=self.registry
        )

    def observe_result(self, detections: list[dict]) -> None:
        self.images.inc()
        brands = {d["brand"] for d in detections}
        for brand in brands:
            self.watermarked.labels(brand).inc()
        for detection in detections:
            self.detections.labels(detection["brand"]).inc()
            self.scores.observe(detection["score"])

    def set_model(self, version: str) -> None:
        self.model_info.clear()
        self.model_info.labels(version).set(1)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware(BaseHTTPMiddleware):
    """Counts and times every request by route template (not raw path: bounded label values)."""

    async def dispatch(self, request: Request, call_next) -> Response:  # type: ignore[override]
        start = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            route = request.scope.get("route")
            path = getattr(route, "path", "unmatched")
            metrics: ServiceMetrics = request.app.state.metrics
            labels = (path, request.method, str(status))
            metrics.requests.labels(*labels).inc()
            metrics.latency.labels(*labels).observe(time.perf_counter() - start)
