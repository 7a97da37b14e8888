"""Splits keep near-duplicates together and keep the brand balance."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.conftest import encode
from training.synth.procedural import room_scene
from wmstudio.data.ingest import ingest
from wmstudio.data.manifest import Manifest
from wmstudio.data.splits import assign_splits

pytestmark = pytest.mark.unit


def test_near_duplicates_share_a_split_and_brands_are_stratified(tmp_path):
    src = tmp_path / "src"
    for brand, count in (("rumah123", 10), ("no_watermark", 20)):
        folder = src / brand
        folder.mkdir(parents=True)
        for i in range(count):
            image = room_scene(320, 240, seed=(brand == "rumah123") * 1000 + i)
            (folder / f"{i}.jpg").write_bytes(encode(image, "JPEG", quality=90))
            if i < 3:  # a re-posted copy: resized and re-compressed
                (folder / f"{i}_copy.jpg").write_bytes(encode(image.resize((300, 225)), "JPEG", quality=60))
    manifest, _ = ingest(src, tmp_path / "ds")
    counts = assign_splits(manifest, tmp_path / "ds", seed=1)
    assert sum(counts.values()) == len(manifest.items) == 36
    by_origin = {"/".join(item.origin.split("/")[-2:]): item for item in manifest.items.values()}
    for brand in ("rumah123", "no_watermark"):
        for i in range(3):
            original, copy = by_origin[f"{brand}/{i}.jpg"], by_origin[f"{brand}/{i}_copy.jpg"]
            assert original.group == copy.group and original.split == copy.split
    positives = Counter(item.split for item in manifest.items.values() if item.brand)
    assert all(positives[split] >= 2 for split in ("train", "val", "test"))


def test_a_split_lists_the_same_items_in_the_same_order_before_and_after_a_reload(tmp_path):
    """Synthetic backgrounds are drawn from a split's list: a fresh ingest must not reorder it."""
    src = tmp_path / "src" / "no_watermark"
    src.mkdir(parents=True)
    for i in range(12):
        (src / f"{i}.jpg").write_bytes(encode(room_scene(160, 120, seed=i), "JPEG", quality=90))
    folder = tmp_path / "ds"
    manifest, _ = ingest(tmp_path / "src", folder)
    assign_splits(manifest, folder, seed=0)
    manifest.save(folder)
    reloaded = Manifest.load(folder)
    for split in ("train", "val", "test"):
        fresh = [item.sha256 for item in manifest.split(split)]
        assert fresh == [item.sha256 for item in reloaded.split(split)]
    assert sum(len(manifest.split(s)) for s in ("train", "val", "test")) == 12
