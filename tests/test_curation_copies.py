"""Curation that loses nothing (issue #32): byte-identical copies, conflicting labels, dataset identity.

Everything goes through the CLI as a user runs it, on source folders of procedural rooms (each
seed a distinct layout, so every duplicate found is one planted here).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import select
from typer.testing import CliRunner

from curation.cli import app
from tests.conftest import ROOT, encode
from training.synth.procedural import room_scene
from wmstudio.data.manifest import Manifest
from wmstudio.settings import get_settings
from wmstudio.store.models import Flag, Label
from wmstudio.store.models import Image as ImageRow
from wmstudio.store.session import dispose_engines, transaction

pytestmark = pytest.mark.unit

RECORD_KEYS = {"file", "files", "stored", "kind", "score", "group", "reason", "id", "status", "dataset", "split"}


def _room(seed: int, size: tuple[int, int] = (480, 360), quality: int = 92) -> bytes:
    return encode(room_scene(*size, 1000 + seed).resize(size), "JPEG", quality=quality)


def _put(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _source(root: Path, seeds: range) -> Path:
    """A folder per class: rumah123/ r<seed>.jpg for the first half, no_watermark/ n<seed>.jpg after."""
    half = seeds.start + len(seeds) // 2
    for seed in seeds:
        folder, prefix = ("rumah123", "r") if seed < half else ("no_watermark", "n")
        _put(root / folder / f"{prefix}{seed}.jpg", _room(seed))
    return root


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict]:
    """The CLI's environment: a state folder of its own and no model (duplicates need none)."""
    env = {"WMSTUDIO_STATE_DIR": str(tmp_path / "state"), "WMSTUDIO_REGISTRY_DIR": str(tmp_path / "no-models")}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("WMSTUDIO_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    yield env
    get_settings.cache_clear()
    dispose_engines()


def _curate(*args: str) -> tuple[int, list[dict], str]:
    result = CliRunner().invoke(app, [*args, "--json"] + (["--no-gallery"] if args[0] == "duplicates" else []))
    records = json.loads(result.stdout) if result.exit_code == 0 else []
    return result.exit_code, records, result.stderr


def _names(paths: list[str]) -> list[str]:
    return sorted(Path(p).name for p in paths)


def test_exact_copies_and_conflicting_labels_are_flags_and_no_label_is_lost(tmp_path, cli):
    src = _source(tmp_path / "listing", range(8))
    _put(src / "rumah123" / "r0-copy.jpg", (src / "rumah123" / "r0.jpg").read_bytes())  # agrees
    _put(src / "no_watermark" / "r1-copy.jpg", (src / "rumah123" / "r1.jpg").read_bytes())  # disagrees
    with Image.open(src / "rumah123" / "r2.jpg") as original:
        _put(src / "no_watermark" / "r2-small.jpg", encode(original.resize((320, 240)), "JPEG", quality=80))
    done = subprocess.run(  # once as a user runs it: a fresh interpreter, JSON on stdout only
        [sys.executable, "-m", "cli.main", "curate", "duplicates", str(src), "--json", "--no-gallery"],
        cwd=ROOT,
        env={**{k: v for k, v in os.environ.items() if k != "WMSTUDIO_DATABASE_URL"}, **cli},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    records = json.loads(done.stdout)
    assert all(set(r) >= RECORD_KEYS and Path(r["stored"]).exists() for r in records)
    assert all(Path(r["file"]).is_relative_to(src) for r in records), "file is the user's path"
    exact = {tuple(_names(r["files"])) for r in records if r["kind"] == "exact_duplicate"}
    assert exact == {("r0-copy.jpg", "r0.jpg"), ("r1-copy.jpg", "r1.jpg")}
    near = [r for r in records if r["kind"] == "near_duplicate"]
    assert [_names(r["files"]) for r in near] == [["r2-small.jpg", "r2.jpg"]]
    conflicts = {
        tuple(sorted((Path(x["file"]).name, x["label"]) for x in r["labels"])): r
        for r in records
        if r["kind"] == "label_conflict"
    }
    assert set(conflicts) == {
        (("r1-copy.jpg", "none"), ("r1.jpg", "rumah123")),
        (("r2-small.jpg", "none"), ("r2.jpg", "rumah123")),
    }
    assert "2 label conflicts among copies" in done.stderr

    manifest = Manifest.load(Path(cli["WMSTUDIO_STATE_DIR"]) / "datasets" / "listing")
    kept = {(Path(path).name, label) for item in manifest.items.values() for path, label in item.labelled_paths()}
    assert {("r1.jpg", "rumah123"), ("r1-copy.jpg", None), ("r0-copy.jpg", "rumah123")} <= kept, "no label lost"
    assert len(kept) == 11  # every file of the folder, each with its own label

    near_conflict = conflicts[(("r2-small.jpg", "none"), ("r2.jpg", "rumah123"))]
    refused = CliRunner().invoke(app, ["decide", str(near_conflict["id"]), "accept", "--by", "alice"])
    assert refused.exit_code == 2 and "--label" in refused.stderr
    decided = CliRunner().invoke(
        app, ["decide", str(near_conflict["id"]), "accept", "--by", "alice", "--label", "rumah123"]
    )
    assert decided.exit_code == 0, decided.output
    assert json.loads(decided.stdout)["status"] == "accepted"
    manifest = Manifest.load(Path(cli["WMSTUDIO_STATE_DIR"]) / "datasets" / "listing")
    small = next(i for i in manifest.items.values() if i.origin.endswith("r2-small.jpg"))
    assert small.brand == "rumah123" and small.source == "human" and "alice" in small.notes[-1]
    with transaction() as session:
        image = session.scalars(select(ImageRow).where(ImageRow.sha256 == small.sha256)).one()
        assert [label.brand for label in session.scalars(select(Label).where(Label.image_id == image.id))] == [
            "rumah123"
        ]
    code, again, _ = _curate("duplicates", str(src))
    assert code == 0
    left = [r for r in again if r["kind"] == "label_conflict"]
    assert [_names(r["files"]) for r in left] == [["r1-copy.jpg", "r1.jpg"]], "the settled conflict is gone"


def test_two_folders_with_the_same_name_never_mix_flags(tmp_path, cli, monkeypatch):
    first, second = _source(tmp_path / "a" / "photos", range(6)), _source(tmp_path / "b" / "photos", range(20, 26))
    for folder, seed in ((first, 0), (second, 20)):
        _put(folder / "rumah123" / f"r{seed}-copy.jpg", (folder / "rumah123" / f"r{seed}.jpg").read_bytes())
    code, flags_a, _ = _curate("duplicates", str(first))
    assert code == 0 and flags_a and all(Path(r["file"]).is_relative_to(first) for r in flags_a)

    code, _, error = _curate("duplicates", str(second))
    assert code == 2 and "already holds" in error and str(first.resolve()) in error and "--name" in error

    code, flags_b, _ = _curate("duplicates", str(second), "--name", "photos-b")
    assert code == 0 and flags_b and all(Path(r["file"]).is_relative_to(second) for r in flags_b)
    assert {r["dataset"] for r in flags_b} == {"photos-b"} and not {r["id"] for r in flags_a} & {
        r["id"] for r in flags_b
    }

    monkeypatch.chdir(tmp_path / "a")  # the same folder by another spelling is the same dataset
    code, again, _ = _curate("duplicates", "photos")
    assert code == 0 and {r["id"] for r in again} == {r["id"] for r in flags_a}
    listed = CliRunner().invoke(app, ["flags", "photos", "--json"])
    assert all(Path(r["file"]).is_relative_to(first) for r in json.loads(listed.stdout))


def test_a_manifest_folder_may_not_take_over_a_store_dataset_of_another_folder(tmp_path, cli):
    src = _source(tmp_path / "photos", range(4))
    assert _curate("duplicates", str(src))[0] == 0
    copy = tmp_path / "elsewhere" / "photos"
    managed = Path(cli["WMSTUDIO_STATE_DIR"]) / "datasets" / "photos"
    for path in managed.rglob("*"):
        if path.is_file():
            _put(copy / path.relative_to(managed), path.read_bytes())
    code, _, error = _curate("duplicates", str(copy))
    assert code == 2 and "is the folder" in error and "--name" in error


def test_flags_of_files_that_left_are_closed_and_come_back_when_they_do(tmp_path, cli):
    src = _source(tmp_path / "shots", range(6))
    with Image.open(src / "no_watermark" / "n3.jpg") as original:
        smaller = encode(original.resize((360, 270)), "JPEG", quality=70)
    copy = _put(src / "no_watermark" / "n3-copy.jpg", smaller)  # a near copy of n3
    code, first, _ = _curate("duplicates", str(src))
    flagged = next(r for r in first if r["kind"] == "near_duplicate")
    assert code == 0 and Path(flagged["file"]) == copy
    with transaction() as session:  # an earlier labels run flagged the copy too (a kind this run does not check)
        image_id = session.get(Flag, flagged["id"]).image_id
        session.add(Flag(image_id=image_id, kind="label_issue", score=0.9, reason="planted", status="open"))

    copy.unlink()
    code, second, error = _curate("duplicates", str(src))
    assert code == 0 and not second and "2 closed" in error
    listed = CliRunner().invoke(app, ["flags", "shots", "--status", "open", "--json"])
    assert json.loads(listed.stdout) == [], "nothing about a file that is gone is reported open"
    closed = json.loads(CliRunner().invoke(app, ["flags", "shots", "--status", "closed", "--json"]).stdout)
    assert sorted(r["kind"] for r in closed) == ["label_issue", "near_duplicate"]

    _put(copy, smaller)
    code, third, _ = _curate("duplicates", str(src))
    back = next(r for r in third if r["kind"] == "near_duplicate")
    assert back["id"] == flagged["id"] and back["status"] == "open"
