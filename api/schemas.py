"""Response models of the API; their examples appear in the OpenAPI docs."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

DETECTION_EXAMPLE = {"brand": "rumah123", "score": 0.91, "box": [71.0, 376.0, 469.0, 464.0]}


class DetectionOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"example": DETECTION_EXAMPLE})

    brand: str = Field(description="Brand of the mark: rumah123 or 99co.")
    score: float = Field(ge=0, le=1, description="Confidence.")
    box: list[float] = Field(min_length=4, max_length=4, description="x0, y0, x1, y1 in original pixels.")


class ImageSize(BaseModel):
    width: int
    height: int


class Timing(BaseModel):
    decode: float
    inference: float
    total: float


class DetectResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "watermarked": True,
                "detections": [DETECTION_EXAMPLE],
                "image": {"width": 540, "height": 840},
                "model_version": "v1",
                "timing_ms": {"decode": 4.1, "inference": 11.8, "total": 16.7},
            }
        }
    )

    watermarked: bool
    detections: list[DetectionOut]
    image: ImageSize
    model_version: str
    timing_ms: Timing


class ErrorDetail(BaseModel):
    code: str
    message: str


class BatchItem(BaseModel):
    """One file's result: either the detection fields or an ``error``."""

    file: str
    watermarked: bool | None = None
    detections: list[DetectionOut] | None = None
    image: ImageSize | None = None
    model_version: str | None = None
    timing_ms: Timing | None = None
    error: ErrorDetail | None = None


class BatchResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "results": [
                    {
                        "file": "a.jpg",
                        "watermarked": False,
                        "detections": [],
                        "image": {"width": 800, "height": 600},
                        "model_version": "v1",
                        "timing_ms": {"decode": 3.0, "inference": 11.0, "total": 14.5},
                    },
                    {
                        "file": "b.txt",
                        "error": {"code": "not_an_image", "message": "the file is not a recognised image"},
                    },
                ]
            }
        }
    )

    results: list[BatchItem]


class ModelInfo(BaseModel):
    model_config = ConfigDict(
        protected_namespaces=(),
        json_schema_extra={
            "example": {
                "version": "v1",
                "classes": ["rumah123", "99co"],
                "imgsz": 320,
                "input_sizes": [320, 416],
                "input_margin": 0.0,
                "second_view": {"input_margins": [0.04, 0.08], "lowest": 0.1, "below": 0.7},
                "tile_view": {"grid": 2, "overlap": 0.25, "lowest": 0.05, "below": 0.7},
                "panel_view": {"seam": 0.55, "min_share": 0.2, "below": 1.0, "lowest": 0.05, "size": 0, "gain": 1.0},
                "quantized": {"format": "int8 QDQ", "from": "v49"},
                "threshold": 0.45,
                "text_rescoring": {"floor": 0.15, "top": 3, "match": 0.75, "boost": 0.5, "damp": 0.3},
                "metrics": {"val_f1": 0.9, "test_f1": 0.9},
                "card": {},
            }
        },
    )

    version: str
    classes: list[str]
    imgsz: int
    input_sizes: list[int] = Field(description="Sizes the network runs at; candidates of all are pooled.")
    input_margin: float = Field(0.0, description="Grey surround of the photo inside the input, a share of its side.")
    second_view: dict | None = Field(
        default=None,
        description="When the network looks again in another surround (best score in [lowest, below)); null: never.",
    )
    tile_view: dict | None = Field(
        default=None,
        description="When the network looks at grid x grid overlapping tiles (best score in [lowest, below)); "
        "null: never.",
    )
    panel_view: dict | None = Field(
        default=None,
        description="When the network looks at each panel of a composed photo (a collage's cells, a framed photo "
        "without its frame): seams most rows agree on (seam), panels at least min_share of the side, best score "
        "in [lowest, below), panels seen at least gain times larger than in the plain view, at input size size "
        "(0: imgsz); null: never.",
    )
    quantized: dict | None = Field(
        default=None, description="How the network was quantized (int8 weights and activations); null: float."
    )
    threshold: float
    text_rescoring: dict | None = Field(
        default=None, description="How the best candidates' text is read and rescored; null: the network alone."
    )
    metrics: dict
    card: dict


class ReloadResponse(BaseModel):
    changed: bool
    version: str


class Health(BaseModel):
    status: str
    model_version: str | None = None
