"""The detection API: the one place that serves the model.

Routes: ``POST /v1/detect``, ``POST /v1/detect/batch``, ``POST /v1/overlay``, ``GET /v1/model``,
``POST /v1/model/reload``, ``GET /healthz``, ``GET /readyz``, ``GET /metrics``.
"""

from __future__ import annotations

import io
import logging
import threading
import time
from contextlib import asynccontextmanager
from typing import Annotated, Literal

from fastapi import Depends, FastAPI, File, Query, Request, UploadFile
from fastapi.responses import JSONResponse, Response

from api import webhooks
from api.drift import DriftMonitor
from api.errors import ERROR_RESPONSE_SCHEMA, IMAGE_ERROR_STATUS, APIError, install_error_handlers
from api.guard import APIGuard
from api.memory import return_large_blocks_to_os
from api.metrics import MetricsMiddleware, ServiceMetrics
from api.model_holder import ModelHolder
from api.schemas import BatchResponse, DetectResponse, Health, ModelInfo, ReloadResponse
from api.security import api_key_header, require_api_key
from wmstudio.exposure import require_protection
from wmstudio.imaging import DecodedImage, ImageError, decode_image
from wmstudio.offline import apply_offline_env
from wmstudio.predict import prediction_record
from wmstudio.registry import Registry
from wmstudio.runtime import Detector
from wmstudio.runtime.render import draw_boxes, heatmap
from wmstudio.settings import Settings, get_settings

log = logging.getLogger(__name__)

IMAGE_ERRORS = {status: ERROR_RESPONSE_SCHEMA for status in (400, 401, 413, 415, 422, 503)}
FORM_OVERHEAD = 64 * 1024  # multipart boundaries and part headers around the files
SMALL_BODY = 64 * 1024  # declared-size cap of routes that read no body (GETs, reload)
MinScore = Annotated[
    float | None,
    Query(ge=0.0, le=1.0, description="Report detections at or above this score (default: the model's threshold)."),
]


def _read_upload(upload: UploadFile, settings: Settings) -> bytes:
    data = upload.file.read(settings.max_upload_bytes + 1)
    if len(data) > settings.max_upload_bytes:
        raise ImageError("file_too_large", f"the file is over the {settings.max_upload_bytes}-byte limit")
    return data


def _decode(upload: UploadFile, settings: Settings, draft_size: int | None) -> DecodedImage:
    return decode_image(
        _read_upload(upload, settings), settings.max_image_pixels, draft_size, max_side=settings.max_working_side
    )


def _image_error(exc: ImageError, metrics: ServiceMetrics) -> APIError:
    metrics.image_errors.labels(exc.code).inc()
    return APIError(IMAGE_ERROR_STATUS.get(exc.code, 422), exc.code, exc.message)


def _detector(request: Request) -> Detector:
    detector = request.app.state.models.detector
    if detector is None:
        raise APIError(503, "model_unavailable", "no model is loaded yet; see /readyz")
    return detector


def _detect_one(upload: UploadFile, request: Request, min_score: float | None) -> dict:
    settings: Settings = request.app.state.settings
    metrics: ServiceMetrics = request.app.state.metrics
    detector = _detector(request)  # one reference for the whole request: hot reload cannot split it
    with request.app.state.inference_slots:  # decoding and inference are the memory: a few at a time
        start = time.perf_counter()
        try:
            decoded = _decode(upload, settings, draft_size=detector.decode_size)
        except ImageError as exc:
            raise _image_error(exc, metrics) from exc
        decoded_at = time.perf_counter()
        record = prediction_record(detector, decoded, min_score)
        done = time.perf_counter()
    metrics.inference_seconds.observe(done - decoded_at)
    metrics.observe_result(record["detections"])
    request.app.state.drift.observe_record(record, detector)
    return {
        **record,
        "image": {"width": decoded.width, "height": decoded.height},
        "timing_ms": {
            "decode": round((decoded_at - start) * 1000, 2),
            "inference": round((done - decoded_at) * 1000, 2),
            "total": round((done - start) * 1000, 2),
        },
    }


def _poll_registry(app: FastAPI, stop: threading.Event) -> None:
    while not stop.wait(app.state.settings.reload_poll_seconds):
        try:
            if app.state.models.reload_if_promoted():
                app.state.metrics.set_model(app.state.models.detector.version)
        except Exception:  # the poller must survive a half-written registry
            log.exception("registry poll failed")


def create_app(settings: Settings | None = None) -> FastAPI:
    """The service for ``settings``; raises ``InsecureDeployment`` when it would run exposed without keys."""
    settings = settings or get_settings()
    require_protection("API", settings.api_host, bool(settings.api_keys), settings.allow_insecure, "WMSTUDIO_API_KEYS")
    apply_offline_env(settings.state_dir)
    return_large_blocks_to_os()
    models = ModelHolder(Registry.from_settings(settings), settings.inference_threads)  # seeded on a fresh clone
    metrics = ServiceMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if models.load():
            metrics.set_model(models.detector.version)
        stop = threading.Event()
        poller = threading.Thread(target=_poll_registry, args=(app, stop), daemon=True, name="registry-poll")
        poller.start()
        yield
        stop.set()

    app = FastAPI(
        title="Watermark Studio API",
        version="1.0.0",
        summary="Find Rumah123 and 99.co watermarks in listing photos and say where they are.",
        description=(
            "Send a photo, get whether it carries a Rumah123 or 99.co watermark, which brand, and "
            "where (boxes in original pixels, after EXIF orientation). Errors are JSON "
            '`{"error": {"code", "message"}}`. When API keys are configured, send `X-API-Key`.'
        ),
        lifespan=lifespan,
    )
    app.state.settings = settings
    # A bounded semaphore, not uvicorn's limit_concurrency: excess requests wait their turn
    # (no 503), while at most this many images are decoded and run at once (README, worst case).
    app.state.inference_slots = threading.BoundedSemaphore(settings.max_concurrent_inference)
    app.state.models = models
    app.state.metrics = metrics
    app.state.drift = DriftMonitor(window=settings.drift_window).register(metrics.registry)
    install_error_handlers(app)
    limits = body_limits(settings)
    # auth, throttling and declared sizes before any body byte is read
    app.add_middleware(APIGuard, settings=settings, body_limits=limits, default_limit=SMALL_BODY)
    app.add_middleware(MetricsMiddleware)

    # The security scheme is documented only when keys are configured: the OpenAPI document
    # describes this deployment, so clients (and schemathesis) see auth exactly when it applies.
    auth = [Depends(require_api_key)] + ([Depends(api_key_header)] if settings.api_keys else [])
    one_file = {"max_body_size": limits["/v1/detect"], "form_limits": _form_limits(1)}
    batch_limits = {
        "max_body_size": limits["/v1/detect/batch"],
        "form_limits": _form_limits(settings.max_batch_files),
    }

    @app.post(
        "/v1/detect",
        response_model=DetectResponse,
        responses=IMAGE_ERRORS,
        dependencies=auth,
        tags=["detect"],
        **one_file,
    )
    def detect(
        request: Request,
        file: Annotated[UploadFile, File(description="A photo: JPEG, PNG, WebP, GIF (first frame), BMP or TIFF.")],
        min_score: MinScore = None,
    ) -> dict:
        """Detect watermarks in one photo."""
        return _detect_one(file, request, min_score)

    @app.post(
        "/v1/detect/batch",
        response_model=BatchResponse,
        responses=IMAGE_ERRORS,
        dependencies=auth,
        tags=["detect"],
        **batch_limits,
    )
    def detect_batch(
        request: Request,
        files: Annotated[list[UploadFile], File(description="Up to WMSTUDIO_MAX_BATCH_FILES photos (default 16).")],
        min_score: MinScore = None,
    ) -> dict:
        """Detect watermarks in several photos; a bad file gets an error entry, not a failed batch."""
        if len(files) > settings.max_batch_files:
            raise APIError(413, "too_many_files", f"at most {settings.max_batch_files} files per batch")
        results = []
        for upload in files:
            name = upload.filename or ""
            try:
                results.append({"file": name, **_detect_one(upload, request, min_score)})
            except APIError as exc:
                if exc.code == "model_unavailable":
                    raise
                results.append({"file": name, "error": {"code": exc.code, "message": exc.message}})
        return {"results": results}

    @app.post(
        "/v1/overlay",
        responses={200: {"content": {"image/png": {}}, "description": "PNG overlay"}, **IMAGE_ERRORS},
        response_class=Response,
        dependencies=auth,
        tags=["detect"],
        **one_file,
    )
    def overlay(
        request: Request,
        file: Annotated[UploadFile, File(description="A photo.")],
        mode: Annotated[Literal["boxes", "heatmap"], Query(description="Boxes with labels, or a heatmap.")] = "boxes",
        min_score: MinScore = None,
    ) -> Response:
        """The photo with the detections drawn (boxes, brand, score) or a heatmap of the model's evidence.

        The overlay is at most WMSTUDIO_MAX_WORKING_SIDE pixels on its long side (larger photos are
        reduced first); the `X-Scale` header maps its pixels to the original's.
        """
        detector = _detector(request)
        with request.app.state.inference_slots:
            try:
                decoded = _decode(file, settings, draft_size=settings.max_working_side)
            except ImageError as exc:
                raise _image_error(exc, metrics) from exc
            prediction = detector.predict(decoded.image)
            threshold = detector.threshold if min_score is None else min_score
            if mode == "heatmap":
                picture = heatmap(decoded.image, list(prediction.candidates), grid_side=detector.decode_size)
            else:
                picture = draw_boxes(decoded.image, prediction.above(threshold))
            buffer = io.BytesIO()
            picture.save(buffer, "PNG", optimize=False, compress_level=1)
        return Response(buffer.getvalue(), media_type="image/png", headers={"X-Scale": f"{decoded.scale[0]:.6g}"})

    @app.get("/v1/model", response_model=ModelInfo, responses=IMAGE_ERRORS, dependencies=auth, tags=["model"])
    def model_info(request: Request) -> dict:
        """The served model: version, classes, operating threshold and metrics from its card."""
        detector = _detector(request)
        return {**detector.describe(), "card": detector.card}

    @app.post(
        "/v1/model/reload",
        response_model=ReloadResponse,
        responses={**IMAGE_ERRORS, 409: ERROR_RESPONSE_SCHEMA},
        dependencies=auth,
        tags=["model"],
    )
    def model_reload(request: Request) -> dict:
        """Switch to the registry's champion now (the service also polls for promotions).

        A champion that cannot be loaded is a 409: the model served before keeps serving.
        """
        changed = models.load()
        detector = _detector(request)
        if models.last_error:
            raise APIError(409, "model_load_failed", f"{models.last_error}; still serving {detector.version}")
        metrics.set_model(detector.version)
        return {"changed": changed, "version": detector.version}

    # Probes are async: they run on the event loop, not in the thread pool that inference fills,
    # so a busy pod still answers its liveness probe and is not restarted for being busy.
    @app.get("/healthz", response_model=Health, tags=["ops"])
    async def healthz() -> dict:
        """The process is alive."""
        return {"status": "ok"}

    @app.get("/readyz", response_model=Health, responses={503: {"model": Health}}, tags=["ops"])
    async def readyz() -> JSONResponse:
        """Ready when a model is loaded."""
        detector = models.detector
        if detector is None:
            return JSONResponse({"status": "no_model", "model_version": None}, status_code=503)
        return JSONResponse({"status": "ready", "model_version": detector.version})

    @app.get(
        "/metrics",
        response_class=Response,
        tags=["ops"],
        responses={200: {"content": {"text/plain": {}}, "description": "Prometheus metrics"}},
    )
    async def prometheus_metrics() -> Response:
        """Prometheus metrics: requests, latency, detections per brand, scores, images processed."""
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    secret_doc = [Depends(webhooks.webhook_secret_header)] if settings.webhook_secret else []
    app.include_router(webhooks.router, dependencies=secret_doc, max_body_size=limits[webhooks.WEBHOOK_PATH])
    return app


def body_limits(settings: Settings) -> dict[str, int]:
    """Largest request body per route; every other route gets ``SMALL_BODY``."""
    one_file = settings.max_upload_bytes + FORM_OVERHEAD
    return {
        "/v1/detect": one_file,
        "/v1/overlay": one_file,
        "/v1/detect/batch": settings.max_upload_bytes * settings.max_batch_files + FORM_OVERHEAD,
        webhooks.WEBHOOK_PATH: settings.webhook_max_bytes,
    }


def _form_limits(files: int) -> dict[str, int]:
    """Multipart limits of an upload route: its file count, and no room for other fields."""
    return {"max_files": files, "max_fields": 8, "max_part_size": 64 * 1024}
