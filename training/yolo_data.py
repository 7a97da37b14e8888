"""Write manifests as an Ultralytics YOLO dataset (symlinked images, txt labels, data.yaml)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from wmstudio.brands import BRANDS
from wmstudio.data.manifest import Item, Manifest


@dataclass(frozen=True)
class Source:
    """A manifest, the folder its paths are relative to, and how often its train items repeat."""

    manifest: Manifest
    root: Path
    repeat_positives: int = 1
    repeat_negatives: int = 1


def yolo_label_lines(item: Item, classes: Sequence[str]) -> list[str]:
    lines = []
    for box in item.boxes:
        if box.brand not in classes:
            continue
        x0, y0, x1, y1 = box.box
        cx, cy = (x0 + x1) / 2 / item.width, (y0 + y1) / 2 / item.height
        w, h = (x1 - x0) / item.width, (y1 - y0) / item.height
        lines.append(f"{classes.index(box.brand)} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}")
    return lines


def write_yolo_dataset(sources: Sequence[Source], out_dir: Path, classes: Sequence[str] = BRANDS) -> Path:
    """Lay out every split of every source and return the path of ``data.yaml``.

    Oversampling (repeats) applies to the train list only, so validation stays unbiased.
    """
    lists: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    written: set[Path] = set()
    for index, source in enumerate(sources):
        for item in source.manifest.items.values():
            if item.split not in lists:
                continue
            stem = f"s{index}_{item.sha256[:40]}"
            image_link = out_dir / "images" / item.split / f"{stem}{Path(item.path).suffix}"
            label_file = out_dir / "labels" / item.split / f"{stem}.txt"
            image_link.parent.mkdir(parents=True, exist_ok=True)
            label_file.parent.mkdir(parents=True, exist_ok=True)
            if image_link.is_symlink() or image_link.exists():
                image_link.unlink()
            os.symlink((source.root / item.path).resolve(), image_link)
            label_file.write_text("\n".join(yolo_label_lines(item, classes)) + "\n")
            written |= {image_link, label_file}
            repeats = 1
            if item.split == "train":
                repeats = source.repeat_positives if item.watermarked else source.repeat_negatives
            lists[item.split] += [os.path.abspath(image_link)] * repeats
    _remove_stale(out_dir, written)
    for split in ("train", "val"):
        if not lists[split]:
            raise ValueError(f"no {split} images: training needs both train and val items")
    for split, paths in lists.items():
        (out_dir / f"{split}.txt").write_text("\n".join(paths) + "\n")
    data = {
        "path": str(out_dir.resolve()),
        "train": "train.txt",
        "val": "val.txt",
        "test": "test.txt",
        "names": dict(enumerate(classes)),
    }
    target = out_dir / "data.yaml"
    target.write_text(yaml.safe_dump(data, sort_keys=False))
    return target


def _remove_stale(out_dir: Path, written: set[Path]) -> None:
    """Drop links and labels left by an earlier layout (items renamed or removed since).

    Ultralytics reads the split lists, not the folders, but stale files would still confuse anyone
    browsing the dataset and keep growing with every rebuild.
    """
    for folder in ("images", "labels"):
        for path in (out_dir / folder).glob("*/*"):
            if path not in written:
                path.unlink()
