"""`make run`'s launcher: stopping it stops every service it started."""

import os
import signal
import subprocess
import sys

import psutil
import pytest

from wmstudio.settings import PROJECT_ROOT

pytestmark = pytest.mark.unit

# The launcher with one stand-in service (no ports, no model): what is tested is the stopping.
DRIVER = """
import sys
import cli.launch as launch
launch.label_studio_available = lambda: False
launch.commands = lambda: {"worker": [sys.executable, "-c", "import time; time.sleep(600)"]}
raise SystemExit(launch.main())
"""


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_a_stopped_launcher_stops_the_services_it_started(tmp_path, stop):
    env = {**os.environ, "WMSTUDIO_STATE_DIR": str(tmp_path / "state"), "PYTHONPATH": str(PROJECT_ROOT)}
    launcher = subprocess.Popen(
        [sys.executable, "-c", DRIVER], cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        for line in launcher.stdout:  # the services are up once it says how to stop them
            if "Press Ctrl-C to stop." in line:
                break
        (worker,) = psutil.Process(launcher.pid).children()
        assert worker.is_running()
        launcher.send_signal(stop)
        assert launcher.wait(timeout=30) == 0
        worker.wait(timeout=15)  # raises psutil.TimeoutExpired if the service was left running
        assert not worker.is_running()
    finally:
        for process in psutil.Process(launcher.pid).children() if launcher.poll() is None else []:
            process.kill()
        launcher.kill()
