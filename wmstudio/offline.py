"""Stop every third-party phone-home before the libraries that make them are imported.

Ultralytics downloads fonts and checks for updates, Gradio and Streamlit send analytics,
albumentations checks PyPI, fastdup, Sentry and MLflow report usage.  The machines this project
runs on have no internet, so these calls would either hang or fail; setting the variables here,
in code, means no person has to remember them.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

OFFLINE_ENV: dict[str, str] = {
    "YOLO_OFFLINE": "1",
    "NO_ALBUMENTATIONS_UPDATE": "1",
    "SENTRY_OPT_OUT": "1",
    "FASTDUP_PRODUCTION": "1",
    "GRADIO_ANALYTICS_ENABLED": "False",
    "HF_HUB_OFFLINE": "1",
    "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
    "SENTRY_DSN": "",
    "FRONTEND_SENTRY_DSN": "",
    "COLLECT_ANALYTICS": "false",
    "LATEST_VERSION_CHECK": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
}

_FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
)


def _bundled_dejavu() -> Path | None:
    """DejaVuSans ships with matplotlib, so a font exists even without system fonts."""
    for candidate in _FONT_CANDIDATES:
        if Path(candidate).is_file():
            return Path(candidate)
    try:
        import matplotlib

        path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
        return path if path.is_file() else None
    except ImportError:  # pragma: no cover - matplotlib is a core dependency
        return None


def prepare_yolo_config_dir(config_dir: Path) -> Path:
    """Create the Ultralytics settings folder with the fonts it would otherwise download."""
    config_dir.mkdir(parents=True, exist_ok=True)
    font = _bundled_dejavu()
    if font is not None:
        for name in ("Arial.ttf", "Arial.Unicode.ttf"):
            target = config_dir / name
            if not target.exists():
                shutil.copyfile(font, target)
    return config_dir


def apply_offline_env(state_dir: Path | None = None) -> None:
    """Set the offline variables (without overriding what the caller set explicitly)."""
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
    base = state_dir or Path(os.environ.get("WMSTUDIO_STATE_DIR", Path.cwd() / ".wmstudio"))
    yolo_dir = Path(os.environ.setdefault("YOLO_CONFIG_DIR", str(base / "yolo")))
    prepare_yolo_config_dir(yolo_dir)
    # fastdup writes its own files under HOME; keep them inside the project state folder.
    os.environ.setdefault("FASTDUP_HOME", str(base / "fastdup"))
