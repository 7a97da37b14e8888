"""How well does curation find problems we planted on purpose? Precision and recall per problem type.

Usage: python benchmarks/bench_curation.py [--synthetic 300] [--seed 0] [--work DIR] [--fastdup]
       [--unseen-fonts] [--no-model] [--json]

1. Base dataset: the real listings (``data_dir/listings``, ingested into a scratch copy) plus
   ``--synthetic`` photos drawn by the project's generator on clean photos of the val/test
   houses, which the detector never saw; the marks use the training generator's fonts and
   Rumah123 template (in-distribution, like a portal's own listings) or, with
   ``--unseen-fonts``, the test-split fonts. Without the provided data, procedural rooms stand
   in for the houses.
2. Planted problems, each on different images: 10% of the images get a flipped image label
   (mark ↔ no mark, boxes dropped or absent as an annotator would leave them); 10% of the
   remaining positives each lose a box (missing), get a box shifted by 50-100% of its size
   (shifted), or get the other brand (wrong brand, image label included); 3% exact copies
   (same pixels, re-encoded losslessly), 3% resized copies (0.5-0.8×) and 3% re-compressed
   copies (JPEG quality 30-60) of untouched images, some in another split (leakage); four
   outliers (blank, noise, a document, a floor plan).
3. The curation runs exactly as ``wmstudio curate duplicates`` / ``labels`` do, into a scratch
   SQLite store, with the registry's champion model for the label and box checks.

A flag is a true positive when its image carries a planted problem of that kind (for duplicates:
the flagged image and its planted partner share the reported cluster). Several plantings
(``--seeds``) are added up, because the real set alone holds few problems per planting. P@N is
the precision among the N best-ranked flags, N being the number planted: what a reviewer who
works down the ranked list sees. Images with a wrong image label also lack the right boxes, so
the box ground truth includes the flipped positives.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw

from curation.dataset import CurationDataset
from curation.run import run_duplicates, run_labels
from training.build import house_split, template_from_manifest
from training.synth.compose import SyntheticGenerator
from training.synth.procedural import write_scenes
from wmstudio.brands import BRANDS
from wmstudio.data.ingest import IMAGE_SUFFIXES, ingest
from wmstudio.data.manifest import Box, Item, Manifest, sha256_bytes
from wmstudio.data.splits import assign_splits
from wmstudio.settings import get_settings

SPLITS = (("train", 0.6), ("val", 0.15), ("test", 0.25))


@dataclass
class Truth:
    flipped: set[str] = field(default_factory=set)
    missing: set[str] = field(default_factory=set)
    shifted: set[str] = field(default_factory=set)
    wrong_brand: set[str] = field(default_factory=set)
    lost_boxes: set[str] = field(default_factory=set)  # flipped positives: their boxes went too
    exact: list[tuple[str, str]] = field(default_factory=list)  # (original, copy)
    resized: list[tuple[str, str]] = field(default_factory=list)
    recompressed: list[tuple[str, str]] = field(default_factory=list)
    outliers: set[str] = field(default_factory=set)


def _add_image(manifest: Manifest, folder: Path, data: bytes, suffix: str, item: Item) -> Item:
    digest = sha256_bytes(data)
    relative = Path("images") / digest[:2] / f"{digest}{suffix}"
    (folder / relative).parent.mkdir(parents=True, exist_ok=True)
    (folder / relative).write_bytes(data)
    item.sha256, item.path = digest, str(relative)
    manifest.add(item)
    return item


def build_base(folder: Path, count: int, seed: int, unseen_fonts: bool = False) -> Manifest:
    """Real listings (when present) plus ``count`` synthetic photos on houses the model never saw.

    By default the marks come from the training generator (its fonts and the Rumah123 template
    estimated from the real positives): a dataset of the kind the model was trained for, as a
    portal's own listings are. ``unseen_fonts`` draws them with the test-split fonts instead,
    which measures the curation with a model that is unsure of half the marks. Items come back
    with ``source`` "import" (real) or "synthetic".
    """
    settings = get_settings()
    listings = settings.data_dir / "listings"
    if (listings / "labels.csv").exists():
        manifest, _ = ingest(listings, folder, name="bench")
    else:
        manifest = Manifest(name="bench")
    rng = random.Random(seed)
    for key in sorted(manifest.items):
        manifest.items[key].split = rng.choices([s for s, _ in SPLITS], [w for _, w in SPLITS])[0]
    houses = settings.data_dir / "houses"
    if houses.is_dir():
        backgrounds = [
            p for p in sorted(houses.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES and house_split(p) != "train"
        ]
    else:
        backgrounds = write_scenes(folder.parent / "scenes", max(count, 1), seed)
    random.Random(seed).shuffle(backgrounds)
    template = None if unseen_fonts or not manifest.items else template_from_manifest(manifest, folder)
    generator = SyntheticGenerator(
        "test" if unseen_fonts else "train", seed, template.to_rgba() if template is not None else None
    )
    for background in backgrounds[:count]:
        drawn = generator.generate(background)
        brands = sorted({b.label for b in drawn.boxes})
        item = Item(
            "",
            "",
            drawn.width,
            drawn.height,
            brands[0] if brands else None,
            [Box(b.label, [round(v, 1) for v in b.box]) for b in drawn.boxes],
            source="synthetic",
            origin=f"synthetic:{background.name}",
            split=rng.choices([s for s, _ in SPLITS], [w for _, w in SPLITS])[0],
        )
        _add_image(manifest, folder, drawn.image_bytes, ".jpg", item)
    manifest.name = "bench"
    return manifest


def _copy(item: Item, data: bytes, suffix: str, scale: float, split: str, origin: str) -> tuple[bytes, str, Item]:
    clone = Item(
        "",
        "",
        round(item.width * scale),
        round(item.height * scale),
        item.brand,
        [Box(b.brand, [round(v * scale, 1) for v in b.box]) for b in item.boxes],
        source=item.source,
        origin=origin,
        split=split,
    )
    return data, suffix, clone


def _encode(image: Image.Image, fmt: str, **options: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _outlier_images(seed: int) -> list[tuple[str, Image.Image]]:
    rng = random.Random(seed)
    blank = Image.new("RGB", (640, 480), (250, 250, 250))
    noise = Image.frombytes("RGB", (640, 480), bytes(rng.getrandbits(8) for _ in range(640 * 480 * 3)))
    document = Image.new("RGB", (600, 800), "white")
    draw = ImageDraw.Draw(document)
    for line in range(30):
        draw.rectangle([40, 40 + line * 24, 40 + rng.randint(200, 520), 52 + line * 24], fill=(20, 20, 20))
    plan = Image.new("RGB", (800, 600), "white")
    draw = ImageDraw.Draw(plan)
    for _ in range(14):
        x, y = rng.randint(20, 700), rng.randint(20, 500)
        draw.rectangle([x, y, x + rng.randint(40, 200), y + rng.randint(40, 200)], outline=(0, 0, 0), width=3)
    return [("blank", blank), ("noise", noise), ("document", document), ("floorplan", plan)]


def plant(manifest: Manifest, folder: Path, seed: int) -> Truth:
    rng = random.Random(seed + 1)
    truth = Truth()
    keys = sorted(manifest.items)
    rng.shuffle(keys)
    present = sorted({i.brand for i in manifest.items.values() if i.brand}) or ["rumah123"]
    n_flip = round(0.10 * len(keys))
    for key in keys[:n_flip]:
        item = manifest.items[key]
        if item.brand is None:
            item.brand = rng.choice(present)
        else:
            item.brand, item.boxes = None, []
            truth.lost_boxes.add(key)
        truth.flipped.add(key)
    rest = keys[n_flip:]
    positives = [k for k in rest if manifest.items[k].brand and manifest.items[k].boxes]
    n_box = max(1, round(0.10 * len(positives)))
    for key in positives[:n_box]:
        boxes = manifest.items[key].boxes
        boxes.pop(rng.randrange(len(boxes)))
        truth.missing.add(key)
    for key in positives[n_box : 2 * n_box]:
        item = manifest.items[key]
        box = item.boxes[rng.randrange(len(item.boxes))]
        x0, y0, x1, y1 = box.box
        w, h = x1 - x0, y1 - y0
        dx, dy = rng.choice([(1, 0), (-1, 0), (0, 1), (0, -1)])
        shift = rng.uniform(0.5, 1.0)
        nx0 = min(max(0.0, x0 + dx * shift * w), item.width - w)
        ny0 = min(max(0.0, y0 + dy * shift * h), item.height - h)
        box.box = [round(nx0, 1), round(ny0, 1), round(nx0 + w, 1), round(ny0 + h, 1)]
        truth.shifted.add(key)
    for key in positives[2 * n_box : 3 * n_box]:
        item = manifest.items[key]
        other = next(b for b in BRANDS if b != item.brand)
        item.brand = other
        for box in item.boxes:
            box.brand = other
        truth.wrong_brand.add(key)
    touched = truth.flipped | truth.missing | truth.shifted | truth.wrong_brand
    clean = [k for k in rest if k not in touched]
    n_dup = max(1, round(0.03 * len(keys)))
    splits = [s for s, _ in SPLITS]
    for kind, originals in (
        ("exact", clean[:n_dup]),
        ("resized", clean[n_dup : 2 * n_dup]),
        ("recompressed", clean[2 * n_dup : 3 * n_dup]),
    ):
        for key in originals:
            item = manifest.items[key]
            with Image.open(folder / item.path) as source:
                pixels = source.convert("RGB")
            split = rng.choice(splits)
            origin = f"{kind}-copy-of:{Path(item.origin).name}"
            if kind == "exact":
                data, suffix, clone = _copy(item, _encode(pixels, "PNG"), ".png", 1.0, split, origin)
            elif kind == "resized":
                scale = rng.uniform(0.5, 0.8)
                small = pixels.resize((round(pixels.width * scale), round(pixels.height * scale)), Image.LANCZOS)
                data, suffix, clone = _copy(item, _encode(small, "JPEG", quality=85), ".jpg", scale, split, origin)
                clone.width, clone.height = small.size
            else:
                quality = rng.randint(30, 60)
                data, suffix, clone = _copy(item, _encode(pixels, "JPEG", quality=quality), ".jpg", 1.0, split, origin)
            copy = _add_image(manifest, folder, data, suffix, clone)
            getattr(truth, kind).append((key, copy.sha256))
    for name, image in _outlier_images(seed):
        item = Item(
            "", "", image.width, image.height, None, [], source="import", origin=f"outlier:{name}", split="train"
        )
        truth.outliers.add(_add_image(manifest, folder, _encode(image, "PNG"), ".png", item).sha256)
    return truth


def looks_identical(a: Path, b: Path, tolerance: float = 6.0) -> bool:
    """An independent check of a duplicate flag: 64×64 grey thumbnails differ by at most ``tolerance`` levels."""
    thumbs = []
    for path in (a, b):
        with Image.open(path) as image:
            thumbs.append(image.convert("L").resize((64, 64), Image.BILINEAR).tobytes())
    return sum(abs(x - y) for x, y in zip(*thumbs, strict=True)) / len(thumbs[0]) <= tolerance


def genuine_unplanted(duplicates: list, dataset: CurationDataset, truth: Truth) -> set[str]:
    """Flagged images outside any planted pair that really are copies of their cluster's keeper.

    The base data has duplicates of its own (the Houses dataset reuses a few photos across houses
    and rooms, so two synthetic photos can share a background under different marks); flags on
    those are correct, and the precision in the table counts them so (the strict figure is printed
    beside it).
    """
    planted = {k for pairs in (truth.exact, truth.resized, truth.recompressed) for pair in pairs for k in pair}
    houses = get_settings().data_dir / "houses"

    def source(key: str) -> Path:
        # A synthetic photo is its background plus a drawn mark: compare the backgrounds.
        origin = dataset.manifest.items[key].origin
        if origin.startswith("synthetic:") and (houses / origin.split(":", 1)[1]).exists():
            return houses / origin.split(":", 1)[1]
        return dataset.path_of(key)

    genuine = set()
    for finding in duplicates:
        if finding.kind == "outlier" or finding.key in planted:
            continue
        keeper = finding.details.get("keeper")
        if keeper and looks_identical(source(finding.key), source(keeper)):
            genuine.add(finding.key)
    return genuine


def _pr(found: set[str], truth: set[str]) -> tuple[float, float]:
    tp = len(found & truth)
    return (tp / len(found) if found else 1.0), (tp / len(truth) if truth else 1.0)


def _row(
    name: str, planted: int, found: int, flagged: int | None = None, correct: int | None = None, top: int | None = None
) -> dict:
    """Counts, so that rows of several seeds add up.

    precision = correct / flagged, recall = found / planted, and ``top``: how many of the
    ``planted`` best-ranked flags are right (precision at N, what a reviewer working down the
    ranked list sees).
    """
    return {"problem": name, "planted": planted, "found": found, "flagged": flagged, "correct": correct, "top": top}


def _ranked_row(name: str, truth: set[str], findings: list) -> dict:
    ranked = [f.key for f in sorted(findings, key=lambda f: -f.score)]
    row = _set_row(name, truth, set(ranked))
    row["top"] = len(set(ranked[: len(truth)]) & truth)
    return row


def _set_row(name: str, truth: set[str], flags: set[str], with_precision: bool = True) -> dict:
    hits = len(flags & truth)
    return _row(name, len(truth), hits, len(flags) if with_precision else None, hits if with_precision else None)


def evaluate(
    duplicates: list, labels: list, truth: Truth, genuine: set[str] | None = None, unseen: set[str] | None = None
) -> list[dict]:
    """Count rows per problem type.

    ``genuine``: flagged images verified to be real (unplanted) duplicates; they count as correct.
    ``unseen``: images the detector was not trained on (the project's real test split).
    """
    genuine = genuine or set()
    groups: dict[str, set[str]] = {}
    for finding in duplicates:
        if finding.group:
            groups.setdefault(finding.group, set()).update({finding.key, finding.details.get("keeper", "")})

    def dup_row(name: str, kind: str, pairs: list[tuple[str, str]], all_pairs: list, precision: bool = True) -> dict:
        flagged = [f for f in duplicates if f.kind == kind]
        partner = {a: b for a, b in all_pairs} | {b: a for a, b in all_pairs}
        correct = [f for f in flagged if partner.get(f.key) in groups.get(f.group or "", set()) or f.key in genuine]
        found = sum(
            any(f.kind == kind and f.key in pair and set(pair) <= groups.get(f.group or "", set()) for f in duplicates)
            for pair in pairs
        )
        return _row(name, len(pairs), found, len(flagged) if precision else None, len(correct) if precision else None)

    near = truth.resized + truth.recompressed
    rows = [
        dup_row("exact duplicates", "exact_duplicate", truth.exact, truth.exact),
        dup_row("near duplicates (resized + re-compressed)", "near_duplicate", near, near),
        dup_row("  resized copies", "near_duplicate", truth.resized, near, precision=False),
        dup_row("  re-compressed copies", "near_duplicate", truth.recompressed, near, precision=False),
        _set_row("outliers", truth.outliers, {f.key for f in duplicates if f.kind == "outlier"}),
    ]
    label_flags = {f.key for f in labels if f.kind == "label_issue"}
    label_findings = [f for f in labels if f.kind == "label_issue"]
    rows.append(
        _ranked_row("wrong image labels (flipped + wrong brand)", truth.flipped | truth.wrong_brand, label_findings)
    )
    rows.append(_set_row("  flipped labels", truth.flipped, label_flags & truth.flipped, with_precision=False))
    if unseen is not None:
        rows.append(_set_row("  flipped, image unseen by the detector", truth.flipped & unseen, label_flags, False))
    rows.append(_set_row("  wrong brand (image label)", truth.wrong_brand, label_flags, with_precision=False))
    box_flags = {f.key for f in labels if f.kind == "box_issue"}
    wrong_boxes = truth.missing | truth.shifted | truth.wrong_brand | truth.lost_boxes
    rows.append(_ranked_row("box issues (all planted)", wrong_boxes, [f for f in labels if f.kind == "box_issue"]))
    for name, keys in (
        ("  missing boxes", truth.missing),
        ("  shifted boxes", truth.shifted),
        ("  wrong-brand boxes", truth.wrong_brand),
        ("  flipped positives (boxes gone)", truth.lost_boxes),
    ):
        rows.append(_set_row(name, keys, box_flags, with_precision=False))
    return rows


def add_rows(total: list[dict] | None, rows: list[dict]) -> list[dict]:
    if total is None:
        return [dict(row) for row in rows]
    for mine, theirs in zip(total, rows, strict=True):
        for key in ("planted", "found", "flagged", "correct", "top"):
            if mine[key] is not None:
                mine[key] += theirs[key]
    return total


def with_rates(rows: list[dict]) -> list[dict]:
    out = []
    for row in rows:
        precision = None
        if row["flagged"] is not None:
            precision = row["correct"] / row["flagged"] if row["flagged"] else 1.0
        recall = row["found"] / row["planted"] if row["planted"] else None
        at_n = row["top"] / row["planted"] if row["top"] is not None and row["planted"] else None
        out.append({**row, "precision": precision, "recall": recall, "precision_at_n": at_n})
    return out


def print_table(title: str, rows: list[dict]) -> None:
    print(f"\n{title}")
    print(f"{'problem':<46} {'planted':>7} {'found':>5} {'flagged':>7} {'precision':>9} {'recall':>6} {'P@N':>5}")
    for row in rows:
        flagged = "" if row["flagged"] is None else str(row["flagged"])
        precision = "" if row["precision"] is None else f"{row['precision']:.2f}"
        recall = "-" if row["recall"] is None else f"{row['recall']:.2f}"
        at_n = "" if row["precision_at_n"] is None else f"{row['precision_at_n']:.2f}"
        print(
            f"{row['problem']:<46} {row['planted']:>7} {row['found']:>5} {flagged:>7} {precision:>9} {recall:>6} "
            f"{at_n:>5}"
        )


def apply_project_splits(manifest: Manifest, folder: Path) -> set[str]:
    """Give the real images the project's splits (``training.pipeline.prepare_real``, seed 0).

    The detector was trained on the real train split and tuned on val, so only the test images
    are unseen by it: label checks on them are the honest case. Returns their keys.
    """
    real = Manifest(name="listings", items={k: i for k, i in manifest.items.items() if i.source == "import"})
    if not real.items:
        return set()
    assign_splits(real, folder, seed=0)
    return {k for k, i in real.items.items() if i.split == "test"}


def run_once(args: argparse.Namespace, seed: int, work: Path, backends: list[str]) -> dict:
    settings = get_settings()
    folder = work / f"bench-s{seed}"
    shutil.rmtree(folder, ignore_errors=True)
    url = f"sqlite:///{work / f'bench-s{seed}.db'}"
    (work / f"bench-s{seed}.db").unlink(missing_ok=True)
    manifest = build_base(folder, args.synthetic, seed, args.unseen_fonts)
    unseen = apply_project_splits(manifest, folder)
    base_count = len(manifest.items)
    real = sum(1 for i in manifest.items.values() if i.source == "import")
    truth = plant(manifest, folder, seed)
    manifest.save(folder)
    dataset = CurationDataset(f"bench-s{seed}", folder, manifest)
    print(
        f"seed {seed}: {base_count} images ({real} real, {base_count - real} synthetic) + "
        f"{len(manifest.items) - base_count} planted copies and outliers",
        file=sys.stderr,
    )
    labels_run = None
    result: dict = {"images": len(manifest.items), "rows": {}, "notes": {}, "timings": {}}
    for backend in backends:
        started = time.perf_counter()
        dup_run = run_duplicates(dataset, settings, backend, url, None)
        result["timings"][f"duplicates ({backend})"] = time.perf_counter() - started
        if labels_run is None:
            started = time.perf_counter()
            labels_run = run_labels(dataset, settings, url, use_detector=not args.no_model)
            result["timings"]["labels"] = time.perf_counter() - started
        genuine = genuine_unplanted(dup_run.findings, dataset, truth)
        result["rows"][backend] = evaluate(dup_run.findings, labels_run.findings, truth, genuine, unseen)
        result["notes"][backend] = [
            *dup_run.notes,
            *labels_run.notes,
            f"{len(genuine)} duplicate flags on unplanted images verified as real duplicates in the base data",
        ]
    if args.work is None:
        shutil.rmtree(folder, ignore_errors=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--synthetic", type=int, default=None, help="synthetic photos added (default: 0 with real data)"
    )
    parser.add_argument("--seeds", type=int, default=5, help="plantings to add up (different images each time)")
    parser.add_argument("--seed", type=int, default=0, help="first seed")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder, kept (default: a temporary one)")
    parser.add_argument("--fastdup", action="store_true", help="also run the fastdup backend (needs its venv)")
    parser.add_argument("--no-model", action="store_true", help="label checks without the detector")
    parser.add_argument(
        "--unseen-fonts", action="store_true", help="draw the synthetic marks with fonts the model never saw"
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    if args.synthetic is None:
        has_real = (get_settings().data_dir / "listings" / "labels.csv").exists()
        args.synthetic = 0 if has_real else 300

    work = args.work or Path(tempfile.mkdtemp(prefix="wmstudio-bench-curation-"))
    work.mkdir(parents=True, exist_ok=True)
    backends = ["imagehash"] + (["fastdup"] if args.fastdup else [])
    totals: dict[str, list[dict] | None] = dict.fromkeys(backends)
    notes: dict[str, list[str]] = {b: [] for b in backends}
    timings: dict[str, float] = {}
    images = 0
    for seed in range(args.seed, args.seed + args.seeds):
        result = run_once(args, seed, work, backends)
        images += result["images"]
        for backend in backends:
            totals[backend] = add_rows(totals[backend], result["rows"][backend])
            notes[backend] = result["notes"][backend]  # the last seed's, as an example
        for name, seconds in result["timings"].items():
            timings[name] = timings.get(name, 0.0) + seconds
    report = {
        "seeds": list(range(args.seed, args.seed + args.seeds)),
        "synthetic_per_seed": args.synthetic,
        "images_total": images,
        "runs": {b: {"rows": with_rates(totals[b] or []), "notes_last_seed": notes[b]} for b in backends},
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
    }
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print(
            f"{args.seeds} plantings (seeds {args.seed}..{args.seed + args.seeds - 1}), {images} images in all, "
            f"{args.synthetic} synthetic photos per planting"
        )
        for backend, run in report["runs"].items():
            print_table(f"duplicates backend: {backend}", run["rows"])
            for note in run["notes_last_seed"]:
                print(f"  {note}")
        print("\ntimings (all seeds): " + ", ".join(f"{k} {v:.1f} s" for k, v in report["timings_s"].items()))
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
