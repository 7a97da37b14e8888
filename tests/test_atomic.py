"""A crash in the middle of a write leaves the old state: registry index, model cards, stored images.

The crash is real: a child process is killed (SIGKILL) after it wrote the new bytes and before
they replaced the old file, which is the moment an in-place write would leave a torn file.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import ROOT, encode, photo
from wmstudio.atomic import atomic_write
from wmstudio.data.ingest import store_image
from wmstudio.registry import Registry

pytestmark = pytest.mark.unit

KILL_ON_FSYNC = """
import os, signal, sys
import wmstudio.atomic as atomic

def crash(fd):  # the new bytes are in the temporary file; die before the rename
    os.kill(os.getpid(), signal.SIGKILL)

atomic.os.fsync = crash
"""


def _crash_while(code: str) -> subprocess.CompletedProcess:
    script = KILL_ON_FSYNC + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_a_crash_while_promoting_leaves_the_previous_registry(tmp_path):
    registry = Registry(tmp_path / "models")
    for version in ("v1", "v2"):
        registry.write_card(version, {"version": version})
    registry.promote("v1", "first")
    before = registry.index_path.read_text()
    done = _crash_while(f"""
        from wmstudio.registry import Registry
        Registry({str(registry.root)!r}).promote("v2", "crashes half-way")
    """)
    assert done.returncode == -9, done.stderr
    assert registry.index_path.read_text() == before
    assert registry.champion() == "v1" and json.loads(before)["champion"] == "v1"


def test_a_crash_while_storing_an_image_leaves_no_torn_file(tmp_path):
    data = encode(photo(320, 240), "JPEG", quality=90)
    done = _crash_while(f"""
        from pathlib import Path
        from wmstudio.data.ingest import store_image
        store_image({data!r}, Path({str(tmp_path)!r}), 40_000_000)
    """)
    assert done.returncode == -9, done.stderr
    assert not list((tmp_path / "images").rglob("*.jpg")), "a torn file would be trusted by every later ingest"
    digest, relative, *_ = store_image(data, tmp_path, 40_000_000)  # the retry stores it whole
    assert (tmp_path / relative).read_bytes() == data and digest in relative


def test_a_failed_write_keeps_the_old_file_and_cleans_up(tmp_path, monkeypatch):
    target = tmp_path / "card.json"
    atomic_write(target, '{"old": true}')

    def fail(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("wmstudio.atomic.os.fsync", fail)
    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, '{"new": true}')
    assert json.loads(target.read_text()) == {"old": True}
    assert [p.name for p in tmp_path.iterdir()] == ["card.json"], "no temporary file left behind"
    assert (target.stat().st_mode & 0o777) == 0o644  # readable by a non-root API container


def test_model_cards_are_written_whole(tmp_path, monkeypatch):
    registry = Registry(tmp_path / "models")
    registry.write_card("v1", {"version": "v1", "threshold": 0.5})
    monkeypatch.setattr("wmstudio.atomic.os.replace", lambda *a: (_ for _ in ()).throw(OSError("crash")))
    with pytest.raises(OSError):
        registry.write_card("v1", {"version": "v1", "threshold": 0.9})
    assert registry.card("v1")["threshold"] == 0.5
    assert Path(registry.root / "v1" / "model_card.json").exists()
