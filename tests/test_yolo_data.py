"""The YOLO layout: one link and one label per item, and nothing left from an earlier layout."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from PIL import Image

from cli import main as cli
from training.pipeline import REAL_POSITIVE_REPEATS, yolo_dir
from training.yolo_data import Source, write_yolo_dataset
from wmstudio.data.manifest import Box, Item, Manifest

pytestmark = pytest.mark.unit


def _manifest(root: Path, names: list[str]) -> Manifest:
    manifest = Manifest(name="tiny")
    for index, name in enumerate(names):
        relative = Path("images") / f"{name}.jpg"
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (100, 80), (index * 40, 90, 90)).save(root / relative)
        boxes = [Box("rumah123", [10, 10, 50, 30])] if index % 2 == 0 else []
        manifest.add(
            Item(
                sha256=name * 8,
                path=str(relative),
                width=100,
                height=80,
                brand="rumah123" if boxes else None,
                boxes=boxes,
                source="test",
                split="train" if index < 2 else "val",
            )
        )
    return manifest


def test_labels_are_yolo_lines_and_a_relayout_removes_stale_files(tmp_path):
    root, out = tmp_path / "data", tmp_path / "yolo"
    write_yolo_dataset([Source(_manifest(root, ["aaaa", "bbbb", "cccc"]), root)], out)
    label = (out / "labels" / "train" / f"s0_{'aaaa' * 8}.txt").read_text().split()
    assert label == ["0", "0.300000", "0.250000", "0.400000", "0.250000"]

    write_yolo_dataset([Source(_manifest(root, ["dddd", "bbbb", "cccc"]), root)], out)
    train_images = sorted(p.name for p in (out / "images" / "train").iterdir())
    assert train_images == [f"s0_{'bbbb' * 8}.jpg", f"s0_{'dddd' * 8}.jpg"]
    assert not (out / "labels" / "train" / f"s0_{'aaaa' * 8}.txt").exists()
    assert len((out / "train.txt").read_text().split()) == 2


def test_repeats_oversample_train_only_and_a_mix_gets_its_own_folder(tmp_path):
    root, out = tmp_path / "data", tmp_path / "yolo"
    names = ["aaaa", "bbbb", "cccc"]  # aaaa: train positive, bbbb: train negative, cccc: val positive
    write_yolo_dataset([Source(_manifest(root, names), root, repeat_positives=5, repeat_negatives=2)], out)
    train = (out / "train.txt").read_text().split()
    assert sum("aaaa" in line for line in train) == 5
    assert sum("bbbb" in line for line in train) == 2
    assert len((out / "val.txt").read_text().split()) == 1  # validation is never oversampled

    synthetic_dir = tmp_path / "datasets" / "synthetic-s0"
    default = yolo_dir(tmp_path, synthetic_dir)
    assert default == tmp_path / "yolo" / "default-s0"
    assert yolo_dir(tmp_path, synthetic_dir, REAL_POSITIVE_REPEATS) == default
    assert yolo_dir(tmp_path, synthetic_dir, 15) == tmp_path / "yolo" / "default-s0-real15"


def test_the_train_command_defaults_to_the_pipelines_real_repeats():
    parameter = inspect.signature(cli.train).parameters["real_positive_repeats"]
    assert parameter.default == REAL_POSITIVE_REPEATS
