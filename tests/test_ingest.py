"""Ingest of every supported layout, bad files, boxes outside the image, idempotence."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tests.conftest import bomb_png, cmyk_jpeg, encode, exif_rotated_jpeg, palette_png, photo, png16, truncated_jpeg
from wmstudio.data.ingest import IngestError, detect_format, ingest
from wmstudio.data.manifest import Manifest, sha256_bytes

pytestmark = pytest.mark.unit


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _jpeg(seed: int, size: tuple[int, int] = (400, 300)) -> bytes:
    return encode(photo(*size, seed=seed), "JPEG", quality=92)


def test_folder_per_class(tmp_path):
    src = tmp_path / "src"
    _write(src / "rumah123" / "a.jpg", _jpeg(1))
    _write(src / "99co" / "b.jpg", _jpeg(2))
    _write(src / "no_watermark" / "c.jpg", _jpeg(3))
    _write(src / "watermark" / "d.jpg", _jpeg(4))
    assert detect_format(src) == "folders"
    manifest, report = ingest(src, tmp_path / "ds")
    assert report.added == 4 and not report.skipped
    brands = sorted(item.brand or "none" for item in manifest.items.values())
    assert brands == ["99co", "none", "rumah123", "rumah123"]


def test_unknown_class_folder_is_a_clear_error(tmp_path):
    _write(tmp_path / "src" / "lamudi" / "a.jpg", _jpeg(1))
    with pytest.raises(IngestError, match="unknown brand"):
        ingest(tmp_path / "src", tmp_path / "ds")


def test_csv_with_coco_boxes_and_idempotent_reingest(tmp_path):
    src = tmp_path / "src"
    _write(src / "images" / "p.jpg", _jpeg(1))
    _write(src / "images" / "n.jpg", _jpeg(2))
    (src / "labels.csv").write_text("file,has_watermark,brand\nimages/p.jpg,1,rumah123\nimages/n.jpg,0,\n")
    coco = {
        "images": [{"id": 1, "file_name": "images/p.jpg", "width": 400, "height": 300}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 20, 100, 30]}],
        "categories": [{"id": 1, "name": "rumah123"}, {"id": 2, "name": "99co"}],
    }
    (src / "boxes.coco.json").write_text(json.dumps(coco))
    manifest, report = ingest(src, tmp_path / "ds")
    assert report.format == "csv" and report.added == 2
    positive = next(i for i in manifest.items.values() if i.brand)
    assert positive.boxes[0].box == [10, 20, 110, 50]
    version = manifest.version()
    again, report2 = ingest(src, tmp_path / "ds")
    assert report2.added == 0 and report2.already_present == 2
    assert again.version() == version and len(again.items) == 2


def test_real_labels_csv(tmp_path, data_dir):
    manifest, report = ingest(data_dir / "listings", tmp_path / "ds")
    assert report.added == 64 and not report.skipped
    assert sum(1 for i in manifest.items.values() if i.brand == "rumah123") == 14
    assert sum(len(i.boxes) for i in manifest.items.values()) == 14


def test_coco_json_with_boxes_outside_image(tmp_path):
    src = tmp_path / "src"
    _write(src / "a.jpg", _jpeg(1))
    coco = {
        "images": [{"id": 1, "file_name": "a.jpg"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 2, "bbox": [350, 10, 100, 40]},  # crosses right edge: clipped
            {"id": 2, "image_id": 1, "category_id": 2, "bbox": [390, 280, 100, 100]},  # mostly outside: rejected
            {"id": 3, "image_id": 1, "category_id": 7, "bbox": [10, 10, 10, 10]},  # unknown category: rejected
        ],
        "categories": [{"id": 1, "name": "rumah123"}, {"id": 2, "name": "99co"}],
    }
    (src / "ann.json").write_text(json.dumps(coco))
    manifest, report = ingest(src / "ann.json", tmp_path / "ds")
    item = next(iter(manifest.items.values()))
    assert item.brand == "99co"
    assert [b.box for b in item.boxes] == [[350, 10, 400, 50]]
    actions = sorted(issue["action"] for issue in report.box_issues)
    assert actions == ["clipped", "rejected", "rejected"]


def test_yolo_folders(tmp_path):
    src = tmp_path / "src"
    _write(src / "images" / "a.jpg", _jpeg(1))
    _write(src / "images" / "b.jpg", _jpeg(2))
    (src / "labels").mkdir()
    (src / "labels" / "a.txt").write_text("1 0.5 0.5 0.5 0.2\n")
    assert detect_format(src) == "yolo"
    manifest, _ = ingest(src, tmp_path / "ds")
    items = {Path(i.origin).name: i for i in manifest.items.values()}
    assert items["a.jpg"].brand == "99co" and items["b.jpg"].brand is None
    assert items["a.jpg"].boxes[0].box == [100.0, 120.0, 300.0, 180.0]


def test_malformed_yolo_line_is_reported(tmp_path):
    src = tmp_path / "src"
    _write(src / "images" / "a.jpg", _jpeg(1))
    (src / "labels").mkdir()
    (src / "labels" / "a.txt").write_text("zero 0.5 0.5\n")
    with pytest.raises(IngestError, match="malformed YOLO line"):
        ingest(src, tmp_path / "ds")


def test_label_studio_export(tmp_path):
    src = tmp_path / "src"
    _write(src / "a.jpg", _jpeg(1))
    _write(src / "b.jpg", _jpeg(2))
    tasks = [
        {
            "id": 1,
            "data": {"image": "/data/local-files/?d=a.jpg"},
            "annotations": [
                {
                    "result": [
                        {
                            "type": "rectanglelabels",
                            "original_width": 400,
                            "original_height": 300,
                            "value": {"x": 25, "y": 50, "width": 50, "height": 10, "rectanglelabels": ["rumah123"]},
                        }
                    ]
                }
            ],
        },
        {
            "id": 2,
            "data": {"image": "/data/upload/1/b.jpg"},
            "annotations": [{"result": [{"type": "choices", "value": {"choices": ["no watermark"]}}]}],
        },
    ]
    (src / "export.json").write_text(json.dumps(tasks))
    assert detect_format(src / "export.json") == "labelstudio"
    manifest, report = ingest(src / "export.json", tmp_path / "ds")
    items = {Path(i.origin).name: i for i in manifest.items.values()}
    assert report.added == 2
    assert items["a.jpg"].boxes[0].box == [100.0, 150.0, 300.0, 180.0]
    assert items["b.jpg"].brand is None


def test_malformed_label_files(tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(IngestError, match="not valid JSON"):
        ingest(tmp_path / "bad.json", tmp_path / "ds")
    src = tmp_path / "csvsrc"
    src.mkdir()
    (src / "labels.csv").write_text("name;label\nx;y\n")
    with pytest.raises(IngestError, match="header"):
        ingest(src, tmp_path / "ds2")
    with pytest.raises(IngestError, match="does not exist"):
        ingest(tmp_path / "missing", tmp_path / "ds3")


def test_bad_files_are_skipped_or_normalised_never_crash(tmp_path):
    src = tmp_path / "src" / "no_watermark"
    _write(src / "good.jpg", _jpeg(1))
    _write(src / "truncated.jpg", truncated_jpeg())
    _write(src / "zero.jpg", b"")
    _write(src / "text.jpg", b"just text")
    _write(src / "bomb.png", bomb_png())
    _write(src / "cmyk.jpg", cmyk_jpeg())
    _write(src / "sixteen.png", png16())
    _write(src / "palette.png", palette_png())
    _write(src / "rotated.jpg", exif_rotated_jpeg())
    _write(src / "notes.txt", b"readme")
    manifest, report = ingest(tmp_path / "src", tmp_path / "ds", max_pixels=40_000_000)
    skipped = {Path(s["file"]).name: s["code"] for s in report.skipped}
    assert skipped == {
        "truncated.jpg": "truncated_image",
        "zero.jpg": "empty_file",
        "text.jpg": "not_an_image",
        "bomb.png": "too_many_pixels",
        "notes.txt": "not_an_image",
    }
    normalised = {Path(n["file"]).name for n in report.normalised}
    assert normalised == {"cmyk.jpg", "sixteen.png", "palette.png", "rotated.jpg"}
    assert report.added == 5
    rotated = next(i for i in manifest.items.values() if i.origin.endswith("rotated.jpg"))
    assert (rotated.width, rotated.height) == (480, 640)
    stored = tmp_path / "ds" / rotated.path
    assert stored.suffix == ".png" and stored.exists()


def test_huge_file_is_skipped(tmp_path):
    src = tmp_path / "src" / "no_watermark"
    _write(src / "big.jpg", _jpeg(1, (1200, 900)))
    _, report = ingest(tmp_path / "src", tmp_path / "ds", max_bytes=10_000)
    assert report.skipped[0]["code"] == "file_too_large"


def test_csv_lists_missing_file(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    with (src / "labels.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows([["file", "has_watermark", "brand"], ["gone.jpg", "0", ""]])
    _, report = ingest(src, tmp_path / "ds")
    assert report.skipped == [{"file": str(src / "gone.jpg"), "code": "missing_file", "reason": "listed but not found"}]


# --- copies, conflicts, pruning ------------------------------------------------------------------


def test_byte_identical_copies_keep_every_path_and_label(tmp_path):
    src = tmp_path / "src"
    same, other = _jpeg(1), _jpeg(2)
    _write(src / "rumah123" / "marked.jpg", same)
    _write(src / "no_watermark" / "marked-copy.jpg", same)  # the same photo, labelled clean
    _write(src / "rumah123" / "b.jpg", other)
    _write(src / "rumah123" / "b-copy.jpg", other)  # a copy that agrees
    manifest, report = ingest(src, tmp_path / "ds")
    assert report.added == 2 and report.exact_copies == 2
    reloaded = Manifest.load(tmp_path / "ds")
    marked = next(i for i in reloaded.items.values() if i.label_conflict)
    labels = {Path(o.path).name: o.brand for o in marked.origins}
    assert labels == {"marked.jpg": "rumah123", "marked-copy.jpg": None}, "no label dropped"
    assert marked.origin == marked.origins[0].path and Path(marked.origin).is_absolute()
    assert [sorted(f["label"] for f in c["files"]) for c in report.label_conflicts] == [["none", "rumah123"]]
    agreeing = next(i for i in reloaded.items.values() if not i.label_conflict)
    assert sorted(Path(p).name for p in agreeing.paths) == ["b-copy.jpg", "b.jpg"]
    again, second = ingest(src, tmp_path / "ds")  # idempotent: no new copies, the conflict still reported
    assert second.exact_copies == 0 and len(second.label_conflicts) == 1
    assert again.version() == manifest.version()


def test_prune_drops_paths_that_left_the_source(tmp_path):
    src = tmp_path / "src"
    _write(src / "no_watermark" / "a.jpg", _jpeg(1))
    _write(src / "no_watermark" / "a-copy.jpg", _jpeg(1))
    _write(src / "no_watermark" / "b.jpg", _jpeg(2))
    ingest(src, tmp_path / "ds", prune=True)
    (src / "no_watermark" / "a.jpg").unlink()
    (src / "no_watermark" / "b.jpg").unlink()
    manifest, report = ingest(src, tmp_path / "ds", prune=True)
    assert sorted(Path(p).name for p in report.removed) == ["a.jpg", "b.jpg"]
    (item,) = manifest.items.values()  # b is gone; a's content stays, held by its copy
    assert [Path(p).name for p in item.paths] == ["a-copy.jpg"] and item.origin.endswith("a-copy.jpg")
    assert manifest.sources == [str(src.resolve())]


# --- references outside the source folder -------------------------------------------------------


@pytest.fixture
def escape(tmp_path: Path) -> dict:
    """A source folder with one good photo, and a photo outside it that no label file may reach."""
    src = tmp_path / "src"
    outside = _write(tmp_path / "outside" / "secret.jpg", _jpeg(7))
    _write(src / "good.jpg", _jpeg(1))
    return {"src": src, "outside": outside, "bad": ["../outside/secret.jpg", str(outside), f"file://{outside}"]}


def _assert_only_good(manifest: Manifest, report, escape: dict, refused: int) -> None:
    assert report.added == 1 and [Path(i.origin).name for i in manifest.items.values()] == ["good.jpg"]
    codes = [s["code"] for s in report.skipped]
    assert codes == ["outside_source"] * refused, report.skipped
    assert all(s["reason"] for s in report.skipped)
    assert sha256_bytes(escape["outside"].read_bytes()) not in manifest.items


def test_csv_names_outside_the_folder_are_refused_per_item(tmp_path, escape):
    rows = [["file", "has_watermark", "brand"], ["good.jpg", "0", ""], *[[b, "0", ""] for b in escape["bad"]]]
    with (escape["src"] / "labels.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    manifest, report = ingest(escape["src"], tmp_path / "ds")
    _assert_only_good(manifest, report, escape, 3)


def test_coco_names_outside_the_folder_are_refused_per_item(tmp_path, escape):
    names = ["good.jpg", *escape["bad"]]
    coco = {"images": [{"id": i, "file_name": n} for i, n in enumerate(names)], "annotations": [], "categories": []}
    (escape["src"] / "ann.json").write_text(json.dumps(coco))
    manifest, report = ingest(escape["src"] / "ann.json", tmp_path / "ds")
    _assert_only_good(manifest, report, escape, 3)


@pytest.mark.parametrize("fmt", ["yolo", "folders"])
def test_symbolic_links_out_of_the_folder_are_refused_per_item(tmp_path, escape, fmt):
    sub = escape["src"] / ("images" if fmt == "yolo" else "no_watermark")
    sub.mkdir()
    (escape["src"] / "good.jpg").rename(sub / "good.jpg")
    (sub / "link.jpg").symlink_to(escape["outside"])
    if fmt == "yolo":
        (escape["src"] / "labels").mkdir()
    manifest, report = ingest(escape["src"], tmp_path / "ds", fmt=fmt)
    _assert_only_good(manifest, report, escape, 1)
    assert Path(report.skipped[0]["file"]).name == "link.jpg"


def test_label_studio_images_only_from_its_host_or_the_folder(tmp_path, escape):
    _write(escape["src"] / "uploaded.jpg", _jpeg(2))
    _write(escape["src"] / "served.jpg", _jpeg(3))
    refs = {
        "/data/local-files/?d=good.jpg": None,
        "/data/upload/4/uploaded.jpg": None,
        "http://ls.internal:8080/data/local-files/?d=served.jpg": None,
        "http://evil.example/data/local-files/?d=good.jpg": "foreign_host",
        "https://ls.internal:8080/data/upload/1/good.jpg": "foreign_host",  # another scheme is another origin
        "s3://bucket/good.jpg": "foreign_host",
        "/data/local-files/?d=../outside/secret.jpg": "outside_source",
        f"/data/local-files/?d={escape['outside']}": "outside_source",
        f"file://{escape['outside']}": "outside_source",
        str(escape["outside"]): "outside_source",
    }
    tasks = [{"id": n, "data": {"image": ref}, "annotations": []} for n, ref in enumerate(refs)]
    (escape["src"] / "export.json").write_text(json.dumps(tasks))
    manifest, report = ingest(
        escape["src"] / "export.json", tmp_path / "ds", label_studio_url="http://ls.internal:8080"
    )
    assert sorted(Path(i.origin).name for i in manifest.items.values()) == ["good.jpg", "served.jpg", "uploaded.jpg"]
    refused = {s["file"]: s["code"] for s in report.skipped}
    assert refused == {ref: code for ref, code in refs.items() if code}
    evil = next(s for s in report.skipped if "evil.example" in s["file"])
    assert "not on the configured Label Studio" in evil["reason"] and "not fetched" in evil["reason"]


def test_ingest_cli_maps_a_source_to_its_dataset_and_refuses_to_mix(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from cli.main import app
    from wmstudio.settings import get_settings

    monkeypatch.setenv("WMSTUDIO_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("WMSTUDIO_STORE_SYNC_ON_INGEST", "false")
    get_settings.cache_clear()
    first, second = tmp_path / "a" / "photos", tmp_path / "b" / "photos"
    _write(first / "rumah123" / "x.jpg", _jpeg(1))
    _write(first / "no_watermark" / "x-copy.jpg", _jpeg(1))
    _write(second / "no_watermark" / "y.jpg", _jpeg(2))
    runner = CliRunner()
    try:
        done = runner.invoke(app, ["ingest", str(first), "--json"])
        assert done.exit_code == 0, done.output
        (conflict,) = json.loads(done.stdout)["label_conflicts"]
        assert sorted((Path(f["file"]).name, f["label"]) for f in conflict["files"]) == [
            ("x-copy.jpg", "none"),
            ("x.jpg", "rumah123"),
        ]
        refused = runner.invoke(app, ["ingest", str(second)])
        assert refused.exit_code == 2 and "already holds" in refused.output and "--extend" in refused.output
        assert runner.invoke(app, ["ingest", str(second), "--name", "other"]).exit_code == 0
        assert runner.invoke(app, ["ingest", str(second), "--name", "default", "--extend"]).exit_code == 0
        assert runner.invoke(app, ["ingest", str(second)]).exit_code == 0  # now known: its first dataset
        datasets = tmp_path / "state" / "datasets"
        assert len(Manifest.load(datasets / "default").sources) == 2
        assert Manifest.load(datasets / "other").sources == [str(second.resolve())]
    finally:
        get_settings.cache_clear()
