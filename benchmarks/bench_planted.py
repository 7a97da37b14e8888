"""Curation through the CLI on the provided listings with planted problems (issue #32's "done when").

Usage: python benchmarks/bench_planted.py [--seed 0] [--work DIR] [--json]

Builds, in a scratch folder, a copy of ``data_dir/listings`` (``labels.csv`` + COCO boxes) with:

- 5 exact copies: byte-identical files under new names, same label;
- 5 resized copies: 60-80 % size, JPEG quality 85, same label (boxes scaled);
- 3 conflicting-label copies of watermarked photos, labelled ``0``: two byte-identical, one resized;
- 6 flipped labels on other photos (3 watermarked ones labelled ``0``, their boxes dropped, as an
  annotator who missed the mark leaves them; 3 clean ones labelled ``rumah123``).

Then runs, as a user would, ``python -m cli.main curate duplicates DIR --json`` and
``curate labels DIR --json`` on a fresh dataset (a new state folder, the registry's champion) and
prints:

- duplicate pairs found (of 10): an (original, copy) pair counts when one duplicate flag lists
  both paths in ``files``;
- label conflicts found (of 3): a ``label_conflict`` flag lists both paths with their labels;
- labels lost: (path, label) pairs of ``labels.csv`` missing from the dataset's manifest;
- flipped labels: recall over the 6, precision over all ``label_issue`` flags; a flag is right
  when the label in force on the flagged image is wrong (flipped, or a conflict copy whose own
  label it is).

Exit status 0 when the targets hold: pairs >= 9/10, conflicts 3/3, no label lost, recall >= 0.8
at precision >= 0.7.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from wmstudio.data.manifest import Manifest  # noqa: E402
from wmstudio.settings import get_settings  # noqa: E402


@dataclass
class Planted:
    folder: Path
    exact: list[tuple[str, str]] = field(default_factory=list)  # (original path, copy path)
    resized: list[tuple[str, str]] = field(default_factory=list)
    conflicts: list[tuple[str, str]] = field(default_factory=list)
    flipped: set[str] = field(default_factory=set)
    labels: dict[str, str] = field(default_factory=dict)  # every file -> its label as planted


def _label(row: dict) -> str:
    return (row["brand"] or "rumah123") if row["has_watermark"] == "1" else "none"


def _resized(path: Path, scale: float) -> tuple[bytes, tuple[int, int]]:
    with Image.open(path) as image:
        small = image.convert("RGB").resize((round(image.width * scale), round(image.height * scale)), Image.LANCZOS)
    buffer = io.BytesIO()
    small.save(buffer, "JPEG", quality=85)
    return buffer.getvalue(), small.size


def plant(listings: Path, folder: Path, seed: int) -> Planted:
    """Copy the listings into ``folder`` and plant the problems; returns what was planted where."""
    shutil.copytree(listings, folder)
    rows = list(csv.DictReader((folder / "labels.csv").read_text().splitlines()))
    coco = json.loads((folder / "boxes.coco.json").read_text())
    image_ids = {image["file_name"]: image["id"] for image in coco["images"]}
    rng = random.Random(seed)
    positives = [r for r in rows if r["has_watermark"] == "1"]
    negatives = [r for r in rows if r["has_watermark"] != "1"]
    rng.shuffle(positives)
    rng.shuffle(negatives)
    planted = Planted(folder)

    def path(name: str) -> str:
        return os.path.abspath(folder / name)

    def add_copy(row: dict, name: str, data: bytes, label: str, scale: float | None) -> None:
        (folder / name).write_bytes(data)
        positive = label != "none"
        rows.append({"file": name, "has_watermark": "1" if positive else "0", "brand": label if positive else ""})
        with Image.open(folder / name) as image:
            width, height = image.size
        new_id = max(image_ids.values()) + 1
        image_ids[name] = new_id
        coco["images"].append({"id": new_id, "file_name": name, "width": width, "height": height})
        if not positive:
            return
        for ann in [a for a in coco["annotations"] if a["image_id"] == image_ids[row["file"]]]:
            box = [round(v * (scale or 1.0), 1) for v in ann["bbox"]]
            coco["annotations"].append({**ann, "id": len(coco["annotations"]) + 1, "image_id": new_id, "bbox": box})

    flipped = positives[:3] + negatives[:3]
    for row in flipped:
        if row["has_watermark"] == "1":
            row["has_watermark"], row["brand"] = "0", ""
            coco["annotations"] = [a for a in coco["annotations"] if a["image_id"] != image_ids[row["file"]]]
        else:
            row["has_watermark"], row["brand"] = "1", "rumah123"
        planted.flipped.add(path(row["file"]))
    for index, row in enumerate(positives[3:6]):  # watermarked photos copied with the label 0
        stem = Path(row["file"]).with_suffix("")
        if index < 2:
            name, data, scale = f"{stem}-conflict.jpg", (folder / row["file"]).read_bytes(), None
        else:
            scale = rng.uniform(0.6, 0.8)
            (data, _), name = _resized(folder / row["file"], scale), f"{stem}-conflict-small.jpg"
        add_copy(row, name, data, "none", scale)
        planted.conflicts.append((path(row["file"]), path(name)))
    untouched = positives[6:] + negatives[3:]
    rng.shuffle(untouched)
    for row in untouched[:5]:
        name = f"{Path(row['file']).with_suffix('')}-copy{Path(row['file']).suffix}"
        add_copy(row, name, (folder / row["file"]).read_bytes(), _label(row), None)
        planted.exact.append((path(row["file"]), path(name)))
    for row in untouched[5:10]:
        scale = rng.uniform(0.6, 0.8)
        name = f"{Path(row['file']).with_suffix('')}-small.jpg"
        add_copy(row, name, _resized(folder / row["file"], scale)[0], _label(row), scale)
        planted.resized.append((path(row["file"]), path(name)))
    with (folder / "labels.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, ["file", "has_watermark", "brand"])
        writer.writeheader()
        writer.writerows(rows)
    (folder / "boxes.coco.json").write_text(json.dumps(coco))
    planted.labels = {path(r["file"]): _label(r) for r in rows}
    return planted


def curate(command: str, folder: Path, state: Path) -> tuple[list[dict], str]:
    """One CLI run as a user types it; returns the JSON flags and the notes (stderr)."""
    extra = ["--no-gallery"] if command == "duplicates" else []
    env = {k: v for k, v in os.environ.items() if k != "WMSTUDIO_DATABASE_URL"}
    env |= {"WMSTUDIO_STATE_DIR": str(state), "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "curate", command, str(folder), "--json", *extra],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"curate {command} failed ({done.returncode}):\n{done.stderr}")
    return json.loads(done.stdout), done.stderr


def score(planted: Planted, duplicates: list[dict], labels: list[dict], manifest: Manifest) -> dict:
    groups = [set(r["files"]) for r in duplicates if r["kind"] in ("exact_duplicate", "near_duplicate")]
    pairs = planted.exact + planted.resized

    def found(pair: tuple[str, str]) -> bool:
        return any(set(pair) <= group for group in groups)

    conflict_flags = [
        {(x["file"], x["label"]) for x in r["labels"]} for r in duplicates if r["kind"] == "label_conflict"
    ]
    conflicts = sum(
        any({(a, planted.labels[a]), (b, planted.labels[b])} <= flag for flag in conflict_flags)
        for a, b in planted.conflicts
    )
    kept = {(path, label or "none") for item in manifest.items.values() for path, label in item.labelled_paths()}
    lost = sorted(p for p, label in planted.labels.items() if (p, label) not in kept)
    wrong = planted.flipped | {copy for _, copy in planted.conflicts}
    issues = [r for r in labels if r["kind"] == "label_issue"]
    flagged = {r["file"] for r in issues}
    return {
        "pairs_found": sum(map(found, pairs)),
        "pairs": len(pairs),
        "exact_found": sum(map(found, planted.exact)),
        "resized_found": sum(map(found, planted.resized)),
        "conflicts_found": conflicts,
        "conflicts": len(planted.conflicts),
        "conflict_flags": len(conflict_flags),
        "labels_lost": len(lost),
        "lost": lost,
        "flipped": len(planted.flipped),
        "flipped_found": len(flagged & planted.flipped),
        "label_issue_flags": len(flagged),
        "label_issue_right": len(flagged & wrong),
        "recall": len(flagged & planted.flipped) / len(planted.flipped),
        "precision": len(flagged & wrong) / len(flagged) if flagged else 1.0,
    }


def targets_met(result: dict) -> dict[str, bool]:
    return {
        "pairs >= 9/10": result["pairs_found"] >= 9,
        "conflicts 3/3": result["conflicts_found"] == result["conflicts"],
        "no label lost": result["labels_lost"] == 0,
        "recall >= 0.8 at precision >= 0.7": result["recall"] >= 0.8 and result["precision"] >= 0.7,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0, help="which photos get which problem")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder, kept (default: a temporary one)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    listings = get_settings().data_dir / "listings"
    if not (listings / "labels.csv").exists():
        print(f"provided listings not found at {listings}; set WMSTUDIO_DATA_DIR", file=sys.stderr)
        return 2
    work = Path(args.work or tempfile.mkdtemp(prefix="wmstudio-bench-planted-")).resolve()
    folder, state = work / "planted-listings", work / "state"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.rmtree(state, ignore_errors=True)
    planted = plant(listings, folder, args.seed)
    duplicates, dup_notes = curate("duplicates", folder, state)
    labels, label_notes = curate("labels", folder, state)
    manifest = Manifest.load(state / "datasets" / folder.name)
    result = score(planted, duplicates, labels, manifest)
    met = targets_met(result)
    if args.json:
        print(json.dumps({**result, "targets": met}, indent=1))
    else:
        print(
            f"planted set (seed {args.seed}): {len(planted.labels) - 13} listings + 13 copies "
            f"(5 exact, 5 resized, 3 with a conflicting label), {result['flipped']} flipped labels; "
            f"{len(manifest.items)} stored images"
        )
        print(
            f"duplicate pairs found: {result['pairs_found']}/{result['pairs']} "
            f"(exact {result['exact_found']}/5, resized {result['resized_found']}/5)"
        )
        found, planted_conflicts = result["conflicts_found"], result["conflicts"]
        print(f"label conflicts found: {found}/{planted_conflicts} ({result['conflict_flags']} flags)")
        print(f"labels lost from the manifest: {result['labels_lost']}")
        print(
            f"flipped labels: recall {result['flipped_found']}/{result['flipped']} = {result['recall']:.2f}, "
            f"precision {result['label_issue_right']}/{result['label_issue_flags']} = {result['precision']:.2f}"
        )
        for line in (dup_notes + label_notes).splitlines():
            if line and not line.startswith(("INFO", "WARNING")):
                print(f"  {line}")
        print("targets: " + ", ".join(f"{name} {'ok' if ok else 'MISSED'}" for name, ok in met.items()))
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if all(met.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
