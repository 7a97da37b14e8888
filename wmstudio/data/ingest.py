"""Ingest labelled photos from any supported layout into a canonical manifest.

Supported sources (auto-detected, or forced with ``fmt``):
- ``folders``: one sub-folder per class (``watermark/``, ``no_watermark/`` or brand names);
- ``csv``: a ``file,has_watermark,brand`` table (boxes from a ``*.coco.json`` beside it);
- ``coco``: a COCO detection JSON;
- ``yolo``: ``images/`` + ``labels/`` folders of YOLO txt files;
- ``labelstudio``: a Label Studio JSON export (RectangleLabels in percent).

Bad files never stop an ingest: each is skipped or normalised and listed in the report. So
does a label file that names a file outside its own folder, or a Label Studio image on another
host (:mod:`wmstudio.data.paths`): that item is skipped with a clear reason, the rest goes in.

Nothing a source says is dropped: a byte-identical copy of a stored photo adds its path and label
to the item's ``origins``, and copies labelled differently are counted as label conflicts, kept
until a reviewer decides (``wmstudio curate duplicates`` raises them as flags).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from wmstudio.atomic import atomic_write
from wmstudio.brands import BRANDS, normalise_brand
from wmstudio.data.manifest import Box, Item, Manifest, sha256_bytes
from wmstudio.data.paths import UnsafeReference, inside, labelstudio_image
from wmstudio.imaging import ImageError, decode_image

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
FORMATS = ("folders", "csv", "coco", "yolo", "labelstudio")
MIN_VISIBLE_BOX_FRACTION = 0.5


@dataclass
class RawRecord:
    """One labelled image as a source describes it, before validation."""

    file: Path
    brand: str | None
    boxes: list[tuple[str, list[float]]] = field(default_factory=list)  # (brand, x0,y0,x1,y1)
    boxes_relative: bool = False  # True when the box numbers are fractions of width/height
    error: UnsafeReference | None = None  # the source named a file it may not (reported, skipped)
    reference: str = ""  # the name as the label file wrote it (shown when refused)


@dataclass
class IngestReport:
    source: str
    format: str
    added: int = 0
    already_present: int = 0
    skipped: list[dict] = field(default_factory=list)
    normalised: list[dict] = field(default_factory=list)
    box_issues: list[dict] = field(default_factory=list)
    exact_copies: int = 0  # new paths whose bytes were already stored: kept as the item's origins
    label_conflicts: list[dict] = field(default_factory=list)  # copies with different labels: every path + label
    removed: list[str] = field(default_factory=list)  # with ``prune``: paths that left the source folder


class IngestError(ValueError):
    """The source as a whole cannot be read (unknown layout, malformed label file)."""


def detect_format(source: Path) -> str:
    if source.is_file():
        if source.suffix.lower() == ".csv":
            return "csv"
        if source.suffix.lower() == ".json":
            data = _read_json(source)
            return "coco" if isinstance(data, dict) and "images" in data else "labelstudio"
        raise IngestError(f"cannot tell the format of {source}")
    if (source / "labels").is_dir() and (source / "images").is_dir():
        return "yolo"
    if list(source.glob("*.csv")):
        return "csv"
    if list(source.glob("*.json")):
        return detect_format(sorted(source.glob("*.json"))[0])
    if any(p.is_dir() for p in source.iterdir()):
        return "folders"
    raise IngestError(f"{source} holds no recognised dataset layout")


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IngestError(f"{path.name} is not valid JSON: {exc}") from exc


def _record(root: Path, name: str, brand: str | None, boxes: list | None = None, relative: bool = False) -> RawRecord:
    """A record for ``root / name``, or one carrying the reason it may not be read."""
    try:
        return RawRecord(inside(root, name), brand, boxes or [], relative)
    except UnsafeReference as exc:
        return RawRecord(Path(str(name)), brand, [], relative, error=exc, reference=str(name))


def _found(root: Path, path: Path, brand: str | None, boxes: list | None = None, relative: bool = False) -> RawRecord:
    """A file found by walking ``root``: inside by construction unless a symbolic link leads out."""
    return _record(root, path.relative_to(root).as_posix(), brand, boxes, relative)


def _folder_records(root: Path, default_brand: str) -> Iterator[RawRecord]:
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        name = sub.name.lower()
        if name in {"watermark", "watermarked", "positive"}:
            brand: str | None = default_brand
        else:
            try:
                brand = normalise_brand(name)
            except ValueError as exc:
                raise IngestError(f"folder {sub.name!r}: {exc}") from exc
        for path in sorted(sub.rglob("*")):
            if path.is_file():
                yield _found(root, path, brand)


def _coco_boxes(coco_path: Path) -> dict[str, list[tuple[str, list[float]]]]:
    data = _read_json(coco_path)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise IngestError(f"{coco_path.name} is not a COCO file (no 'images' list)")
    categories = {c["id"]: c["name"] for c in data.get("categories", [])}
    files = {img["id"]: img["file_name"] for img in data["images"]}
    boxes: dict[str, list[tuple[str, list[float]]]] = {name: [] for name in files.values()}
    for ann in data.get("annotations", []):
        try:
            x, y, w, h = (float(v) for v in ann["bbox"])
            boxes[files[ann["image_id"]]].append((categories.get(ann["category_id"], "?"), [x, y, x + w, y + h]))
        except (KeyError, TypeError, ValueError) as exc:
            raise IngestError(f"{coco_path.name}: malformed annotation {ann!r}") from exc
    return boxes


def _csv_records(csv_path: Path) -> Iterator[RawRecord]:
    root = csv_path.parent
    coco_files = sorted(root.glob("*.json"))
    boxes = _coco_boxes(coco_files[0]) if coco_files else {}
    try:
        rows = list(csv.DictReader(csv_path.read_text().splitlines()))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise IngestError(f"{csv_path.name} cannot be read as CSV: {exc}") from exc
    if not rows or "file" not in rows[0]:
        raise IngestError(f"{csv_path.name} needs a header with at least 'file' and 'brand'")
    for row in rows:
        flag = (row.get("has_watermark") or "").strip()
        brand_text = (row.get("brand") or "").strip()
        try:
            brand = normalise_brand(brand_text) if flag != "0" else None
        except ValueError as exc:
            raise IngestError(f"{csv_path.name}: {exc}") from exc
        if flag == "1" and brand is None:
            raise IngestError(f"{csv_path.name}: {row['file']} is watermarked but has no brand")
        yield _record(root, row["file"] or "", brand, boxes.get(row["file"], []))


def _coco_records(coco_path: Path) -> Iterator[RawRecord]:
    for name, boxes in _coco_boxes(coco_path).items():
        brands = {b for b, _ in boxes}
        brand = sorted(brands)[0] if brands else None
        yield _record(coco_path.parent, name, brand, boxes)


def _yolo_records(root: Path) -> Iterator[RawRecord]:
    names = list(BRANDS)
    classes = root / "classes.txt"
    if classes.exists():
        names = [line.strip() for line in classes.read_text().splitlines() if line.strip()]
    for image in sorted((root / "images").rglob("*")):
        if not image.is_file():
            continue
        label = root / "labels" / image.relative_to(root / "images").with_suffix(".txt")
        boxes: list[tuple[str, list[float]]] = []
        if label.exists():
            for number, line in enumerate(label.read_text(errors="replace").splitlines(), 1):
                if not line.strip():
                    continue
                parts = line.split()
                try:
                    cls, cx, cy, w, h = int(parts[0]), *(float(v) for v in parts[1:5])
                    name = names[cls]
                except (ValueError, IndexError) as exc:
                    raise IngestError(f"{label.name}:{number}: malformed YOLO line {line!r}") from exc
                boxes.append((name, [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]))
        brand = boxes[0][0] if boxes else None
        yield _found(root, image, brand, boxes, relative=True)


def _labelstudio_records(export: Path, images_root: Path, label_studio_url: str) -> Iterator[RawRecord]:
    tasks = _read_json(export)
    if not isinstance(tasks, list):
        raise IngestError(f"{export.name} is not a Label Studio export (expected a list of tasks)")
    for task in tasks:
        try:
            ref = str(task["data"]["image"])
        except (KeyError, TypeError) as exc:
            raise IngestError(f"{export.name}: a task has no data.image") from exc
        try:
            path = labelstudio_image(ref, images_root, label_studio_url)
        except UnsafeReference as exc:
            yield RawRecord(Path(ref), None, error=exc, reference=ref)
            continue
        boxes: list[tuple[str, list[float]]] = []
        annotations = [a for a in task.get("annotations", []) if not a.get("was_cancelled")]
        for result in annotations[-1]["result"] if annotations else []:
            if result.get("type") != "rectanglelabels":
                continue
            v = result["value"]
            x, y, w, h = (float(v[k]) / 100 for k in ("x", "y", "width", "height"))
            boxes.append((v["rectanglelabels"][0], [x, y, x + w, y + h]))
        brand = boxes[0][0] if boxes else None
        yield RawRecord(path, brand, boxes, boxes_relative=True)


def iter_records(
    source: Path, fmt: str, default_brand: str = "rumah123", label_studio_url: str = ""
) -> Iterator[RawRecord]:
    if fmt == "folders":
        return _folder_records(source, default_brand)
    if fmt == "csv":
        return _csv_records(source if source.is_file() else sorted(source.glob("*.csv"))[0])
    if fmt == "coco":
        return _coco_records(source if source.is_file() else sorted(source.glob("*.json"))[0])
    if fmt == "yolo":
        return _yolo_records(source)
    if fmt == "labelstudio":
        export = source if source.is_file() else sorted(source.glob("*.json"))[0]
        return _labelstudio_records(export, export.parent, label_studio_url)
    raise IngestError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")


def _validate_boxes(record: RawRecord, width: int, height: int, report: IngestReport) -> list[Box]:
    kept: list[Box] = []
    for raw_brand, coords in record.boxes:
        x0, y0, x1, y1 = coords
        if record.boxes_relative:
            x0, x1, y0, y1 = x0 * width, x1 * width, y0 * height, y1 * height
        issue = {"file": str(record.file), "box": [x0, y0, x1, y1]}
        try:
            brand = normalise_brand(raw_brand)
        except ValueError as exc:
            report.box_issues.append({**issue, "action": "rejected", "reason": str(exc)})
            continue
        if brand is None or x1 <= x0 or y1 <= y0:
            report.box_issues.append({**issue, "action": "rejected", "reason": "empty box or no brand"})
            continue
        cx0, cy0, cx1, cy1 = max(0.0, x0), max(0.0, y0), min(float(width), x1), min(float(height), y1)
        visible = max(0.0, cx1 - cx0) * max(0.0, cy1 - cy0)
        if visible < MIN_VISIBLE_BOX_FRACTION * (x1 - x0) * (y1 - y0):
            report.box_issues.append({**issue, "action": "rejected", "reason": "box lies mostly outside the image"})
            continue
        if (cx0, cy0, cx1, cy1) != (x0, y0, x1, y1):
            report.box_issues.append({**issue, "action": "clipped", "reason": "box crossed the image border"})
        kept.append(Box(brand, [round(cx0, 2), round(cy0, 2), round(cx1, 2), round(cy1, 2)]))
    return kept


def store_image(data: bytes, dataset_dir: Path, max_pixels: int) -> tuple[str, str, int, int, str | None]:
    """Validate and store one image under its content hash.

    Returns (sha256, relative path, width, height, normalisation note or None). Files that are
    already upright 8-bit RGB JPEG/PNG are kept byte for byte; others are re-encoded as PNG.
    """
    decoded = decode_image(data, max_pixels=max_pixels)
    digest = sha256_bytes(data)
    plain = decoded.source_format in {"JPEG", "PNG"} and decoded.source_mode == "RGB" and not decoded.exif_rotated
    suffix = ".jpg" if decoded.source_format == "JPEG" else ".png"
    relative = Path("images") / digest[:2] / f"{digest}{suffix if plain else '.png'}"
    target = dataset_dir / relative
    if not target.exists():  # trustworthy: files appear whole (atomic_write) or not at all
        if plain:
            atomic_write(target, data)
        else:
            buffer = io.BytesIO()
            decoded.image.save(buffer, "PNG")
            atomic_write(target, buffer.getvalue())
    note = None
    if not plain:
        note = f"normalised from {decoded.source_format}/{decoded.source_mode}" + (
            " with EXIF rotation" if decoded.exif_rotated else ""
        )
    return digest, str(relative), decoded.width, decoded.height, note


def ingest(
    source: Path,
    dataset_dir: Path,
    fmt: str | None = None,
    name: str | None = None,
    max_pixels: int = 40_000_000,
    max_bytes: int = 50 * 1024 * 1024,
    default_brand: str = "rumah123",
    prune: bool = False,
    label_studio_url: str | None = None,
) -> tuple[Manifest, IngestReport]:
    """Ingest ``source`` into the dataset at ``dataset_dir`` (created or extended).

    ``prune`` makes the dataset mirror the source folder: paths under it that the source no
    longer lists (deleted, renamed, unreadable) leave the dataset, and an image with no path
    left goes with them. ``wmstudio curate PATH`` prunes, so a flag is never about a file that
    is gone; ``wmstudio ingest`` only adds.
    """
    source = Path(source)
    if not source.exists():
        raise IngestError(f"{source} does not exist")
    if label_studio_url is None:
        from wmstudio.settings import get_settings

        label_studio_url = get_settings().label_studio_url
    fmt = fmt or detect_format(source)
    manifest = Manifest.load_or_new(dataset_dir, name or dataset_dir.name)
    report = IngestReport(source=str(source), format=fmt)
    seen: set[str] = set()
    touched: set[str] = set()
    for record in iter_records(source, fmt, default_brand, label_studio_url):
        if record.error is not None:
            refused = {"file": record.reference, "code": record.error.code, "reason": record.error.message}
            report.skipped.append(refused)
            continue
        if record.file.suffix.lower() not in IMAGE_SUFFIXES and fmt in {"folders", "yolo"}:
            report.skipped.append({"file": str(record.file), "code": "not_an_image", "reason": "unsupported extension"})
            continue
        try:
            size = record.file.stat().st_size
            if size > max_bytes:
                raise ImageError("file_too_large", f"{size} bytes is over the {max_bytes}-byte limit")
            data = record.file.read_bytes()
            digest, relative, width, height, note = store_image(data, dataset_dir, max_pixels)
        except FileNotFoundError:
            report.skipped.append({"file": str(record.file), "code": "missing_file", "reason": "listed but not found"})
            continue
        except ImageError as exc:
            report.skipped.append({"file": str(record.file), "code": exc.code, "reason": exc.message})
            continue
        if note:
            report.normalised.append({"file": str(record.file), "note": note})
        boxes = _validate_boxes(record, width, height, report)
        brand = record.brand if record.brand is None else normalise_brand(record.brand)
        origin = os.path.abspath(record.file)
        known = digest in manifest.items and origin in manifest.items[digest].paths
        item = Item(digest, relative, width, height, brand, boxes, source="import", origin=origin)
        if manifest.add(item):
            report.added += 1
        else:
            report.already_present += 1
            report.exact_copies += not known
        seen.add(origin)
        touched.add(digest)
    if prune:
        report.removed = _prune(manifest, source, seen)
    for item in manifest.label_conflicts():
        if item.sha256 in touched:
            report.label_conflicts.append(
                {"sha256": item.sha256, "files": [{"file": o.path, "label": o.brand or "none"} for o in item.origins]}
            )
    resolved = str(source.resolve())
    if resolved not in manifest.sources:
        manifest.sources.append(resolved)
    manifest.reports.append(asdict(report))
    manifest.save(dataset_dir)
    _mirror_to_store(manifest, dataset_dir)
    return manifest, report


def _prune(manifest: Manifest, source: Path, seen: set[str]) -> list[str]:
    """Drop the origins under ``source``'s folder that this ingest did not read; returns their paths."""
    root = Path(os.path.abspath(source if source.is_dir() else source.parent))
    removed = []
    for key in sorted(manifest.items):
        item = manifest.items[key]
        gone = [o for o in item.origins if o.path not in seen and Path(o.path).is_relative_to(root)]
        if not gone:
            continue
        removed += [o.path for o in gone]
        item.origins = [o for o in item.origins if o not in gone]
        if not item.origins:
            del manifest.items[key]
        else:
            item.origin = item.origins[0].path
            if item.source == "import":  # the label in force is that of a file still there
                first = item.origins[0]
                item.brand, item.boxes = first.brand, [Box(b.brand, list(b.box)) for b in first.boxes]
    return removed


def _mirror_to_store(manifest: Manifest, dataset_dir: Path) -> None:
    """Mirror the dataset into the store (``store_sync_on_ingest``); a store failure never loses the ingest."""
    try:
        from wmstudio.store.sync import sync_after_ingest

        sync_after_ingest(manifest, dataset_dir)
    except Exception:
        logging.getLogger(__name__).exception("could not mirror %s into the store", dataset_dir)
