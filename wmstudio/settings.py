"""One typed settings object for the whole project, read from ``WMSTUDIO_*`` environment variables.

Every component (CLI, API, dashboard, demo, curation) reads its configuration from here, so a
deployment changes behaviour through the environment alone (ConfigMap, ``.env``) and the
defaults are good enough for ``make run`` on a laptop: SQLite, local folders, bundled model.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
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
        default=PROJECT_ROOT / "models",
        description="Model registry: one sub-folder per version plus the champion pointer.",
    )
    database_url: str = Field(
        default="",
        description="SQLAlchemy URL of the dataset store; empty means SQLite in state_dir.",
    )

    # --- serving -------------------------------------------------------------------------
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_url: str = Field(default="http://127.0.0.1:8000", description="Base URL clients call.")
    api_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Comma-separated API keys; empty disables auth."
    )
    max_upload_bytes: int = Field(default=20 * 1024 * 1024, description="Per-file size limit.")
    max_image_pixels: int = Field(
        default=40_000_000, description="Images with more pixels are refused (decompression bombs)."
    )
    max_batch_files: int = Field(default=16, description="Most files in one batch request.")
    reload_poll_seconds: float = Field(
        default=2.0, description="How often the API checks the registry for a promoted version."
    )
    inference_threads: int = Field(default=2, description="ONNX Runtime intra-op threads.")

    # --- apps ----------------------------------------------------------------------------
    dashboard_port: int = 8501
    demo_port: int = 7860

    # --- label studio --------------------------------------------------------------------
    label_studio_url: str = "http://127.0.0.1:8080"
    label_studio_token: str = ""

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return [key.strip() for key in value.split(",") if key.strip()]
        return value

    @property
    def resolved_database_url(self) -> str:
        """The store URL, defaulting to an embedded SQLite file."""
        return self.database_url or f"sqlite:///{self.state_dir / 'store.db'}"

    @property
    def datasets_dir(self) -> Path:
        return self.state_dir / "datasets"

    @property
    def runs_dir(self) -> Path:
        return self.state_dir / "runs"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached; tests call ``get_settings.cache_clear()``)."""
    return Settings()
