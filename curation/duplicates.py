"""Exact and near duplicates: perceptual hashes (default, licence-clean) or fastdup.

Both backends share one notion of "exact": identical decoded pixels (the same photo re-saved
losslessly or with other metadata). Byte-identical files are one stored item with several
origins; :mod:`curation.copies` flags those, and conflicting labels among copies. The backends
differ in "near":

- ``imagehash`` (default): a 64-bit difference hash and a 64-bit DCT perceptual hash per image;
  two images are near duplicates when *both* hashes differ in at most ``near_duplicate_distance``
  bits (requiring both keeps different photos of the same room apart), and pairs are merged
  into clusters by union-find (``wmstudio.data.splits.near_duplicate_groups``). Catches resized,
  re-compressed and lightly edited copies; not strong crops or mirror images.
- ``fastdup``: fastdup's own embeddings and connected components at cosine similarity
  ``fastdup_similarity`` (see :mod:`curation.fastdup_backend`). Better at crops; CC BY-NC-ND.

Each cluster keeps its best copy (most pixels, then largest file) unflagged; every other member
is flagged with the cluster id as ``group``. Clusters whose members sit in different splits are
reported as train/test leakage.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import imagehash
from PIL import Image

from curation.dataset import CurationDataset
from curation.findings import Finding
from wmstudio.data.splits import near_duplicate_groups

HASH_BITS = 64

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImageRef:
    key: str
    path: Path
    split: str | None
    width: int
    height: int
    origin: str
    labelled: tuple[tuple[str, str | None], ...] = ()  # (user path, label) of every byte-identical copy

    @property
    def name(self) -> str:
        return Path(self.origin).name if self.origin else self.path.name

    def rank(self) -> tuple[int, int, str]:
        """Which copy of a cluster to keep: most pixels, then the largest (least compressed) file."""
        size = self.path.stat().st_size if self.path.exists() else 0
        return (self.width * self.height, size, self.key)


@dataclass(frozen=True)
class PairHash:
    """dHash and pHash of one image as 64-bit integers; ``a - b`` is the larger Hamming distance.

    ``near_duplicate_groups`` subtracts hashes, so this makes it require agreement of both; plain
    integers with ``int.bit_count`` keep its all-pairs loop fast.
    """

    dhash: int
    phash: int

    @classmethod
    def of(cls, gray: Image.Image) -> PairHash:
        return cls(_as_int(imagehash.dhash(gray, hash_size=8)), _as_int(imagehash.phash(gray, hash_size=8)))

    def distances(self, other: PairHash) -> tuple[int, int]:
        return (self.dhash ^ other.dhash).bit_count(), (self.phash ^ other.phash).bit_count()

    def __sub__(self, other: PairHash) -> int:
        return max(self.distances(other))


def _as_int(value: imagehash.ImageHash) -> int:
    return int(str(value), 16)


@dataclass
class Cluster:
    id: str
    keeper: str
    members: list[str]  # keeper first
    splits: list[str]
    leak: bool


@dataclass
class DuplicateResult:
    findings: list[Finding] = field(default_factory=list)
    clusters: list[Cluster] = field(default_factory=list)
    method: str = ""
    outliers: list[Finding] | None = None  # set by backends that find outliers themselves (fastdup)
    details: dict[str, Any] = field(default_factory=dict)


def refs_of(dataset: CurationDataset) -> list[ImageRef]:
    return [
        ImageRef(
            item.sha256,
            dataset.folder / item.path,
            item.split,
            item.width,
            item.height,
            item.origin,
            tuple(item.labelled_paths()),
        )
        for item in dataset.items()
    ]


def _pixel_digest(rgb: Image.Image) -> str:
    return hashlib.sha256(f"{rgb.width}x{rgb.height}:".encode() + rgb.tobytes()).hexdigest()


def fingerprint(path: Path) -> tuple[str, PairHash]:
    """(digest of the decoded pixels, perceptual hashes) of one image."""
    with Image.open(path) as image:
        rgb = image.convert("RGB")
    return _pixel_digest(rgb), PairHash.of(rgb.convert("L"))


def pixel_digests(refs: list[ImageRef]) -> dict[str, str]:
    digests = {}
    for ref in refs:
        with Image.open(ref.path) as image:
            digests[ref.key] = _pixel_digest(image.convert("RGB"))
    return digests


def clusters_to_findings(
    refs: list[ImageRef],
    groups: dict[str, str],
    digests: dict[str, str],
    similarity: dict[tuple[str, str], float],
    method: str,
    describe: dict[tuple[str, str], str] | None = None,
) -> DuplicateResult:
    """Flag every non-keeper of each cluster; shared by both backends.

    ``groups`` maps key -> cluster root; ``similarity[(a, b)]`` is a [0, 1] similarity of a
    member to the keeper (missing pairs count as the threshold-level similarity 0.9).
    """
    by_key = {ref.key: ref for ref in refs}
    members: dict[str, list[str]] = defaultdict(list)
    for key, root in groups.items():
        members[root].append(key)
    # Pixel-identical images are one cluster even when a backend's embedding says otherwise.
    by_digest: dict[str, list[str]] = defaultdict(list)
    for key, digest in digests.items():
        by_digest[digest].append(key)
    root_of = dict(groups)
    for same in by_digest.values():
        roots = {root_of[k] for k in same}
        if len(roots) > 1:
            target = min(roots)
            for root in roots - {target}:
                for key in members.pop(root):
                    root_of[key] = target
                    members[target].append(key)
    result = DuplicateResult(method=method)
    for keys in members.values():
        if len(keys) < 2:
            continue
        ordered = sorted(keys, key=lambda k: by_key[k].rank(), reverse=True)
        keeper = by_key[ordered[0]]
        cluster_id = f"dup-{keeper.key[:12]}"
        splits = sorted({by_key[k].split for k in ordered if by_key[k].split})
        leak = len(splits) > 1
        result.clusters.append(Cluster(cluster_id, keeper.key, ordered, splits, leak))
        suffix = f"; cluster spans splits {'+'.join(splits)} (train/test leakage)" if leak else ""
        for index, key in enumerate(ordered[1:], start=1):
            ref = by_key[key]
            twin = next((k for k in ordered[:index] if digests.get(k) == digests.get(key)), None)
            details = {"keeper": keeper.key, "keeper_file": keeper.name, "splits": splits, "leak": leak}
            if twin is not None:
                reason = f"pixel-identical copy of {by_key[twin].name}{suffix}"
                finding = Finding(key, "exact_duplicate", 1.0, reason, cluster_id, method, {**details, "twin": twin})
            else:
                score = similarity.get((key, keeper.key), similarity.get((keeper.key, key), 0.9))
                how = (describe or {}).get((key, keeper.key), f"similarity {score:.3f}")
                reason = (
                    f"near duplicate of {keeper.name} ({ref.width}×{ref.height} vs {keeper.width}×{keeper.height}, "
                    f"{how}){suffix}"
                )
                finding = Finding(key, "near_duplicate", score, reason, cluster_id, method, details)
            result.findings.append(finding)
    result.clusters.sort(key=lambda c: (-len(c.members), c.id))
    return result


def imagehash_duplicates(refs: list[ImageRef], max_distance: int) -> DuplicateResult:
    prints = {}
    for ref in refs:
        try:
            prints[ref.key] = fingerprint(ref.path)
        except (OSError, ValueError) as exc:  # ingest validated it; a file may have gone since
            log.warning("skipping unreadable %s: %s", ref.path, exc)
    refs = [ref for ref in refs if ref.key in prints]
    digests = {key: digest for key, (digest, _) in prints.items()}
    hashes = {key: pair for key, (_, pair) in prints.items()}
    groups = near_duplicate_groups(hashes, max_distance)
    members: dict[str, list[str]] = defaultdict(list)
    for key, root in groups.items():
        members[root].append(key)
    by_key = {ref.key: ref for ref in refs}
    similarity: dict[tuple[str, str], float] = {}
    describe: dict[tuple[str, str], str] = {}
    for keys in members.values():
        if len(keys) < 2:
            continue
        keeper = max(keys, key=lambda k: by_key[k].rank())
        for key in keys:
            if key == keeper:
                continue
            d, p = hashes[key].distances(hashes[keeper])
            similarity[(key, keeper)] = 1.0 - max(d, p) / HASH_BITS
            describe[(key, keeper)] = f"dHash {d} / pHash {p} bits apart"
    return clusters_to_findings(refs, groups, digests, similarity, "imagehash", describe)


def find_duplicates(
    refs: list[ImageRef],
    backend: str,
    max_distance: int = 10,
    fastdup_similarity: float = 0.95,
    fastdup_python: Path | None = None,
    work_dir: Path | None = None,
    outlier_fraction: float = 0.02,
) -> DuplicateResult:
    if backend == "imagehash":
        return imagehash_duplicates(refs, max_distance)
    if backend == "fastdup":
        from curation.fastdup_backend import fastdup_duplicates

        return fastdup_duplicates(refs, fastdup_similarity, fastdup_python, work_dir, outlier_fraction)
    raise ValueError(f"unknown duplicates backend {backend!r}; expected imagehash or fastdup")
