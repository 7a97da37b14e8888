"""Concurrent ``curate`` and ``queue pull`` on one SQLite store: nothing corrupted, no decision lost.

Two real processes hammer the same store file: one re-runs the duplicates curation (reads every
flag of the dataset, then rewrites them), the other records reviewers' decisions on those flags
and takes Label Studio answers in (the pull's per-task path, without a Label Studio server).
Without write-locked transactions one of them fails with "database is locked" as soon as the
other commits between its read and its write, or a run rewrites a decision made meanwhile.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.conftest import ROOT, encode
from training.synth.procedural import room_scene
from wmstudio.data.ingest import ingest
from wmstudio.store.models import Flag, Image, Label, QueueItem
from wmstudio.store.session import dispose_engines, transaction

pytestmark = pytest.mark.integration

ROUNDS = 12

PRELUDE = """
import json, sys
from functools import partial
from pathlib import Path
from curation.dataset import CurationDataset
from wmstudio.data.manifest import Manifest
from wmstudio.settings import Settings
url, folder, state = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
dataset = CurationDataset("shared", folder, Manifest.load(folder))
settings = Settings(state_dir=state, registry_dir=state / "no-models")
"""

CURATE = """
from curation.run import run_duplicates
for _ in range({rounds}):
    run_duplicates(dataset, settings, "imagehash", url, None)
"""

REVIEW = """
from curation.decisions import decide
from curation.labelstudio import LabelStudioSync
from wmstudio.store.session import transaction
ids, task = json.loads(sys.argv[4]), json.loads(sys.argv[5])
sync = LabelStudioSync("http://127.0.0.1:9", "token", "queue", folder.parent)
final = {{}}
for round in range({rounds}):
    for position, flag_id in enumerate(ids):
        decision = ("dismiss", "accept", "reopen")[(round + position) % 3]
        with transaction(url, immediate=True) as session:
            final[flag_id] = decide(session, flag_id, decision, "alice").status
    brand = ("rumah123", "99co")[round % 2]
    value = {{"x": 10, "y": 10, "width": 20, "height": 10, "rectanglelabels": [brand]}}
    result = [{{"type": "rectanglelabels", "value": value}}]
    when = f"2026-01-01T00:00:{{round:02d}}Z"
    by = {{"email": "a@b.org"}}
    task["annotations"] = [{{"id": round + 1, "result": result, "completed_by": by, "updated_at": when}}]
    assert sync.take_task(partial(transaction, url), task, {{}}) in ("labelled", "updated")
print(json.dumps({{"final": final, "brand": brand}}))
"""


def _spawn(code: str, *args: str) -> subprocess.Popen:
    script = PRELUDE + textwrap.dedent(code).format(rounds=ROUNDS)
    return subprocess.Popen(
        [sys.executable, "-c", script, *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


@pytest.fixture
def shared(tmp_path: Path) -> dict:
    """A dataset with three near-copy flags in a fresh store, curated once."""
    source = tmp_path / "source" / "no_watermark"
    source.mkdir(parents=True)
    for seed in range(8):
        scene = room_scene(480, 360, 2000 + seed)
        (source / f"p{seed}.jpg").write_bytes(encode(scene, "JPEG", quality=92))
        if seed < 3:  # near copies: three flags to decide on
            (source / f"p{seed}-small.jpg").write_bytes(encode(scene.resize((320, 240)), "JPEG", quality=80))
    folder = tmp_path / "data" / "shared"
    ingest(source.parent, folder, name="shared")
    url, state = f"sqlite:///{tmp_path / 'store.db'}", tmp_path / "state"
    first = _spawn(CURATE.replace("{rounds}", "1"), url, str(folder), str(state))
    assert first.wait(120) == 0, first.stderr.read()
    with transaction(url) as session:
        ids = list(session.scalars(select(Flag.id).order_by(Flag.id)))
        image = session.scalars(select(Image).order_by(Image.id)).first()
        session.add(QueueItem(image_id=image.id, status="sent", label_studio_task_id=77, score=0.5))
        image_id, stored = image.id, image.path
    assert len(ids) == 3
    task = {"id": 77, "data": {"image": f"/data/local-files/?d=shared/{stored}", "wm_image_id": image_id}}
    yield {"url": url, "folder": folder, "state": state, "ids": ids, "task": task, "image_id": image_id}
    dispose_engines()


def test_concurrent_curate_and_pull_lose_no_decision(shared: dict, tmp_path: Path) -> None:
    url, folder, state, ids, task, image_id = (shared[k] for k in ("url", "folder", "state", "ids", "task", "image_id"))

    curate = _spawn(CURATE, url, str(folder), str(state))
    review = _spawn(REVIEW, url, str(folder), str(state), json.dumps(ids), json.dumps(task))
    out, err = review.communicate(timeout=300)
    assert review.returncode == 0, err
    assert curate.wait(300) == 0, curate.stderr.read()

    reviewed = json.loads(out)
    with transaction(url) as session:
        statuses = {str(flag.id): flag.status for flag in session.scalars(select(Flag).where(Flag.id.in_(ids)))}
        labels = session.scalars(select(Label).where(Label.image_id == image_id, Label.source == "human")).all()
        assert statuses == reviewed["final"], "a decision was lost"
        assert {label.brand for label in labels} == {reviewed["brand"]}
        assert session.get(QueueItem, 1).status == "labelled"
    dispose_engines()
    with sqlite3.connect(tmp_path / "store.db") as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)


DECIDE = """
from curation.decisions import decide
from wmstudio.store.session import transaction
with transaction(url, immediate=True) as session:
    print(decide(session, int(sys.argv[4]), "dismiss", "bob").status)
"""


def test_a_decision_made_during_a_run_waits_and_is_not_overwritten(shared: dict) -> None:
    """The run has read the flag (open) and is about to close it; the reviewer dismisses it meanwhile."""
    from curation.decisions import record_findings
    from curation.findings import DUPLICATE_KINDS

    url, flag_id = shared["url"], shared["ids"][0]
    with transaction(url, immediate=True) as session:
        assert session.get(Flag, flag_id).status == "open"
        reviewer = _spawn(DECIDE, url, str(shared["folder"]), str(shared["state"]), str(flag_id))
        time.sleep(3)  # the reviewer's process is up and trying to write
        assert reviewer.poll() is None, "the decision went through while the run held what it read"
        assert record_findings(session, "shared", [], DUPLICATE_KINDS).closed == 3  # the run finds nothing now
    out, err = reviewer.communicate(timeout=60)
    assert reviewer.returncode == 0 and out.strip() == "dismissed", err
    with transaction(url) as session:
        assert session.get(Flag, flag_id).status == "dismissed", "the later decision stands"
