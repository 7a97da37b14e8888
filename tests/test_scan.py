"""``wmstudio scan --shard i/n`` + ``wmstudio scan-merge`` == one unsharded scan, byte for byte."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import encode, photo, run_cli, truncated_jpeg
from wmstudio.scan import Entry, ScanError, merge_records, parse_shard, read_manifest, shard_entries

pytestmark = pytest.mark.model

SHARDS = 3


def scan_cli(*args: str, registry: Path) -> subprocess.CompletedProcess:
    return run_cli(*args, env={"WMSTUDIO_REGISTRY_DIR": str(registry)})


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    """Nine entries: five plain photos, two with synthetic Rumah123/99.co marks, a truncated JPEG, a missing file."""
    from app.examples import synthetic_examples

    photos = tmp_path / "photos"
    photos.mkdir()
    marked = synthetic_examples(tmp_path / "marked")[:2]
    lines = ["# bulk scan of a listing export", ""]
    for i in range(5):
        fmt, suffix = ("PNG", "png") if i % 3 == 2 else ("JPEG", "jpg")
        (photos / f"house-{i}.{suffix}").write_bytes(encode(photo(480 + 40 * i, 360, seed=i), fmt))
        lines.append(f"photos/house-{i}.{suffix}")  # relative to the manifest's folder
        if i == 1:
            (photos / "broken.jpg").write_bytes(truncated_jpeg())
            lines += [str(photos / "broken.jpg"), "   ", "photos/missing.jpg  ", *map(str, marked)]
    path = tmp_path / "manifest.txt"
    path.write_text("\n".join(lines) + "\n")
    assert len(read_manifest(path)) == 9
    return path


def test_three_shards_merged_equal_one_unsharded_scan(tmp_path, manifest, bundled_registry):
    whole = tmp_path / "whole.jsonl"
    result = scan_cli("scan", str(manifest), "--out", str(whole), "--min-score", "0.01", registry=bundled_registry)
    assert result.returncode == 0, result.stderr
    assert "9/9" in result.stderr  # the tqdm bar went to stderr
    assert "2 unreadable" in result.stderr

    shards = []
    for i in range(SHARDS):
        out = tmp_path / "results" / f"shard-{i}.jsonl"
        args = ("scan", str(manifest), "--shard", f"{i}/{SHARDS}", "--out", str(out), "--min-score", "0.01")
        result = scan_cli(*args, registry=bundled_registry)
        assert result.returncode == 0, result.stderr
        indices = [json.loads(line)["index"] for line in out.read_text().splitlines()]
        assert indices == [n for n in range(9) if n % SHARDS == i]
        shards.append(out)
    assert not list((tmp_path / "results").glob(".*partial"))  # atomic writes leave no partial files

    merged = tmp_path / "merged.jsonl"
    shuffled = [str(shards[2]), str(shards[0]), str(shards[1])]
    result = scan_cli(
        "scan-merge", *shuffled, "--out", str(merged), "--manifest", str(manifest), registry=bundled_registry
    )
    assert result.returncode == 0, result.stderr
    assert merged.read_bytes() == whole.read_bytes()

    records = [json.loads(line) for line in whole.read_text().splitlines()]
    assert [r["index"] for r in records] == list(range(9))
    errors = {r["file"]: r["error"]["code"] for r in records if "error" in r}
    assert errors == {
        str(manifest.parent / "photos" / "broken.jpg"): "truncated_image",
        "photos/missing.jpg": "unreadable_file",
    }
    for record in records:
        if "error" not in record:
            assert set(record) == {"index", "file", "watermarked", "detections", "model_version"}
            assert record["watermarked"] == bool(record["detections"])
    champion = json.loads((bundled_registry / "registry.json").read_text())["champion"]
    assert {r["model_version"] for r in records if "error" not in r} == {champion}


def test_merge_refuses_missing_and_duplicated_shards(tmp_path, manifest, bundled_registry):
    shards = []
    for i in range(SHARDS):
        out = tmp_path / f"shard-{i}.jsonl"
        result = scan_cli(
            "scan", str(manifest), "--shard", f"{i}/{SHARDS}", "--out", str(out), registry=bundled_registry
        )
        assert result.returncode == 0, result.stderr
        shards.append(str(out))
    merged = tmp_path / "merged.jsonl"

    missing = scan_cli("scan-merge", shards[0], shards[2], "--out", str(merged), registry=bundled_registry)
    assert missing.returncode == 1
    assert "indices missing: 1, 4, 7" in missing.stderr
    assert not merged.exists()

    doubled = scan_cli("scan-merge", *shards, shards[1], "--out", str(merged), registry=bundled_registry)
    assert doubled.returncode == 1
    assert "appears twice" in doubled.stderr

    assert len(merge_records([Path(s) for s in shards], manifest)) == 9


def test_merge_with_manifest_catches_a_lost_tail_and_wrong_files(tmp_path):
    """Indices alone cannot see a lost last shard when it held only the tail; the manifest can."""
    manifest = tmp_path / "m.txt"
    manifest.write_text("a.jpg\nb.jpg\nc.jpg\n")
    head = tmp_path / "shard-0.jsonl"
    head.write_text('{"index": 0, "file": "a.jpg"}\n{"index": 1, "file": "b.jpg"}\n')
    assert len(merge_records([head])) == 2
    with pytest.raises(ScanError, match="indices missing: 2"):
        merge_records([head], manifest)
    other = tmp_path / "shard-1.jsonl"
    other.write_text('{"index": 2, "file": "z.jpg"}\n')
    with pytest.raises(ScanError, match=re.escape("manifest says 'c.jpg'")):
        merge_records([head, other], manifest)
    garbage = tmp_path / "shard-2.jsonl"
    garbage.write_text("not json\n")
    with pytest.raises(ScanError, match=re.escape("shard-2.jsonl:1 is not a scan record")):
        merge_records([garbage])


def test_bad_shard_spec_and_missing_manifest_fail_clearly(tmp_path, bundled_registry):
    result = scan_cli("scan", str(tmp_path / "nope.txt"), registry=bundled_registry)
    assert result.returncode == 2 and "cannot read the manifest" in result.stderr
    (tmp_path / "m.txt").write_text("a.jpg\n")
    result = scan_cli("scan", str(tmp_path / "m.txt"), "--shard", "3/3", registry=bundled_registry)
    assert result.returncode == 2 and "0 <= i < n" in result.stderr


def test_sharding_is_a_partition(tmp_path):
    path = tmp_path / "m.txt"
    path.write_text("# header\n" + "\n".join(f"img-{i}.jpg" for i in range(20)) + "\n\n# trailer\n")
    entries = read_manifest(path)
    assert entries[0] == Entry(0, "img-0.jpg") and len(entries) == 20
    parts = [shard_entries(entries, i, 6) for i in range(6)]
    assert sorted(e.index for part in parts for e in part) == list(range(20))
    assert parse_shard("5/6") == (5, 6)
    for bad in ("6/6", "-1/6", "1/0", "1", "a/b"):
        with pytest.raises(ScanError):
            parse_shard(bad)
