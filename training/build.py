"""Build the training data: the real set's splits plus synthetic sets drawn on clean photos.

Leakage is avoided at every step: the Rumah123 template is estimated from real *train*
positives only; houses are split by house id so a house's four rooms share one split; the
synthetic val/test sets use fonts the train set never saw.
"""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from training.synth.compose import SynthConfig, SyntheticGenerator
from training.synth.fonts import font_fingerprint
from training.synth.template import WatermarkTemplate, estimate_template
from wmstudio.data.ingest import IMAGE_SUFFIXES
from wmstudio.data.manifest import Box, Item, Manifest, sha256_bytes

log = logging.getLogger(__name__)

DEFAULT_SYNTH_COUNTS = {"train": 1100, "val": 450, "test": 300}
GENERATOR_VERSION = 8  # bump when the generator's output or item ids change, so cached sets are rebuilt
HOUSE_SPLIT_SHARES = (("train", 0.8), ("val", 0.08), ("test", 0.12))


def house_split(path: Path, total_houses: int = 400) -> str:
    """Split clean house photos by house id (``<id>_<room>.jpg``), never by photo."""
    match = re.match(r"(\d+)_", path.name)
    house = int(match.group(1)) if match else hash(path.name) % total_houses
    position = (house % total_houses) / total_houses
    cumulative = 0.0
    for split, share in HOUSE_SPLIT_SHARES:
        cumulative += share
        if position < cumulative:
            return split
    return "test"


def template_from_manifest(manifest: Manifest, dataset_dir: Path, brand: str = "rumah123") -> WatermarkTemplate | None:
    """Estimate the brand's template from train-split positives with exactly one box."""
    samples = []
    for item in manifest.split("train"):
        boxes = [b for b in item.boxes if b.brand == brand]
        if item.brand == brand and len(boxes) == 1:
            x0, y0, x1, y1 = boxes[0].box
            samples.append((Image.open(dataset_dir / item.path).convert("RGB"), (x0, y0, x1 - x0, y1 - y0)))
    if len(samples) < 3:
        log.warning("only %d %s train positives: no template, procedural marks only", len(samples), brand)
        return None
    return estimate_template(samples)


def backgrounds_for(split: str, houses_dir: Path | None, real: Manifest | None, real_dir: Path | None) -> list[Path]:
    """Clean houses of the split plus, for every split, the real negatives of that split.

    Real negatives carry other agencies' marks: stamping a brand mark on them teaches the model
    that a photo can hold both, and the untouched ones stay hard negatives.
    """
    paths: list[Path] = []
    if houses_dir is not None and houses_dir.is_dir():
        photos = [p for p in sorted(houses_dir.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
        paths += [p for p in photos if house_split(p) == split]
    if real is not None and real_dir is not None:
        paths += [real_dir / item.path for item in real.split(split) if not item.watermarked]
    return paths


def build_synthetic(
    out_dir: Path,
    houses_dir: Path | None,
    real: Manifest | None = None,
    real_dir: Path | None = None,
    counts: dict[str, int] | None = None,
    seed: int = 0,
    extra_backgrounds: Sequence[Path] = (),
    config: SynthConfig | None = None,
) -> Manifest:
    """Generate the synthetic splits into ``out_dir`` and return their manifest."""
    counts = counts or DEFAULT_SYNTH_COUNTS
    config = config or SynthConfig()
    stamp = {
        "kind": "synthetic",
        "generator_version": GENERATOR_VERSION,
        # The renderings depend on the machine's fonts: a set cached before fonts were added or
        # removed is not what this machine would draw, so it is rebuilt.
        "fonts": font_fingerprint(),
        "glyph_variation": config.vary_glyphs,
        # Other changes only when there are some, so that the default recipe's cached sets
        # keep their stamp.
        **{name: value for name, value in config.changes().items() if name != "vary_glyphs"},
        "counts": counts,
        "seed": seed,
        "real_data_version": real.version() if real is not None else None,
        "backgrounds": str(houses_dir),
        "extra_backgrounds": len(extra_backgrounds),
    }
    if (out_dir / "manifest.json").exists():
        cached = Manifest.load(out_dir)
        if cached.reports and cached.reports[-1] == stamp:
            log.info("synthetic set at %s is up to date (same generator, counts and seed)", out_dir)
            return cached
    template = template_from_manifest(real, real_dir) if real is not None and real_dir else None
    template_mark = template.to_rgba() if template is not None else None
    if template is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        template_mark.save(out_dir / "rumah123_template.png")
    manifest = Manifest(name=out_dir.name)
    shutil.rmtree(out_dir / "images", ignore_errors=True)  # no stale renderings of an older build
    for split, count in counts.items():
        backgrounds = backgrounds_for(split, houses_dir, real, real_dir) + list(extra_backgrounds)
        if not backgrounds or count <= 0:
            continue
        generator = SyntheticGenerator(split, seed, template_mark if split == "train" else None, config)
        for index in tqdm(range(count), desc=f"synth {split}", unit="img"):
            background = backgrounds[(index * 7919 + seed) % len(backgrounds)]
            drawn = generator.generate(background)
            relative = Path("images") / split / f"{split}_{index:05d}.jpg"
            brands = sorted({b.label for b in drawn.boxes})
            item = Item(
                # Named by content, like real photos: caches keyed by item id (curation
                # predictions, AL features) stay right after a redraw.
                sha256=sha256_bytes(drawn.image_bytes),
                path=str(relative),
                width=drawn.width,
                height=drawn.height,
                brand=brands[0] if brands else None,
                boxes=[Box(b.label, [round(v, 1) for v in b.box]) for b in drawn.boxes],
                source="synthetic",
                origin=drawn.background,
                split=split,
                group=f"bg:{drawn.background}",
                notes=["other_mark"] if drawn.other_marks else [],
            )
            if not manifest.add(item):
                log.info("synthetic %s #%d is byte-identical to an earlier one: skipped", split, index)
                continue
            (out_dir / relative).parent.mkdir(parents=True, exist_ok=True)
            (out_dir / relative).write_bytes(drawn.image_bytes)
    manifest.reports.append(stamp)
    manifest.save(out_dir)
    return manifest
