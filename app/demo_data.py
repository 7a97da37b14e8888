"""A small demo dataset made offline on first start, so a fresh clone shows a populated dashboard.

Where the photos come from, in order:

1. ``WMSTUDIO_DEMO_SOURCE`` pointing at a folder or label file: the user's own data, ingested as is;
   ``off`` disables the demo dataset (an empty dashboard then explains how to ingest);
   ``synthetic`` skips the provided data and always synthesises;
2. the provided ``data_dir/listings`` (real listing photos with labels), when present;
3. synthetic Rumah123 / 99.co marks drawn on procedurally made room scenes: works with no data,
   no network and no GPU, in a few seconds.

Whatever the source, the photos go through the normal :func:`wmstudio.data.ingest.ingest`, so the
dashboard reads the same manifest a user's ``wmstudio ingest`` would have written.
"""

from __future__ import annotations

import fcntl
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from wmstudio.data.manifest import MANIFEST_NAME, Manifest
from wmstudio.settings import Settings

log = logging.getLogger(__name__)

DEMO_SOURCE_ENV = "WMSTUDIO_DEMO_SOURCE"
DEMO_NAME = "demo"
DEMO_COUNT = 40
DEMO_SEED = 11
SPLITS = ("train", "val", "test")

Progress = Callable[[float, str], None]


def existing_datasets(datasets_dir: Path) -> list[Path]:
    """Dataset folders (those holding a manifest), sorted by name."""
    if not datasets_dir.is_dir():
        return []
    return sorted(p.parent for p in datasets_dir.glob(f"*/{MANIFEST_NAME}"))


def demo_source(settings: Settings) -> str:
    """The configured demo source: ``auto`` (default), ``off``, ``synthetic`` or a path."""
    value = settings.demo_source
    return str(value).strip() or "auto"


@contextmanager
def _lock(folder: Path) -> Iterator[None]:
    """Two dashboard sessions starting at once must not both generate (nor half-read) the demo."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".demo.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _synthetic_source(folder: Path, count: int, seed: int, progress: Progress) -> Path:
    """Write ``count`` synthetic photos plus a COCO file that :func:`ingest` reads."""
    from training.synth.compose import SynthConfig, SyntheticGenerator
    from training.synth.procedural import write_scenes

    folder.mkdir(parents=True, exist_ok=True)
    progress(0.05, "drawing procedural room scenes")
    scenes = write_scenes(folder / "scenes", count, seed=seed)
    # A few more clean photos than training uses, so the demo shows true negatives and false positives.
    generator = SyntheticGenerator("test", seed=seed, config=SynthConfig(p_rumah123=0.3, p_99co=0.3))
    images, annotations, notes = [], [], {}
    categories = {"rumah123": 1, "99co": 2}
    for index in range(count):
        drawn = generator.generate(scenes[index % len(scenes)])
        name = f"demo_{index:03d}.jpg"
        (folder / name).write_bytes(drawn.image_bytes)
        images.append({"id": index, "file_name": name, "width": drawn.width, "height": drawn.height})
        for box in drawn.boxes:
            x0, y0, x1, y1 = box.box
            annotations.append(
                {
                    "id": len(annotations),
                    "image_id": index,
                    "category_id": categories[box.label],
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                }
            )
        if drawn.other_marks:
            notes[name] = "other_mark"
        progress(0.05 + 0.75 * (index + 1) / count, f"drawing marks {index + 1}/{count}")
    coco = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i, "name": n} for n, i in categories.items()],
    }
    (folder / "demo.coco.json").write_text(json.dumps(coco))
    (folder / "notes.json").write_text(json.dumps(notes))
    return folder / "demo.coco.json"


def _finish_synthetic(manifest: Manifest, folder: Path, source: Path) -> None:
    """Mark synthetic items as such, note hard negatives, and give every item a seeded split."""
    notes = json.loads((source.parent / "notes.json").read_text())
    for index, key in enumerate(sorted(manifest.items)):
        item = manifest.items[key]
        item.source = "synthetic"
        name = Path(item.origin).name
        if notes.get(name) and "other_mark" not in item.notes:
            item.notes.append("other_mark")
        item.split = item.split or SPLITS[0 if index % 5 < 3 else 1 if index % 5 == 3 else 2]
    manifest.save(folder)


def _assign_splits(manifest: Manifest, folder: Path) -> None:
    """Real photos ingested as is have no split; the dashboard's split chart wants one."""
    changed = False
    for index, key in enumerate(sorted(manifest.items)):
        item = manifest.items[key]
        if item.split is None:
            item.split = SPLITS[0 if index % 5 < 3 else 1 if index % 5 == 3 else 2]
            changed = True
    if changed:
        manifest.save(folder)


def _sync_store(name: str, folder: Path) -> None:
    """Mirror the new dataset into the store when the store offers a sync (best effort)."""
    try:
        from app.dashboard_data import sync_dataset_to_store

        sync_dataset_to_store(name, folder)
    except Exception as exc:  # the dashboard still works from the manifest alone
        log.warning("demo dataset not mirrored into the store: %s", exc)


def ensure_demo_dataset(settings: Settings, progress: Progress | None = None) -> Path | None:
    """Return a dataset folder, generating the demo dataset when none exists yet.

    Returns None only when the demo is switched off (``WMSTUDIO_DEMO_SOURCE=off``) and there is
    no dataset: the dashboard then shows its empty state.
    """
    from wmstudio.data.ingest import ingest

    report = progress or (lambda fraction, text: None)
    datasets_dir = settings.datasets_dir
    found = existing_datasets(datasets_dir)
    if found:
        return found[0]
    choice = demo_source(settings)
    if choice.lower() in {"off", "none", "false", "0"}:
        return None
    with _lock(datasets_dir):
        found = existing_datasets(datasets_dir)  # another session may have made it meanwhile
        if found:
            return found[0]
        provided = settings.data_dir / "listings"
        if choice.lower() not in {"auto", "synthetic"}:
            source, name, synthetic = Path(choice).expanduser(), DEMO_NAME, False
        elif choice.lower() == "auto" and (provided / "labels.csv").exists():
            source, name, synthetic = provided, "listings", False
        else:
            source, name, synthetic = None, DEMO_NAME, True
        target = datasets_dir / name
        if synthetic:  # kept beside the datasets so each item's origin stays a real file
            source = _synthetic_source(settings.state_dir / "demo-source", DEMO_COUNT, DEMO_SEED, report)
        report(0.85, f"ingesting {source}")
        manifest, _ = ingest(source, target, name=name, max_pixels=settings.max_image_pixels)
        if synthetic:
            _finish_synthetic(manifest, target, source)
        else:
            _assign_splits(manifest, target)
        report(0.95, "mirroring into the store")
        _sync_store(name, target)
        report(1.0, f"demo dataset {name!r}: {len(manifest.items)} photos")
        log.info("demo dataset %s written to %s", name, target)
        return target
