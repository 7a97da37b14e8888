"""``make run``: start the API, the Streamlit dashboard and the Gradio demo together.

The API starts first and the apps are pointed at it; Ctrl-C stops all three. Each is a normal
process with its own log prefix, so a crash of one is visible and ends the session.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx

from wmstudio.offline import apply_offline_env
from wmstudio.settings import PROJECT_ROOT, get_settings


def _wait_ready(url: str, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    return False


def label_studio_available() -> bool:
    """Label Studio is started too once its own venv exists (``make label-studio-venv``)."""
    from curation.ls_server import executable

    return executable() is not None


def commands() -> dict[str, list[str]]:
    settings = get_settings()
    python = sys.executable
    api = [python, "-m", "cli.main", "serve", "--host", settings.api_host, "--port", str(settings.api_port)]
    dashboard = [
        python,
        "-m",
        "streamlit",
        "run",
        str(PROJECT_ROOT / "app" / "dashboard.py"),
        "--server.port",
        str(settings.dashboard_port),
        "--server.address",
        settings.api_host,
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
    ]
    demo = [python, "-m", "app.demo"]
    launched: dict[str, list[str]] = {}
    if label_studio_available():
        launched["label-studio"] = [python, "-m", "curation.ls_server"]
    launched["api"] = api
    if (PROJECT_ROOT / "app" / "dashboard.py").exists():
        launched["dashboard"] = dashboard
    if (PROJECT_ROOT / "app" / "demo.py").exists():
        launched["demo"] = demo
    return launched


def _stop_on_term(signum: int, frame: object) -> None:
    """SIGTERM (``docker stop``, systemd, a CI runner) stops the services as Ctrl-C does.

    Python's default for SIGTERM ends the launcher at once, without its ``finally``: the API,
    dashboard, demo and Label Studio then ran on, holding their ports.
    """
    raise KeyboardInterrupt


def main() -> int:
    signal.signal(signal.SIGTERM, _stop_on_term)
    settings = get_settings()
    apply_offline_env(settings.state_dir)
    env = {**os.environ, "WMSTUDIO_API_URL": f"http://{settings.api_host}:{settings.api_port}"}
    if label_studio_available():
        from curation.ls_server import ensure_token

        env["WMSTUDIO_LABEL_STUDIO_TOKEN"] = ensure_token(settings)
    processes: dict[str, subprocess.Popen] = {}
    try:
        for name, command in commands().items():
            processes[name] = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env)
            if name == "api" and not _wait_ready(f"{env['WMSTUDIO_API_URL']}/readyz"):
                print("the API did not become ready; see its log above", file=sys.stderr)
                return 1
        lines = [
            "",
            "Watermark Studio is running:",
            f"  API        {env['WMSTUDIO_API_URL']}/docs",
            f"  dashboard  http://{settings.api_host}:{settings.dashboard_port}",
            f"  demo       http://{settings.api_host}:{settings.demo_port}",
        ]
        if "label-studio" in processes:
            lines.append(f"  labelling  {settings.label_studio_url} (its first start migrates for a few minutes)")
        print("\n".join([*lines, "Press Ctrl-C to stop.", ""]), flush=True)
        while all(p.poll() is None for p in processes.values()):
            time.sleep(1)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes.values():
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()


if __name__ == "__main__":
    raise SystemExit(main())
