"""Curation on small planted data: duplicates, outliers, label and box issues, decisions, the CLI.

Photos are procedural rooms (distinct layouts per seed), so every duplicate found is one that
was planted; the detector is replaced by hand-written predictions where a test is about the
Cleanlab logic rather than about the model.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from curation.boxes import box_label_issues
from curation.dataset import CurationDataset, resolve_dataset
from curation.decisions import DecisionError, decide
from curation.duplicates import find_duplicates, refs_of
from curation.fastdup_backend import fastdup_available, venv_python
from curation.labels import detector_features, image_label_issues, labelled_brands
from curation.predictions import ImagePrediction
from curation.run import run_duplicates, run_labels
from tests.conftest import ROOT, encode
from training.synth.procedural import room_scene
from wmstudio.data.manifest import Box, Item, Manifest, sha256_bytes
from wmstudio.settings import Settings, get_settings
from wmstudio.store.models import Flag
from wmstudio.store.session import dispose_engines, transaction

pytestmark = pytest.mark.model

JSON_KEYS = {"file", "kind", "score", "group", "reason"}


def _add(manifest: Manifest, folder: Path, data: bytes, suffix: str, split: str, origin: str, **labels) -> str:
    key = sha256_bytes(data)
    relative = Path("images") / f"{key}{suffix}"
    (folder / relative).parent.mkdir(parents=True, exist_ok=True)
    (folder / relative).write_bytes(data)
    with Image.open(folder / relative) as image:
        width, height = image.size
    manifest.add(
        Item(
            key, str(relative), width, height, labels.get("brand"), labels.get("boxes", []), split=split, origin=origin
        )
    )
    return key


@pytest.fixture
def planted(tmp_path: Path) -> tuple[CurationDataset, dict[str, str]]:
    """14 distinct rooms plus an exact (PNG), a resized and a re-compressed copy of three of them."""
    folder = tmp_path / "planted"
    manifest = Manifest(name="planted")
    keys = {}
    rooms = {}
    for index in range(14):
        rooms[index] = room_scene(480, 360, 1000 + index)
        keys[f"room{index}"] = _add(
            manifest, folder, encode(rooms[index], "JPEG", quality=92), ".jpg", "train", f"room{index}.jpg"
        )
    with Image.open(folder / manifest.items[keys["room0"]].path) as image:
        decoded = image.convert("RGB")
    keys["exact"] = _add(manifest, folder, encode(decoded, "PNG"), ".png", "test", "exact.png")
    keys["resized"] = _add(
        manifest,
        folder,
        encode(rooms[1].resize((288, 216), Image.LANCZOS), "JPEG", quality=85),
        ".jpg",
        "test",
        "resized.jpg",
    )
    keys["recompressed"] = _add(
        manifest, folder, encode(rooms[2], "JPEG", quality=35), ".jpg", "train", "recompressed.jpg"
    )
    manifest.save(folder)
    return CurationDataset("planted", folder, manifest), keys


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(state_dir=tmp_path / "state", registry_dir=tmp_path / "no-models")


@pytest.fixture
def store(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    yield url
    dispose_engines()


def test_imagehash_finds_exact_and_near_copies_and_nothing_else(planted):
    dataset, keys = planted
    result = find_duplicates(refs_of(dataset), "imagehash", max_distance=10)
    by_key = {f.key: f for f in result.findings}
    copies = {keys["exact"], keys["room0"], keys["resized"], keys["recompressed"], keys["room2"]}
    assert set(by_key) <= copies and len(result.clusters) == 3
    exact = next(f for f in result.findings if f.kind == "exact_duplicate")
    assert {exact.key, exact.details["keeper"]} == {keys["exact"], keys["room0"]}
    assert by_key[keys["resized"]].kind == "near_duplicate"  # the smaller copy is the one flagged
    assert by_key[keys["resized"]].details["keeper"] == keys["room1"]
    recompressed = {keys["recompressed"], keys["room2"]}
    near = [f for f in result.findings if f.key in recompressed]
    assert len(near) == 1 and near[0].kind == "near_duplicate" and near[0].details["keeper"] in recompressed
    leaks = {frozenset(c.members) for c in result.clusters if c.leak}  # train originals, test copies
    assert leaks == {frozenset((keys["room0"], keys["exact"])), frozenset((keys["room1"], keys["resized"]))}
    assert "leakage" in by_key[keys["resized"]].reason


def test_duplicates_run_stores_flags_gallery_and_respects_decisions(planted, settings, store, tmp_path):
    dataset, keys = planted
    gallery = tmp_path / "gallery.html"
    first = run_duplicates(dataset, settings, "imagehash", store, gallery)
    kinds = sorted(record["kind"] for record in first.records)
    assert kinds == ["exact_duplicate", "near_duplicate", "near_duplicate"]
    assert all(set(record) >= JSON_KEYS and record["group"].startswith("dup-") for record in first.records)
    html = gallery.read_text()
    assert html.count("<section") == 3 and "data:image/jpeg;base64," in html and "leak" in html

    resized = next(r for r in first.records if r["stored"].endswith(dataset.manifest.items[keys["resized"]].path))
    assert resized["file"] == "resized.jpg" and resized["files"] == ["room1.jpg", "resized.jpg"]
    exact = next(r for r in first.records if r["kind"] == "exact_duplicate")
    with transaction(store) as session:
        decide(session, resized["id"], "dismiss", "alice")
        decide(session, exact["id"], "accept", "bob")
        with pytest.raises(DecisionError):
            decide(session, exact["id"], "maybe", "bob")
        with pytest.raises(DecisionError):
            decide(session, 10_000, "accept", "bob")

    second = run_duplicates(dataset, settings, "imagehash", store, None)
    assert second.suppressed == 1 and second.created == 0
    reported = {r["id"]: r["status"] for r in second.records}
    assert resized["id"] not in reported and reported[exact["id"]] == "accepted"
    with transaction(store) as session:
        dismissed = session.get(Flag, resized["id"])
        assert dismissed.status == "dismissed" and dismissed.decided_by == "alice" and dismissed.decided_at

    # Remove the re-compressed copy from the dataset: its open flag is closed on the next run.
    gone = next(k for k in (keys["recompressed"], keys["room2"]) if k in {f.key for f in second.findings})
    del dataset.manifest.items[gone]
    third = run_duplicates(dataset, settings, "imagehash", store, None)
    assert third.closed == 1 and len(third.records) == 1


def test_outliers_are_the_images_unlike_the_rest():
    from curation.outliers import find_outliers

    rng = np.random.default_rng(0)
    features = rng.normal(0, 1, (40, 12))
    features[7] += 9.0
    findings = find_outliers([f"k{i}" for i in range(40)], features, z_threshold=4.0)
    assert [f.key for f in findings] == ["k7"] and findings[0].score == 1.0
    assert find_outliers(["a", "b"], features[:2]) == []  # too few images to say


def test_cleanlab_flags_the_flipped_image_labels():
    rng = np.random.default_rng(1)
    truth = np.array(["rumah123"] * 30 + [None] * 50, dtype=object)
    signal = np.where(truth == "rumah123", 0.9, 0.05) + rng.normal(0, 0.05, truth.size)
    features = np.column_stack([signal, rng.normal(0, 1, (truth.size, 3))])
    given = list(truth)
    flipped = [2, 11, 40, 55, 71]
    for index in flipped:
        given[index] = None if given[index] else "rumah123"
    keys = [f"k{i}" for i in range(truth.size)]
    findings, info = image_label_issues(keys, given, features, threshold=0.5, folds=5)
    assert {f.key for f in findings} == {keys[i] for i in flipped}
    assert info["balanced_accuracy"] > 0.85 and info["classes"] == ["none", "rumah123"]
    first = findings[0]
    assert first.kind == "label_issue" and 0.5 < first.score <= 1.0 and "labelled" in first.reason
    assert first.details["suggested"] != first.details["given"]
    # A label class with a single image cannot be cross-validated: skipped with a reason, no crash.
    findings, info = image_label_issues(keys[:3], ["rumah123", None, None], features[:3])
    assert findings == [] and "skipped" in info


def test_label_features_only_for_brands_someone_labelled():
    """A brand without labels adds only noise features (the listings have no 99.co photo)."""
    assert labelled_brands(["rumah123", None, "rumah123", "99co"]) == ("rumah123",)
    assert labelled_brands([None, None]) == ("rumah123", "99co")  # nothing labelled: keep every brand
    prediction = ImagePrediction({"rumah123": 0.9, "99co": 0.4}, [("rumah123", 0.9, (10.0, 40.0, 90.0, 60.0))])
    assert detector_features(prediction, 100, 100, ("rumah123",)).shape == (7,)
    assert detector_features(prediction, 100, 100).shape == (14,)


def test_cleanlab_object_detection_names_missing_shifted_and_wrong_brand_boxes():
    items, predictions = [], []

    def add(key: str, labelled: list[tuple[str, tuple]], predicted: list[tuple[str, float, tuple]]) -> None:
        brand = labelled[0][0] if labelled else None
        items.append(Item(key, f"{key}.jpg", 800, 600, brand, [Box(b, list(box)) for b, box in labelled]))
        predictions.append(ImagePrediction({}, predicted))

    rng = np.random.default_rng(3)
    for index in range(20):  # agreeing images: the detector's box is a few pixels off the label
        x, y = rng.uniform(0, 500), rng.uniform(0, 500)
        label = (x, y, x + 200, y + 40)
        jitter = tuple(v + rng.normal(0, 3) for v in label)
        extra = [("99co", 0.2, (10.0, 10.0, 60.0, 30.0))] if index % 4 == 0 else []  # faint, ignored
        add(f"good{index}", [("rumah123", label)], [("rumah123", float(rng.uniform(0.6, 0.95)), jitter), *extra])
    for index in range(8):
        add(f"clean{index}", [], [("rumah123", 0.1, (300.0, 300.0, 400.0, 330.0))] if index % 2 else [])
    mark = (100.0, 200.0, 300.0, 240.0)
    add("missing", [], [("rumah123", 0.85, mark)])
    add("shifted", [("rumah123", (190.0, 200.0, 390.0, 240.0))], [("rumah123", 0.88, mark)])
    add("wrong", [("99co", mark)], [("rumah123", 0.92, mark)])
    findings = box_label_issues(items, predictions, threshold=0.5, confident=0.5)
    subtype = {f.key: f.details["subtype"] for f in findings}
    assert subtype == {"missing": "overlooked", "shifted": "badloc", "wrong": "swap"}
    reasons = {f.key: f.reason for f in findings}
    assert reasons["missing"].startswith("missing box") and reasons["wrong"].startswith("wrong brand")
    assert "detector sees rumah123" in reasons["wrong"] and "IoU" in reasons["shifted"]
    assert findings[0].score >= findings[-1].score
    # Cleanlab's built-in confidence bar (0.95) misses the missing and the wrong-brand box.
    default = {f.key: f.details["cleanlab_default_quality"] for f in findings}
    assert default["missing"] > 0.9 and default["wrong"] > 0.9


def test_labels_run_with_the_bundled_model_caches_predictions(planted, bundled_registry, tmp_path, store):
    dataset, _ = planted
    for index, key in enumerate(sorted(dataset.manifest.items)):
        dataset.manifest.items[key].brand = "rumah123" if index % 2 else None
    settings = Settings(state_dir=tmp_path / "state", registry_dir=bundled_registry)
    first = run_labels(dataset, settings, store)
    assert first.model_version and first.model_version.startswith("v")
    assert all(set(r) >= JSON_KEYS and r["kind"] in {"label_issue", "box_issue"} for r in first.records)
    from sqlalchemy import func, select

    from wmstudio.store.models import Prediction

    with transaction(store) as session:
        stored = session.scalar(select(func.count()).select_from(Prediction))
    assert stored >= len(dataset.manifest.items) * 2  # one image-level row per brand at least
    run_labels(dataset, settings, store)
    with transaction(store) as session:
        assert session.scalar(select(func.count()).select_from(Prediction)) == stored  # served from the store


def test_a_path_is_ingested_first(tmp_path, settings):
    source = tmp_path / "incoming"
    for index in range(3):
        folder = source / ("rumah123" if index == 0 else "no_watermark")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"p{index}.jpg").write_bytes(encode(room_scene(320, 240, index), "JPEG"))
    dataset = resolve_dataset(str(source), settings)
    assert dataset.name == "incoming" and len(dataset.manifest.items) == 3
    assert dataset.folder == (settings.datasets_dir / "incoming").resolve()
    assert resolve_dataset("incoming", settings).folder == dataset.folder  # now known by name


@pytest.mark.skipif(
    not fastdup_available(get_settings().resolved_fastdup_venv),
    reason="fastdup venv absent (create it with `make fastdup-venv`)",
)
def test_fastdup_backend_in_its_own_venv(data_dir, tmp_path):
    """fastdup's embedding needs real photos (it finds all procedural rooms alike): house photos."""
    folder = tmp_path / "houses"
    manifest = Manifest(name="houses")
    photos = sorted((data_dir / "houses").glob("*_frontal.jpg"))[:14]
    keys = {p.stem: _add(manifest, folder, p.read_bytes(), ".jpg", "train", p.name) for p in photos}
    first, second, third = (Image.open(photos[i]).convert("RGB") for i in range(3))
    copies = {
        "exact": _add(manifest, folder, encode(first, "PNG"), ".png", "test", "exact.png"),
        "resized": _add(
            manifest,
            folder,
            encode(second.resize((second.width * 2 // 3, second.height * 2 // 3)), "JPEG", quality=85),
            ".jpg",
            "test",
            "resized.jpg",
        ),
        "recompressed": _add(manifest, folder, encode(third, "JPEG", quality=35), ".jpg", "test", "recompressed.jpg"),
    }
    dataset = CurationDataset("houses", folder, manifest)
    result = find_duplicates(
        refs_of(dataset),
        "fastdup",
        fastdup_similarity=0.95,
        fastdup_python=venv_python(get_settings().resolved_fastdup_venv),
    )
    clusters = [set(c.members) for c in result.clusters]
    for name, original in zip(copies, photos[:3], strict=True):
        assert any({copies[name], keys[original.stem]} <= members for members in clusters), f"fastdup missed {name}"
    exact = [f for f in result.findings if f.kind == "exact_duplicate"]
    assert len(exact) == 1 and exact[0].key in {copies["exact"], keys[photos[0].stem]}
    assert result.method == "fastdup" and result.outliers is not None and result.details["fastdup_version"]


def test_cli_json_shape_and_decide(planted, tmp_path, monkeypatch):
    """One real ``python -m cli.main`` run for the --json contract, then typer's runner in-process."""
    from typer.testing import CliRunner

    from curation.cli import app

    dataset, _ = planted
    env = {"WMSTUDIO_STATE_DIR": str(tmp_path / "cli-state"), "WMSTUDIO_REGISTRY_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "curate", "duplicates", str(dataset.folder), "--json", "--no-gallery"],
        cwd=ROOT,
        env={**{k: v for k, v in os.environ.items() if k != "WMSTUDIO_DATABASE_URL"}, **env},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    flags = json.loads(done.stdout)
    assert isinstance(flags, list) and len(flags) == 3
    for flag in flags:
        assert set(flag) >= JSON_KEYS
        assert flag["kind"] in {"exact_duplicate", "near_duplicate"} and 0 <= flag["score"] <= 1
        assert Path(flag["stored"]).exists() and flag["group"] and flag["file"] == flag["origin"]

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("WMSTUDIO_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    runner = CliRunner()
    try:
        decided = runner.invoke(app, ["decide", str(flags[0]["id"]), "dismiss", "--by", "alice"])
        assert decided.exit_code == 0 and json.loads(decided.stdout)["status"] == "dismissed"
        again = runner.invoke(app, ["duplicates", str(dataset.folder), "--json", "--no-gallery"])
        assert {f["id"] for f in json.loads(again.stdout)} == {f["id"] for f in flags[1:]}
        labels = runner.invoke(app, ["labels", str(dataset.folder), "--json"])  # no model here: image features only
        assert labels.exit_code == 0, labels.output
        assert isinstance(json.loads(labels.stdout), list) and "no detector" in labels.stderr
        stored = runner.invoke(app, ["flags", "planted", "--status", "dismissed", "--json"])
        assert [f["id"] for f in json.loads(stored.stdout)] == [flags[0]["id"]]
        assert runner.invoke(app, ["decide", "999999", "accept", "--by", "x"]).exit_code == 2
    finally:
        get_settings.cache_clear()
        dispose_engines()


def test_label_flags_need_cleanlabs_verdict(monkeypatch):
    """A low quality alone is no flag: Cleanlab's find_label_issues must call the label an issue too."""
    import curation.labels as labels_module

    rng = np.random.default_rng(1)
    truth = np.array(["rumah123"] * 30 + [None] * 50, dtype=object)
    features = np.column_stack([np.where(truth == "rumah123", 0.9, 0.05) + rng.normal(0, 0.05, truth.size)])
    given = list(truth)
    flipped = [2, 11, 40, 55, 71]
    for index in flipped:
        given[index] = None if given[index] else "rumah123"
    keys = [f"k{i}" for i in range(truth.size)]
    flagged, _ = image_label_issues(keys, given, features, threshold=1.0, folds=5)
    # Every quality is below 1.0, yet only the labels Cleanlab calls issues are flagged.
    assert {f.key for f in flagged} == {keys[i] for i in flipped}
    monkeypatch.setattr(labels_module, "find_label_issues", lambda y, p, **kw: np.zeros(len(y), dtype=bool))
    flagged, info = image_label_issues(keys, given, features, threshold=1.0, folds=5)
    assert flagged == [] and info["cleanlab_find_label_issues"] == 0
