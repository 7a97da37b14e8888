"""Train/val/test splits stratified by brand and grouped by near-duplicates.

Listing photos are re-posted with small crops and re-compression; if one copy lands in train
and another in test, test scores measure memory. Items are grouped by perceptual hash
(difference hash, Hamming distance ≤ ``max_distance``) and whole groups are assigned to a
split, with groups dealt out per brand so every split keeps the brand balance.
"""

from __future__ import annotations

import random
from collections import defaultdict
from pathlib import Path

import imagehash
from PIL import Image

from wmstudio.data.manifest import Manifest

DEFAULT_FRACTIONS = {"train": 0.45, "val": 0.2, "test": 0.35}


def perceptual_hash(path: Path) -> imagehash.ImageHash:
    with Image.open(path) as image:
        return imagehash.dhash(image.convert("L"), hash_size=8)


def near_duplicate_groups(hashes: dict[str, imagehash.ImageHash], max_distance: int = 6) -> dict[str, str]:
    """Union-find over pairs closer than ``max_distance`` bits: key -> group id (a member key)."""
    parent = {key: key for key in hashes}

    def find(key: str) -> str:
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    keys = sorted(hashes)
    for i, a in enumerate(keys):
        for b in keys[i + 1 :]:
            if hashes[a] - hashes[b] <= max_distance:
                parent[find(b)] = find(a)
    return {key: find(key) for key in keys}


def assign_splits(
    manifest: Manifest,
    dataset_dir: Path,
    fractions: dict[str, float] | None = None,
    seed: int = 0,
    max_distance: int = 6,
) -> dict[str, int]:
    """Set ``item.split`` and ``item.group`` for every item; returns counts per split."""
    fractions = fractions or DEFAULT_FRACTIONS
    items = manifest.items
    hashes = {key: perceptual_hash(dataset_dir / item.path) for key, item in items.items()}
    groups = near_duplicate_groups(hashes, max_distance)
    members: dict[str, list[str]] = defaultdict(list)
    for key, group in groups.items():
        members[group].append(key)
        items[key].group = group[:12]
    # Stratify on the group's brand (a group with any watermarked member counts as that brand).
    by_brand: dict[str, list[str]] = defaultdict(list)
    for group, keys in members.items():
        brands = sorted({items[k].brand for k in keys if items[k].brand})
        by_brand[brands[0] if brands else "none"].append(group)
    rng = random.Random(seed)
    names = list(fractions)
    for brand in sorted(by_brand):
        groups_of_brand = sorted(by_brand[brand])
        rng.shuffle(groups_of_brand)
        total = sum(len(members[g]) for g in groups_of_brand)
        filled = dict.fromkeys(names, 0)
        for group in groups_of_brand:
            # Give the group to the split furthest below its target share.
            target = min(names, key=lambda n: filled[n] / max(fractions[n] * total, 1e-9))
            for key in members[group]:
                items[key].split = target
            filled[target] += len(members[group])
    counts: dict[str, int] = defaultdict(int)
    for item in items.values():
        counts[item.split or "none"] += 1
    return dict(counts)
