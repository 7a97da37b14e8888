"""Label Studio sync against a REAL Label Studio server (its own venv) and a real uvicorn API.

The server runs on 127.0.0.1 with a temporary data folder. Label Studio's first start runs ~200
Django migrations (minutes on a busy CPU), so the first session snapshots the freshly migrated
database (one admin user, no projects) next to the Label Studio venv and later sessions start
from a copy of it; the data folder is still a new temporary one every time.
"""

from __future__ import annotations

import shutil
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from curation import ls_server
from curation.labelstudio import (
    BOX_CONTROL,
    CHOICE_CONTROL,
    ID_FIELD,
    NO_WATERMARK,
    LabelStudioSync,
    LabelStudioUnavailable,
    percent_to_pixels,
)
from curation.queue import add_pool_folder
from tests.components import missing_component
from tests.conftest import ROOT, Server, encode, free_port, photo
from wmstudio.settings import get_settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

USER = "admin@wmstudio.local"
PASSWORD = "pw123456"
TOKEN = "abc123abc123abc123abc123abc123abc123abcd"
TEMPLATE = ls_server.DEFAULT_VENV / "test-template.sqlite3"
HOOK_SECRET = "ls-hook-secret"
HOOK_HEADERS = {"X-Webhook-Secret": HOOK_SECRET}  # what `wmstudio queue webhook` registers
SIZES = [(640, 480), (800, 600), (500, 500), (1000, 400)]


@pytest.fixture(scope="session")
def ls_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder Label Studio serves local files from: the test's datasets folder."""
    return tmp_path_factory.mktemp("lsroot")


@pytest.fixture(scope="session")
def label_studio(tmp_path_factory: pytest.TempPathFactory, ls_root: Path) -> Iterator[ls_server.LabelStudioServer]:
    if ls_server.executable() is None:
        missing_component("Label Studio", f"no venv at {ls_server.DEFAULT_VENV}: run scripts/label_studio_venv.sh")
    data_dir = tmp_path_factory.mktemp("label-studio-data")
    if TEMPLATE.exists():
        shutil.copy(TEMPLATE, data_dir / "label_studio.sqlite3")
    server = ls_server.LabelStudioServer(data_dir, ls_root, free_port(), username=USER, password=PASSWORD, token=TOKEN)
    server.start(timeout=1500)
    if not TEMPLATE.exists():  # a consistent snapshot through SQLite's backup API
        with sqlite3.connect(data_dir / "label_studio.sqlite3") as source, sqlite3.connect(TEMPLATE) as target:
            source.backup(target)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, ls_root: Path, label_studio) -> Iterator[dict]:
    """Settings pointing at a fresh SQLite store and the test Label Studio, plus a pool of 4 photos."""
    from wmstudio.store.session import dispose_engines, transaction

    state = tmp_path_factory.mktemp("state")
    env = {
        "WMSTUDIO_STATE_DIR": str(state),
        "WMSTUDIO_DATABASE_URL": f"sqlite:///{state / 'store.db'}",
        "WMSTUDIO_LABEL_STUDIO_URL": label_studio.url,
        "WMSTUDIO_LABEL_STUDIO_TOKEN": TOKEN,
        "WMSTUDIO_LABEL_STUDIO_PROJECT": "wmstudio test queue",
        "WMSTUDIO_LABEL_STUDIO_DOCUMENT_ROOT": str(ls_root),
        "WMSTUDIO_LABEL_STUDIO_TIMEOUT": "60",
        "WMSTUDIO_STORE_SYNC_ON_INGEST": "false",
    }
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        get_settings.cache_clear()
        dispose_engines()
        incoming = state / "incoming"
        incoming.mkdir()
        for index, (w, h) in enumerate(SIZES):
            (incoming / f"photo{index}.jpg").write_bytes(encode(photo(w, h, seed=index), "JPEG"))
        with transaction() as session:
            assert add_pool_folder(session, incoming, ls_root / "pool", "pool") == len(SIZES)
        _queue_all("v-test")
        yield env
        get_settings.cache_clear()
        dispose_engines()


def _queue_all(model_version: str) -> None:
    """Pending items plus a stored model box per image (what `queue build` writes), best score first."""
    from wmstudio.store.models import Image, Prediction, QueueItem
    from wmstudio.store.session import transaction

    with transaction() as session:
        for rank, image in enumerate(session.scalars(select(Image).order_by(Image.id))):
            session.add(QueueItem(image_id=image.id, score=1.0 - rank / 10, reason="test", model_version=model_version))
            box = (image.width * 0.3, image.height * 0.45, image.width * 0.7, image.height * 0.55)
            session.add(Prediction(image_id=image.id, model_version=model_version, brand="rumah123", score=0.42))
            session.add(
                Prediction(
                    image_id=image.id, model_version=model_version, brand="rumah123", score=0.42,
                    x0=box[0], y0=box[1], x1=box[2], y1=box[3],
                )
            )  # fmt: skip


def _items() -> dict[int, object]:
    from wmstudio.store.models import QueueItem
    from wmstudio.store.session import transaction

    with transaction() as session:
        return {item.image_id: item for item in session.scalars(select(QueueItem))}


def _labels(image_id: int) -> list:
    from wmstudio.store.models import Label
    from wmstudio.store.session import transaction

    with transaction() as session:
        return list(session.scalars(select(Label).where(Label.image_id == image_id).order_by(Label.id)))


def _image(image_id: int):
    from wmstudio.store.models import Image
    from wmstudio.store.session import transaction

    with transaction() as session:
        return session.get(Image, image_id)


def _sync() -> LabelStudioSync:
    return LabelStudioSync.from_settings(get_settings())


def _transaction():
    from wmstudio.store.session import transaction

    return transaction()


def _box(x: float, y: float, w: float, h: float, brand: str = "rumah123") -> dict:
    return {
        "from_name": BOX_CONTROL,
        "to_name": "image",
        "type": "rectanglelabels",
        "value": {"x": x, "y": y, "width": w, "height": h, "rotation": 0, "rectanglelabels": [brand]},
    }


NO_MARK = {"from_name": CHOICE_CONTROL, "to_name": "image", "type": "choices", "value": {"choices": [NO_WATERMARK]}}


def _task_for(sync: LabelStudioSync, image_id: int) -> dict:
    return next(t for t in sync.iter_tasks(sync.ensure_project()) if t["data"][ID_FIELD] == image_id)


# --- pure conversion ---------------------------------------------------------------------------


def test_percent_to_pixels_including_rotation_and_clipping() -> None:
    assert percent_to_pixels({"x": 10, "y": 20, "width": 30, "height": 5}, 640, 480) == (64.0, 96.0, 256.0, 120.0)
    rotated = percent_to_pixels({"x": 50, "y": 50, "width": 10, "height": 10, "rotation": 90}, 100, 100)
    assert rotated == (40.0, 50.0, 50.0, 60.0)
    assert percent_to_pixels({"x": 95, "y": 95, "width": 10, "height": 10}, 100, 100) == (95.0, 95.0, 100.0, 100.0)


@pytest.mark.parametrize(
    ("image", "code"),
    [
        ("/data/local-files/?d=pool/images/ab/abc.jpg", None),
        ("http://127.0.0.1:8080/data/local-files/?d=pool/a.jpg", None),
        ("/data/upload/3/a.jpg", None),
        ("http://evil.example/steal.jpg", "foreign_host"),
        ("https://127.0.0.1:8080/data/local-files/?d=pool/a.jpg", "foreign_host"),
        ("file:///etc/passwd", "outside_source"),
        ("/data/local-files/?d=../../etc/passwd", "outside_source"),
        ("/data/local-files/?d=/etc/passwd", "outside_source"),
    ],
)
def test_pull_takes_only_tasks_whose_image_is_ours(tmp_path: Path, image: str, code: str | None) -> None:
    """A task pointing elsewhere was not made by our push: refused before the store is touched."""
    from wmstudio.data.paths import UnsafeReference

    sync = LabelStudioSync("http://127.0.0.1:8080", "token", "queue", tmp_path)
    task = {"id": 5, "data": {"image": image, ID_FIELD: 1}, "annotations": []}
    opened: list[bool] = []

    def transaction():  # a store that only records that it was opened
        opened.append(True)
        raise RuntimeError("stop here")

    if code is None:
        with pytest.raises(RuntimeError, match="stop here"):
            sync.take_task(transaction, task, {})
        assert opened == [True]
    else:
        with pytest.raises(UnsafeReference) as refused:
            sync.take_task(transaction, task, {})
        assert refused.value.code == code and opened == []


# --- push / pull against the real server -------------------------------------------------------


def test_push_creates_tasks_with_preannotations_and_is_idempotent(store: dict) -> None:
    sync = _sync()
    report = sync.push(_transaction, 3)
    assert report.created == 3 and report.adopted == 0
    items = _items()
    sent = [i for i in items.values() if i.status == "sent"]
    assert len(sent) == 3 and all(i.label_studio_task_id for i in sent)
    assert sorted(i.label_studio_task_id for i in sent) == sorted(report.task_ids)

    project = sync.ensure_project()
    tasks = list(sync.iter_tasks(project))
    assert len(tasks) == 3
    task = next(t for t in tasks if t["id"] == report.task_ids[0])
    assert task["data"]["image"].startswith("/data/local-files/?d=pool/images/")
    assert len(task["predictions"]) == 1
    prediction = task["predictions"][0]
    assert prediction["model_version"] == "v-test" and prediction["score"] == pytest.approx(0.42)
    region = prediction["result"][0]
    assert region["value"]["rectanglelabels"] == ["rumah123"]
    assert region["value"]["x"] == pytest.approx(30) and region["value"]["width"] == pytest.approx(40)

    # Label Studio serves the photo to a logged-in annotator from the local-files storage.
    client = httpx.Client(base_url=store["WMSTUDIO_LABEL_STUDIO_URL"], timeout=60)
    page = client.get("/user/login/")
    client.post(
        "/user/login/",
        data={"email": USER, "password": PASSWORD, "csrfmiddlewaretoken": page.cookies.get("csrftoken", "")},
        headers={"Referer": f"{store['WMSTUDIO_LABEL_STUDIO_URL']}/user/login/"},
    )
    served = client.get(task["data"]["image"])
    assert served.status_code == 200 and served.content[:2] == b"\xff\xd8"

    again = sync.push(_transaction, 3)  # nothing new to send: three tasks are already open
    assert again.created == 0 and again.outstanding == 3 and len(list(sync.iter_tasks(project))) == 3


def test_push_adopts_a_task_created_before_a_crash(store: dict) -> None:
    from wmstudio.store.models import QueueItem

    sync = _sync()
    victim = next(i for i in _items().values() if i.status == "sent")
    with _transaction() as session:  # as if the store update after task creation had been lost
        item = session.get(QueueItem, victim.id)
        item.status, item.label_studio_task_id = "pending", None
        session.add(item)
    before = len(list(sync.iter_tasks(sync.ensure_project())))
    report = sync.push(_transaction, 3)
    assert report.adopted == 1 and report.created == 0
    assert len(list(sync.iter_tasks(sync.ensure_project()))) == before
    assert _items()[victim.image_id].label_studio_task_id == victim.label_studio_task_id


def test_annotation_is_pulled_back_in_pixels_with_annotator_and_time(store: dict) -> None:
    sync = _sync()
    item = next(i for i in _items().values() if i.status == "sent")
    image = _image(item.image_id)
    sync.client.annotations.create(id=item.label_studio_task_id, result=[_box(10, 20, 30, 5)], lead_time=3.2)
    report = sync.pull(_transaction)
    assert report.labelled == 1
    labels = _labels(item.image_id)
    boxes = [label for label in labels if label.box is not None]
    assert len(labels) == 2 and len(boxes) == 1
    expected = (0.1 * image.width, 0.2 * image.height, 0.4 * image.width, 0.25 * image.height)
    assert boxes[0].box == pytest.approx(expected, abs=0.01)
    assert all(label.source == "human" and label.author == f"label-studio:{USER}" for label in labels)
    assert all(label.brand == "rumah123" for label in labels)
    assert abs(time.time() - labels[0].created.timestamp()) < 600
    assert _items()[item.image_id].status == "labelled"

    ids = [label.id for label in labels]
    second = sync.pull(_transaction)  # idempotent: nothing changes, rows are not even rewritten
    assert second.labelled == 0 and second.updated == 0
    assert [label.id for label in _labels(item.image_id)] == ids


def test_no_watermark_skip_conflict_and_deleted_task(store: dict) -> None:
    sync = _sync()
    sent = [i for i in _items().values() if i.status == "sent"]
    assert len(sent) == 2
    clean, other = sent
    sync.client.annotations.create(id=clean.label_studio_task_id, result=[NO_MARK])
    sync.client.annotations.create(id=other.label_studio_task_id, result=[_box(5, 5, 20, 10, "99co")])
    sync.client.annotations.create(id=other.label_studio_task_id, result=[NO_MARK])  # a second annotator disagrees
    report = sync.pull(_transaction)
    assert report.labelled == 1 and len(report.conflicts) == 1
    assert [(label.brand, label.box) for label in _labels(clean.image_id)] == [(None, None)]
    conflicted = _items()[other.image_id]
    assert conflicted.status == "sent" and "conflict" in conflicted.reason
    assert _labels(other.image_id) == []

    # Deleting the conflicting task in Label Studio re-queues the photo; nothing else is touched.
    sync.client.tasks.delete(id=str(other.label_studio_task_id))
    report = sync.pull(_transaction)
    assert report.requeued_deleted == 1
    requeued = _items()[other.image_id]
    assert requeued.status == "pending" and requeued.label_studio_task_id is None
    assert _items()[clean.image_id].status == "labelled"

    # Pushed again, then skipped by the annotator.
    assert sync.push(_transaction, 1).created == 1
    task_id = _items()[other.image_id].label_studio_task_id
    sync.client.annotations.create(id=task_id, result=[], was_cancelled=True)
    assert sync.pull(_transaction).skipped == 1
    assert _items()[other.image_id].status == "skipped"


# --- the webhook through a real API process -------------------------------------------------------


@pytest.fixture(scope="module")
def webhook_api(store: dict, registry_copy: Path) -> Iterator[Server]:
    server = Server(
        {
            **store,
            "WMSTUDIO_REGISTRY_DIR": str(registry_copy),
            "WMSTUDIO_API_KEYS": "",
            "WMSTUDIO_WEBHOOK_SECRET": HOOK_SECRET,
        },
        Path(store["WMSTUDIO_STATE_DIR"]),
    )
    probe = httpx.post(
        f"{server.url}/v1/webhooks/label-studio", json={"action": "PING"}, headers=HOOK_HEADERS, timeout=120
    )
    if probe.status_code == 404:
        server.stop()
        pytest.skip("api/main.py does not include api.webhooks.router yet")
    yield server
    server.stop()


def test_webhook_stores_an_annotation_as_soon_as_it_is_saved(store: dict, webhook_api: Server) -> None:
    sync = _sync()
    hook = sync.ensure_webhook(f"{webhook_api.url}/v1/webhooks/label-studio", HOOK_HEADERS)
    assert sync.ensure_webhook(f"{webhook_api.url}/v1/webhooks/label-studio", HOOK_HEADERS) == hook  # once
    item = next(i for i in _items().values() if i.status == "pending")
    assert sync.push(_transaction, 1).created == 1
    task_id = _items()[item.image_id].label_studio_task_id
    sync.client.annotations.create(id=task_id, result=[_box(50, 50, 25, 10)])
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and _items()[item.image_id].status != "labelled":
        time.sleep(0.5)
    assert _items()[item.image_id].status == "labelled"  # no pull ran: the webhook did it
    image = _image(item.image_id)
    box = next(label.box for label in _labels(item.image_id) if label.box is not None)
    assert box == pytest.approx(
        (0.5 * image.width, 0.5 * image.height, 0.75 * image.width, 0.6 * image.height), abs=0.01
    )
    assert sync.pull(_transaction).labelled == 0  # already in: pull after webhook changes nothing

    assert (
        httpx.post(
            f"{webhook_api.url}/v1/webhooks/label-studio",
            json={"action": "PROJECT_UPDATED"},
            headers=HOOK_HEADERS,
            timeout=60,
        ).json()["status"]
        == "ignored"
    )
    replay = httpx.post(
        f"{webhook_api.url}/v1/webhooks/label-studio",
        json={"action": "ANNOTATION_UPDATED", "task": {"id": task_id}, "annotation": {"task": task_id}},
        headers=HOOK_HEADERS,
        timeout=60,
    ).json()
    assert replay["status"] == "stored" and replay["tasks"] == {str(task_id): "unchanged"}


# --- Label Studio down or slow -----------------------------------------------------------------------


def _silent_server() -> tuple[int, socket.socket]:
    """Accepts connections and never answers: a hung Label Studio."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    held: list[socket.socket] = []
    threading.Thread(target=lambda: held.extend(iter(lambda: listener.accept()[0], None)), daemon=True).start()
    return listener.getsockname()[1], listener


def test_label_studio_down_or_slow_loses_nothing(store: dict, ls_root: Path) -> None:
    before = {image_id: (i.status, i.label_studio_task_id) for image_id, i in _items().items()}
    down = LabelStudioSync(f"http://127.0.0.1:{free_port()}", TOKEN, "wmstudio test queue", ls_root, timeout=2)
    with pytest.raises(LabelStudioUnavailable, match="cannot reach Label Studio"):
        down.push(_transaction, 5)
    with pytest.raises(LabelStudioUnavailable, match="run the command again later"):
        down.pull(_transaction)
    port, listener = _silent_server()
    slow = LabelStudioSync(f"http://127.0.0.1:{port}", TOKEN, "wmstudio test queue", ls_root, timeout=1)
    started = time.monotonic()
    with pytest.raises(LabelStudioUnavailable, match="did not answer"):
        slow.push(_transaction, 5)
    assert time.monotonic() - started < 15
    listener.close()
    assert {image_id: (i.status, i.label_studio_task_id) for image_id, i in _items().items()} == before
    wrong_token = LabelStudioSync(store["WMSTUDIO_LABEL_STUDIO_URL"], "not-a-token", "x", ls_root, timeout=10)
    with pytest.raises(LabelStudioUnavailable, match="refused the token"):
        wrong_token.check()


def test_queue_cli_reports_label_studio_down(store: dict) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, **store, "WMSTUDIO_LABEL_STUDIO_URL": f"http://127.0.0.1:{free_port()}"}
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "queue", "pull"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 3
    assert "cannot reach Label Studio" in result.stderr
