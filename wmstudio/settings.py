"""One typed settings object for the whole project, read from ``WMSTUDIO_*`` environment variables.

Every component (CLI, API, dashboard, demo, curation) reads its configuration from here, so a
deployment changes behaviour through the environment alone (ConfigMap, ``.env``) and the
defaults are good enough for ``make run`` on a laptop: SQLite, local folders, bundled model.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Configuration of Watermark Studio. Each field is ``WMSTUDIO_<FIELD>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="WMSTUDIO_", env_file=".env", extra="ignore")

    state_dir: Path = Field(
        default=PROJECT_ROOT / ".wmstudio",
        description="Working folder for the database, datasets, runs and caches.",
    )
    data_dir: Path = Field(
        default=PROJECT_ROOT.parent / "shared" / "data",
        description="Folder holding the provided data (listings/, houses/).",
    )
    registry_dir: Path = Field(
        default_factory=lambda data: data["state_dir"] / "models",
        description="Working model registry: one sub-folder per version plus the champion pointer (default: "
        "state_dir/models, seeded from bundled_models_dir when empty).",
    )
    bundled_models_dir: Path = Field(
        default=PROJECT_ROOT / "models",
        description="The committed champion (ONNX, card, history.json) that seeds an empty registry_dir.",
    )
    database_url: str = Field(
        default="",
        description="SQLAlchemy URL of the dataset store; empty means SQLite in state_dir.",
    )

    # --- experiment tracking (MLflow) ----------------------------------------------------
    mlflow_tracking_uri: str = Field(
        default="",
        validation_alias=AliasChoices("WMSTUDIO_MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_URI", "mlflow_tracking_uri"),
        description="MLflow server for runs and the model registry (also read from MLFLOW_TRACKING_URI); empty: "
        "embedded SQLite state_dir/mlflow.db with artifacts in state_dir/mlartifacts.",
    )
    mlflow_enabled: bool = Field(default=True, description="Log trainings, releases and evaluations to MLflow.")
    mlflow_experiment: str = Field(default="watermark-studio", description="MLflow experiment of every run.")
    mlflow_model_name: str = Field(
        default="watermark-detector", description="Registered model in the MLflow model registry (alias champion)."
    )
    mlflow_ui_url: str = Field(
        default="",
        description="Base URL of the MLflow UI the dashboard links to (empty: the tracking URI when it is http(s), "
        "else http://127.0.0.1:5000 as `make mlflow-ui` serves it).",
    )

    # --- serving -------------------------------------------------------------------------
    api_host: str = Field(default="127.0.0.1", description="Address the API (and apps) bind to.")
    api_port: int = Field(default=8000, description="API port.")
    api_url: str = Field(default="http://127.0.0.1:8000", description="Base URL clients call.")
    api_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated API keys; empty disables auth, which only a loopback bind (or "
        "allow_insecure) permits.",
    )
    allow_insecure: bool = Field(
        default=False,
        description="Let the API run without keys, and the dashboard and demo without logins, on a non-loopback "
        "address (a trusted network only); without it they refuse to start.",
    )
    app_users: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated dashboard and demo logins, `name:scrypt:...` as printed by "
        "`python -m wmstudio.passwords NAME`; empty leaves them open on loopback only.",
    )
    max_upload_bytes: int = Field(default=20 * 1024 * 1024, description="Per-file size limit.")
    max_image_pixels: int = Field(
        default=40_000_000, description="Images with more pixels are refused (decompression bombs)."
    )
    max_batch_files: int = Field(default=16, ge=1, description="Most files in one batch request (multipart parts).")
    max_concurrent_inference: int = Field(
        default=2,
        ge=1,
        description="Images decoded and run at once per API process (more wait their turn): bounds peak memory, "
        "see the README's worst case.",
    )
    max_working_side: int = Field(
        default=2048,
        ge=256,
        description="Longest side the API works on (detection, overlays, which are returned at that size): larger "
        "photos are reduced by a whole factor right after decoding, which bounds memory per request.",
    )
    reload_poll_seconds: float = Field(
        default=2.0, description="How often the API checks the registry for a promoted version."
    )
    inference_threads: int = Field(default=2, description="ONNX Runtime intra-op threads.")
    drift_window: int = Field(default=1000, description="Served photos in the rolling window of the drift monitor.")
    client_api_key: str = Field(
        default="", description="Key the dashboard and demo send as X-API-Key (one of WMSTUDIO_API_KEYS, if set)."
    )

    # --- apps ----------------------------------------------------------------------------
    dashboard_port: int = Field(default=8501, description="Streamlit dashboard port.")
    demo_port: int = Field(default=7860, description="Gradio demo port.")
    demo_source: str = Field(
        default="auto",
        description="Dashboard demo dataset on first start: auto (provided listings, else synthetic), synthetic, "
        "off, or a folder to ingest.",
    )

    # --- label studio --------------------------------------------------------------------
    label_studio_url: str = Field(default="http://127.0.0.1:8080", description="Label Studio base URL.")
    label_studio_token: str = Field(default="", description="Label Studio API token (legacy or personal access token).")
    label_studio_project: str = Field(
        default="Watermark Studio queue", description="Title of the Label Studio project the queue uses (reused)."
    )
    label_studio_timeout: float = Field(
        default=15.0, description="Seconds before a Label Studio request counts as failed (slow = down)."
    )
    label_studio_document_root: Path | None = Field(
        default=None,
        description="LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT of the Label Studio server (default: datasets_dir); "
        "queued photos must lie under it so Label Studio can serve them as local files.",
    )
    label_studio_webhook_url: str = Field(
        default="", description="URL Label Studio calls on each saved annotation (empty: api_url + the route)."
    )
    webhook_secret: str = Field(
        default="",
        description="Shared secret Label Studio sends as X-Webhook-Secret (not an API key: Label Studio users can "
        "read webhook headers); required by the webhook whenever a Label Studio token is set.",
    )
    webhook_max_bytes: int = Field(default=64 * 1024, ge=1024, description="Largest webhook JSON body.")
    webhook_max_tasks: int = Field(default=100, ge=1, description="Most task ids one webhook call may name.")
    webhook_rate_limit: str = Field(
        default="120/minute", description="Webhook calls accepted per API process (limits syntax, e.g. 10/second)."
    )
    queue_batch_size: int = Field(
        default=20,
        description="Tasks `queue push` and the loop send per batch; `queue build` diversifies batches of this size.",
    )
    queue_tta: bool = Field(default=True, description="Score the queue with test-time augmentation (3 passes).")
    queue_pool_dataset: str = Field(default="pool", description="Store dataset holding the unlabelled photos.")
    gate_min_f1_delta: float = Field(
        default=0.0,
        description="Challenger validation F1 (pooled over robustness variants) minus champion's must be at least "
        "this to promote.",
    )
    gate_max_real_f1_drop: float = Field(
        default=0.05,
        description="Largest drop of validation real Rumah123 F1 (pooled over variants) a challenger may show.",
    )
    gate_max_ap_drop: float = Field(
        default=0.01, description="Largest drop of validation synthetic AP50 (worst brand) a challenger may show."
    )
    operating_max_other_fp: float = Field(
        default=0.02,
        description="Release: the operating threshold is the lowest (highest recall) whose false-alarm rate on "
        "other agencies' marks, pooled over the validation variants, is at most this.",
    )
    validation_draws: int = Field(
        default=3,
        ge=1,
        le=10,
        description="Release: synthetic validation is drawn this many times (the default set's split plus "
        "val-only sets with the next seeds), pooled, so the threshold rests on more rendered competitor marks.",
    )
    gate_max_fp_rate: float = Field(
        default=0.02,
        description="Highest validation false-alarm rate on other agencies' marks a challenger may have "
        "(or no worse than the champion).",
    )

    # --- dataset store and curation ------------------------------------------------------
    store_sync_on_ingest: bool = Field(
        default=True,
        description="Mirror a dataset into the store after each ingest into datasets_dir (failures are logged).",
    )
    store_auto_migrate: bool = Field(
        default=True, description="Upgrade the store schema to the newest migration when it is first opened."
    )
    duplicates_backend: Literal["imagehash", "fastdup"] = Field(
        default="imagehash",
        description="imagehash: license-clean perceptual hashes; fastdup: CC BY-NC-ND, runs in its own venv.",
    )
    near_duplicate_distance: int = Field(
        default=10, description="Most differing bits (of 64) in both dHash and pHash for a near duplicate."
    )
    fastdup_venv: Path | None = Field(
        default=None, description="Virtual environment holding fastdup (default: state_dir/fastdup-venv)."
    )
    fastdup_similarity: float = Field(
        default=0.95,
        description="Cosine similarity of fastdup embeddings at or above which images are near duplicates.",
    )
    outlier_z: float = Field(
        default=4.0, description="Robust z-score of the k-NN distance above which an image is an outlier (imagehash)."
    )
    outlier_fraction: float = Field(
        default=0.02, description="Share of images fastdup may report as outliers (its percentile cut)."
    )
    label_issue_threshold: float = Field(
        default=0.5,
        description="Image labels flagged by Cleanlab's find_label_issues are reported when their quality "
        "(out-of-sample probability of the given label) is below this.",
    )
    box_issue_threshold: float = Field(
        default=0.3, description="Images whose Cleanlab object-detection box quality score is at or below this."
    )
    box_confident_score: float = Field(
        default=0.25,
        description="Detector score from which a box counts as confident for missing/wrong-brand checks "
        "(Cleanlab's built-in 0.95 hides issues with a weak model; lower it for a timid model).",
    )
    curation_folds: int = Field(default=5, description="Cross-validation folds for out-of-sample probabilities.")

    @field_validator("api_keys", "app_users", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return [key.strip() for key in value.split(",") if key.strip()]
        return value

    @field_validator("webhook_rate_limit")
    @classmethod
    def _check_rate(cls, value: str) -> str:
        from limits import parse

        parse(value)  # raises ValueError on a malformed rate: caught at start, not at the first webhook
        return value

    @property
    def label_studio_configured(self) -> bool:
        """A token is set, so the webhook can pull tasks (and must then be protected by its secret)."""
        return bool(self.label_studio_token)

    @property
    def resolved_database_url(self) -> str:
        """The store URL, defaulting to an embedded SQLite file."""
        return self.database_url or f"sqlite:///{self.state_dir / 'store.db'}"

    @property
    def datasets_dir(self) -> Path:
        return self.state_dir / "datasets"

    @property
    def resolved_mlflow_tracking_uri(self) -> str:
        """The MLflow tracking URI: the configured server, else the embedded SQLite file."""
        return self.mlflow_tracking_uri or f"sqlite:///{(self.state_dir / 'mlflow.db').resolve()}"

    @property
    def mlflow_artifacts_dir(self) -> Path:
        """Artifact folder of the embedded store (a server keeps its own)."""
        return (self.state_dir / "mlartifacts").resolve()

    @property
    def resolved_mlflow_ui_url(self) -> str:
        """Where a person opens the MLflow UI (dashboard links)."""
        if self.mlflow_ui_url:
            return self.mlflow_ui_url.rstrip("/")
        if self.mlflow_tracking_uri.startswith(("http://", "https://")):
            return self.mlflow_tracking_uri.rstrip("/")
        return "http://127.0.0.1:5000"

    @property
    def runs_dir(self) -> Path:
        return self.state_dir / "runs"

    @property
    def resolved_fastdup_venv(self) -> Path:
        """Where the fastdup backend's own interpreter lives (kept out of the main venv)."""
        return self.fastdup_venv or self.state_dir / "fastdup-venv"

    @property
    def resolved_label_studio_document_root(self) -> Path:
        """The folder Label Studio serves local files from (the datasets folder unless set)."""
        return self.label_studio_document_root or self.datasets_dir

    @property
    def loop_dir(self) -> Path:
        """Active-learning runs: ``history.jsonl`` plus one folder per run."""
        return self.state_dir / "loop"

    @property
    def curation_dir(self) -> Path:
        """Galleries and reports written by ``wmstudio curate``."""
        return self.state_dir / "curation"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached; tests call ``get_settings.cache_clear()``)."""
    return Settings()
