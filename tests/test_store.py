"""The dataset store: migrations from empty (SQLite and a real PostgreSQL), idempotent sync, rollback.

PostgreSQL comes from Debian's ``postgresql`` package: a throw-away cluster is initialised in a
temporary folder and started on 127.0.0.1 for the session (as the ``postgres`` user when the
tests run as root, because ``initdb`` refuses root). Without the binaries those tests skip.
"""

from __future__ import annotations

import json
import logging
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, func, inspect, select, text
from sqlalchemy.exc import IntegrityError

from tests.components import missing_component
from tests.conftest import ROOT, encode, free_port
from wmstudio.data.manifest import Box, Item, Manifest
from wmstudio.settings import get_settings
from wmstudio.store.migrate import alembic_config, current_revision, head_revision, upgrade_to_head
from wmstudio.store.models import Base, Dataset, DatasetVersion, Flag, Image, Label
from wmstudio.store.session import dispose_engines, get_engine, transaction
from wmstudio.store.sync import MANIFEST_AUTHOR, import_manifest

pytestmark = pytest.mark.integration

TABLES = {"datasets", "dataset_versions", "images", "labels", "predictions", "flags", "queue_items"}


# --- a real PostgreSQL server -------------------------------------------------------------------


def _postgres_bin() -> Path | None:
    for folder in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if all((folder / name).exists() for name in ("initdb", "pg_ctl", "postgres")):
            return folder
    found = shutil.which("pg_ctl")
    return Path(found).parent if found and shutil.which("initdb") else None


def _runner() -> list[str]:
    """Prefix that drops root for initdb/pg_ctl (empty when not root)."""
    if os.geteuid() != 0:
        return []
    for user in ("postgres", "nobody"):
        try:
            pwd.getpwnam(user)
        except KeyError:
            continue
        if shutil.which("runuser"):
            return ["runuser", "-u", user, "--"]
    missing_component("PostgreSQL", "running as root without a 'postgres' user or runuser: cannot start PostgreSQL")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """URL of a fresh PostgreSQL cluster on 127.0.0.1 (the server's maintenance database)."""
    binaries = _postgres_bin()
    if binaries is None:
        missing_component("PostgreSQL", "binaries (Debian package 'postgresql') not found")
    prefix = _runner()
    root = Path(tempfile.mkdtemp(prefix="wmstudio-pg-"))
    data, log = root / "data", root / "server.log"
    if prefix:
        owner = prefix[2]
        shutil.chown(root, user=owner)
    os.chmod(root, 0o700)
    port = free_port()
    env = {**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}
    run = lambda *args: subprocess.run([*prefix, *args], env=env, capture_output=True, text=True, timeout=120)  # noqa: E731
    done = run(str(binaries / "initdb"), "-D", str(data), "-U", "wmstudio", "-A", "trust", "-E", "UTF8", "--no-sync")
    if done.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        missing_component("PostgreSQL", f"initdb failed: {done.stderr[-500:]}")
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off -c full_page_writes=off"
    done = run(str(binaries / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start")
    if done.returncode != 0:
        message = log.read_text()[-800:] if log.exists() else done.stderr
        shutil.rmtree(root, ignore_errors=True)
        missing_component("PostgreSQL", f"the server did not start: {message}")
    try:
        yield f"postgresql+psycopg://wmstudio@127.0.0.1:{port}/postgres"
    finally:
        dispose_engines()
        run(str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


def fresh_postgres_database(server_url: str) -> str:
    name = f"t_{uuid.uuid4().hex[:12]}"
    engine = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return server_url.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty store: a SQLite file, or a new database on the test PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return fresh_postgres_database(request.getfixturevalue("postgres_server"))


# --- helpers ------------------------------------------------------------------------------------


def manifest_of(count: int, name: str = "demo") -> Manifest:
    manifest = Manifest(name=name)
    for index in range(count):
        brand = "rumah123" if index % 3 == 0 else None
        boxes = [Box("rumah123", [10.0, 20.0, 110.0, 60.0 + index])] if brand else []
        manifest.add(
            Item(
                f"{index:064x}", f"images/{index}.jpg", 640, 480, brand, boxes, split="train", origin=f"src/{index}.jpg"
            )
        )
    return manifest


def count(url: str, model: type[Base]) -> int:
    with transaction(url) as session:
        return session.scalar(select(func.count()).select_from(model))


# --- migrations ---------------------------------------------------------------------------------


def test_migrations_up_from_empty_match_the_models_and_go_down_again(store_url):
    assert current_revision(store_url) is None
    assert upgrade_to_head(store_url) == head_revision()
    assert set(inspect(get_engine(store_url)).get_table_names()) >= TABLES
    with get_engine(store_url).connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection, opts={"compare_type": True}), Base.metadata)
    assert diff == [], f"models and migrations disagree: {diff}"
    assert upgrade_to_head(store_url) == head_revision()  # idempotent
    config = alembic_config(store_url)
    with get_engine(store_url).begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "base")
    assert not TABLES & set(inspect(get_engine(store_url)).get_table_names())
    assert upgrade_to_head(store_url) == head_revision()


def test_check_constraints_guard_the_enumerations(store_url):
    with transaction(store_url) as session:
        import_manifest(session, manifest_of(1))
    with pytest.raises(IntegrityError), transaction(store_url) as session:
        image = session.scalars(select(Image)).one()
        session.add(Flag(image_id=image.id, kind="not_a_kind", reason=""))
    with pytest.raises(IntegrityError), transaction(store_url) as session:
        image = session.scalars(select(Image)).one()
        session.add(Label(image_id=image.id, brand="rumah123", x0=1.0, source="human"))  # half a box
    assert count(store_url, Flag) == 0


# --- sync ---------------------------------------------------------------------------------------


def test_reimport_is_idempotent_and_keeps_reviewers_labels(store_url):
    manifest = manifest_of(9)
    with transaction(store_url) as session:
        first = import_manifest(session, manifest, "demo", "/data/demo")
    assert (first.added, first.updated, first.unchanged) == (9, 0, 0)
    labels_after_first = count(store_url, Label)
    assert labels_after_first == 9 + 3  # one image-level label each + one box per positive
    with transaction(store_url) as session:
        again = import_manifest(session, manifest, "demo", "/data/demo")
    assert (again.added, again.updated, again.unchanged) == (0, 0, 9)
    assert count(store_url, Image) == 9 and count(store_url, Label) == labels_after_first
    assert count(store_url, DatasetVersion) == 1

    # A reviewer's correction lives beside the imported label and survives a changed manifest.
    key = sorted(manifest.items)[1]
    with transaction(store_url) as session:
        image = session.scalars(select(Image).where(Image.sha256 == key)).one()
        session.add(Label(image_id=image.id, brand="99co", source="human", author="alice"))
    manifest.items[key].brand = "rumah123"
    manifest.items[key].split = "test"
    with transaction(store_url) as session:
        changed = import_manifest(session, manifest, "demo")
    assert (changed.added, changed.updated, changed.unchanged, changed.labels_replaced) == (0, 1, 8, 1)
    with transaction(store_url) as session:
        image = session.scalars(select(Image).where(Image.sha256 == key)).one()
        assert image.split == "test"
        by_author = {(label.author, label.brand) for label in image.labels}
        assert by_author == {(MANIFEST_AUTHOR, "rumah123"), ("alice", "99co")}
        assert session.scalar(select(func.count()).select_from(DatasetVersion)) == 2


def test_same_photo_in_two_datasets_keeps_both_rows(store_url):
    with transaction(store_url) as session:
        import_manifest(session, manifest_of(3, "a"))
        import_manifest(session, manifest_of(3, "b"))
    assert count(store_url, Dataset) == 2 and count(store_url, Image) == 6


def test_a_failing_batch_leaves_nothing_half_written(store_url):
    good = manifest_of(4)
    with transaction(store_url) as session:
        import_manifest(session, good, "demo")
    before = (count(store_url, Image), count(store_url, Label), count(store_url, DatasetVersion))

    batch = manifest_of(8)
    batch.items[sorted(batch.items)[0]].brand = "99co"  # an update that must not survive either
    broken = sorted(batch.items)[-1]
    batch.items[broken].width = None  # NOT NULL: the database refuses this row, late in the batch
    with pytest.raises(IntegrityError), transaction(store_url) as session:
        import_manifest(session, batch, "demo")
    assert (count(store_url, Image), count(store_url, Label), count(store_url, DatasetVersion)) == before
    with transaction(store_url) as session:
        first = session.scalars(select(Image).where(Image.sha256 == sorted(good.items)[0])).one()
        assert {label.brand for label in first.labels} == {"rumah123"}


# --- ingest hook and CLI --------------------------------------------------------------------------


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    state = tmp_path / "state"
    monkeypatch.setenv("WMSTUDIO_STATE_DIR", str(state))
    monkeypatch.delenv("WMSTUDIO_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    yield state
    get_settings.cache_clear()
    dispose_engines()


def _photo_folder(root: Path) -> Path:
    from training.synth.procedural import room_scene

    for index in range(3):
        folder = root / ("rumah123" if index == 0 else "no_watermark")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"p{index}.jpg").write_bytes(encode(room_scene(320, 240, index), "JPEG", quality=90))
    return root


def test_ingest_mirrors_managed_datasets_into_the_store(state_dir, tmp_path):
    from wmstudio.data.ingest import ingest

    source = _photo_folder(tmp_path / "src")
    ingest(source, state_dir / "datasets" / "mine", name="mine")
    ingest(source, tmp_path / "scratch", name="scratch")  # outside datasets_dir: not mirrored
    url = get_settings().resolved_database_url
    with transaction(url) as session:
        names = session.scalars(select(Dataset.name)).all()
        assert names == ["mine"]
        assert session.scalar(select(func.count()).select_from(Image)) == 3


def test_store_failure_never_loses_the_ingest(state_dir, tmp_path, monkeypatch, caplog):
    from wmstudio.data.ingest import ingest

    monkeypatch.setenv("WMSTUDIO_DATABASE_URL", f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/none")
    get_settings.cache_clear()
    with caplog.at_level(logging.ERROR):
        _, report = ingest(_photo_folder(tmp_path / "src"), state_dir / "datasets" / "mine", name="mine")
    assert report.added == 3 and (state_dir / "datasets" / "mine" / "manifest.json").exists()
    assert any("store" in record.getMessage() for record in caplog.records)


def test_store_cli_upgrade_status_and_sync(tmp_path):
    env = {**os.environ, "WMSTUDIO_STATE_DIR": str(tmp_path / "state")}
    env.pop("WMSTUDIO_DATABASE_URL", None)
    dataset = tmp_path / "ds"
    manifest_of(4, "cli-demo").save(dataset)

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "cli.main", "store", *args], cwd=ROOT, env=env, capture_output=True, text=True
        )

    before = json.loads(cli("status", "--json").stdout)
    assert before["revision"] is None and before["head"] == head_revision()
    assert "is at revision" in cli("upgrade").stdout
    synced = cli("sync", str(dataset))
    assert synced.returncode == 0 and "4 added" in synced.stdout
    after = json.loads(cli("status", "--json").stdout)
    assert after["revision"] == head_revision()
    assert after["tables"]["images"] == 4 and after["datasets"][0]["name"] == "cli-demo"
