"""Exploratory data analysis of a manifest: JSON numbers plus PNG plots.

The dashboard reuses both (``eda.json`` for its cards, the PNGs where a chart cannot be drawn
live), so the numbers a reviewer sees are the ones an engineer printed.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from wmstudio.data.manifest import Manifest
from wmstudio.data.splits import near_duplicate_groups, perceptual_hash

HEATMAP_BINS = 20


def summarise(manifest: Manifest, dataset_dir: Path) -> dict:
    items = list(manifest.items.values())
    brands = Counter(item.brand or "none" for item in items)
    widths = np.array([item.width for item in items], dtype=float)
    heights = np.array([item.height for item in items], dtype=float)
    boxes = [(item, box) for item in items for box in item.boxes]
    rel_w = [(b.box[2] - b.box[0]) / i.width for i, b in boxes]
    rel_h = [(b.box[3] - b.box[1]) / i.height for i, b in boxes]
    hashes = {item.sha256: perceptual_hash(dataset_dir / item.path) for item in items}
    groups = near_duplicate_groups(hashes)
    group_sizes = Counter(groups.values())
    duplicates = sum(size - 1 for size in group_sizes.values() if size > 1)
    positives = sum(1 for item in items if item.watermarked)
    notes = []
    if items and positives / len(items) < 0.3:
        notes.append(
            f"imbalanced: {positives} of {len(items)} photos are watermarked "
            f"({positives / len(items):.0%}); oversample positives or add synthetic ones"
        )
    for brand in ("rumah123", "99co"):
        if brands.get(brand, 0) == 0:
            notes.append(f"no real {brand} examples: the model relies on synthetic renderings for it")
    if duplicates:
        notes.append(f"{duplicates} near-duplicate photos: splits are grouped so they never straddle train/test")

    def stats(values: np.ndarray | list) -> dict:
        array = np.asarray(values, dtype=float)
        if array.size == 0:
            return {}
        return {"min": float(array.min()), "median": float(np.median(array)), "max": float(array.max())}

    return {
        "dataset": manifest.name,
        "data_version": manifest.version(),
        "images": len(items),
        "watermarked": positives,
        "brands": dict(brands),
        "splits": dict(Counter(item.split or "unassigned" for item in items)),
        "sources": dict(Counter(item.source for item in items)),
        "width": stats(widths),
        "height": stats(heights),
        "aspect_ratio": stats(widths / np.maximum(heights, 1)),
        "boxes": len(boxes),
        "box_width_rel": stats(rel_w),
        "box_height_rel": stats(rel_h),
        "near_duplicate_images": duplicates,
        "duplicate_groups": sum(1 for size in group_sizes.values() if size > 1),
        "notes": notes,
    }


def box_heatmap(manifest: Manifest) -> np.ndarray:
    grid = np.zeros((HEATMAP_BINS, HEATMAP_BINS))
    for item in manifest.items.values():
        for box in item.boxes:
            x0, y0, x1, y1 = box.box
            c0, c1 = int(x0 / item.width * HEATMAP_BINS), int(np.ceil(x1 / item.width * HEATMAP_BINS))
            r0, r1 = int(y0 / item.height * HEATMAP_BINS), int(np.ceil(y1 / item.height * HEATMAP_BINS))
            grid[r0:r1, c0:c1] += 1
    return grid


def plot_eda(manifest: Manifest, summary: dict, out_dir: Path) -> dict[str, str]:
    """Class balance, size scatter, aspect histogram and box-position heatmap PNGs."""
    out_dir.mkdir(parents=True, exist_ok=True)
    items = list(manifest.items.values())
    plots: dict[str, str] = {}

    fig, ax = plt.subplots(figsize=(4.5, 3.2), dpi=100)
    labels, counts = zip(*sorted(summary["brands"].items()), strict=True) if summary["brands"] else ((), ())
    ax.bar(labels, counts, color=["#4c72b0", "#dd8452", "#55a868"][: len(labels)])
    ax.set(title="Photos per label", ylabel="photos")
    fig.tight_layout()
    fig.savefig(out_dir / "class_balance.png")
    plt.close(fig)
    plots["class_balance"] = "class_balance.png"

    fig, ax = plt.subplots(figsize=(4.5, 3.6), dpi=100)
    for brand in sorted({item.brand or "none" for item in items}):
        chosen = [item for item in items if (item.brand or "none") == brand]
        ax.scatter([i.width for i in chosen], [i.height for i in chosen], s=12, label=brand, alpha=0.7)
    ax.set(title="Image sizes", xlabel="width (px)", ylabel="height (px)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_dir / "image_sizes.png")
    plt.close(fig)
    plots["image_sizes"] = "image_sizes.png"

    fig, ax = plt.subplots(figsize=(4.5, 3.2), dpi=100)
    ax.hist([i.width / max(i.height, 1) for i in items], bins=20, color="#4c72b0")
    ax.set(title="Aspect ratios (w/h)", xlabel="aspect ratio", ylabel="photos")
    fig.tight_layout()
    fig.savefig(out_dir / "aspect_ratios.png")
    plt.close(fig)
    plots["aspect_ratios"] = "aspect_ratios.png"

    fig, ax = plt.subplots(figsize=(4.2, 3.6), dpi=100)
    image = ax.imshow(box_heatmap(manifest), cmap="magma", extent=(0, 1, 1, 0))
    ax.set(title="Where the marks are", xlabel="x / width", ylabel="y / height")
    fig.colorbar(image, ax=ax, label="boxes covering cell")
    fig.tight_layout()
    fig.savefig(out_dir / "box_heatmap.png")
    plt.close(fig)
    plots["box_heatmap"] = "box_heatmap.png"
    return plots


def run_eda(manifest: Manifest, dataset_dir: Path, out_dir: Path) -> dict:
    summary = summarise(manifest, dataset_dir)
    summary["plots"] = plot_eda(manifest, summary, out_dir)
    (out_dir / "eda.json").write_text(json.dumps(summary, indent=1))
    return summary
