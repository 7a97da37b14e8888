"""Start a local Label Studio server from its own virtual environment (tests and ``make run``).

Label Studio pins Django and friends that clash with this project, so it lives in
``.wmstudio/label-studio-venv`` (``scripts/label_studio_venv.sh``) and runs as a subprocess. The
server is started offline (no Sentry, no analytics, no version check), bound to 127.0.0.1, with
local-files serving rooted at the folder that holds the photos, and a first user whose legacy
API token is known in advance, so the SDK can talk to it immediately.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from pathlib import Path

import httpx

from wmstudio.settings import PROJECT_ROOT, Settings

DEFAULT_VENV = PROJECT_ROOT / ".wmstudio" / "label-studio-venv"
OFFLINE_ENV = {
    "SENTRY_DSN": "",
    "FRONTEND_SENTRY_DSN": "",
    "COLLECT_ANALYTICS": "false",
    "LATEST_VERSION_CHECK": "false",
    "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
}


def executable(venv: Path = DEFAULT_VENV) -> Path | None:
    """The ``label-studio`` script of the venv, or None when the venv was not created."""
    path = Path(venv) / "bin" / "label-studio"
    return path if path.exists() else None


class LabelStudioServer:
    """A Label Studio process on 127.0.0.1 with a data folder of its own."""

    def __init__(
        self,
        data_dir: Path,
        document_root: Path,
        port: int,
        venv: Path = DEFAULT_VENV,
        username: str = "admin@wmstudio.local",
        password: str | None = None,
        token: str | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.document_root = Path(document_root).resolve()
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.venv = Path(venv)
        self.username = username
        self.password = password or secrets.token_hex(8)
        self.token = token or secrets.token_hex(20)
        self.log = self.data_dir / "label-studio.log"
        self.process: subprocess.Popen | None = None

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            **OFFLINE_ENV,
            "LABEL_STUDIO_BASE_DATA_DIR": str(self.data_dir),
            "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "true",
            "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(self.document_root),
            "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
            "DJANGO_DB": "sqlite",
            # The webhook goes to the API on this same host; LS blocks loopback targets by default.
            "SSRF_PROTECTION_ENABLED": "false",
        }

    def start(self, timeout: float = 300.0) -> LabelStudioServer:
        script = executable(self.venv)
        if script is None:
            raise FileNotFoundError(f"no Label Studio in {self.venv}; run scripts/label_studio_venv.sh")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        command = [
            str(script),
            "start",
            "--internal-host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--no-browser",
            "--data-dir",
            str(self.data_dir),
            "--username",
            self.username,
            "--password",
            self.password,
            "--user-token",
            self.token,
        ]
        self.process = subprocess.Popen(
            command, env=self.env(), stdout=self.log.open("w"), stderr=subprocess.STDOUT, cwd=self.data_dir
        )
        self.wait(timeout)
        return self

    def wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"Label Studio exited ({self.process.returncode}):\n{self.log.read_text()[-4000:]}")
            try:
                response = httpx.get(
                    f"{self.url}/api/current-user/whoami", headers={"Authorization": f"Token {self.token}"}, timeout=5
                )
                if response.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(1.0)
        self.stop()
        raise TimeoutError(f"Label Studio did not start in {timeout:.0f}s:\n{self.log.read_text()[-4000:]}")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        self.process = None


def ensure_token(settings: Settings) -> str:
    """The API token of the local server: the setting, else one kept in state_dir/label-studio/token.

    ``make run`` calls this before starting anything, so the API and the dashboard get the same
    token that the server is started with.
    """
    data_dir = settings.state_dir / "label-studio"
    data_dir.mkdir(parents=True, exist_ok=True)
    token_file = data_dir / "token"
    token = settings.label_studio_token or (token_file.read_text().strip() if token_file.exists() else "")
    if not token:
        token = secrets.token_hex(20)
        token_file.write_text(token)
        token_file.chmod(0o600)
    return token


def main() -> None:  # pragma: no cover - `make label-studio`
    """Run Label Studio for ``make run`` / ``make label-studio``: persistent data in state_dir/label-studio.

    The token is WMSTUDIO_LABEL_STUDIO_TOKEN when set, otherwise one generated on the first start and
    kept in ``state_dir/label-studio/token`` (export it as WMSTUDIO_LABEL_STUDIO_TOKEN for the CLI/API).
    """
    from urllib.parse import urlparse

    from wmstudio.settings import get_settings

    settings = get_settings()
    data_dir = settings.state_dir / "label-studio"
    token = ensure_token(settings)
    port = urlparse(settings.label_studio_url).port or 8080
    root = settings.resolved_label_studio_document_root
    root.mkdir(parents=True, exist_ok=True)
    server = LabelStudioServer(data_dir, root, port, token=token, password=os.environ.get("LABEL_STUDIO_PASSWORD"))
    server.start(timeout=1800)
    print(f"Label Studio at {server.url} (user {server.username}); WMSTUDIO_LABEL_STUDIO_TOKEN={token}", flush=True)
    try:
        server.process.wait()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":  # pragma: no cover
    main()
