"""Outliers for the licence-clean backend: images far from all their neighbours.

Each image is described by :mod:`curation.features`; an image's outlier distance is the distance
to its k-th nearest neighbour (standardised features), so a handful of similar junk images (a
few blank renders, say) cannot hide behind each other as they would with the mean distance.
Instead of flagging a fixed share (a clean dataset would still get flags), an image is an
outlier only when that distance is far above the dataset's typical one: a robust z-score
(median / MAD) of at least ``outlier_z``. It finds screenshots, blank or broken renders,
documents and floor plans among listing photos.
"""

from __future__ import annotations

import numpy as np
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import StandardScaler

from curation.findings import Finding

MIN_IMAGES = 10
NEIGHBOURS = 5


def knn_distance(features: np.ndarray, k: int = NEIGHBOURS) -> np.ndarray:
    scaled = StandardScaler().fit_transform(features)
    k = min(k, len(features) - 1)
    distances, _ = NearestNeighbors(n_neighbors=k + 1).fit(scaled).kneighbors(scaled)
    return distances[:, k]  # column 0 is the image itself


def robust_z(values: np.ndarray) -> np.ndarray:
    median = float(np.median(values))
    mad = float(np.median(np.abs(values - median))) * 1.4826
    return (values - median) / max(mad, 1e-9)


def find_outliers(keys: list[str], features: np.ndarray, z_threshold: float = 4.0) -> list[Finding]:
    """Findings for images whose k-NN distance has a robust z-score of at least ``z_threshold``."""
    if len(keys) < MIN_IMAGES:
        return []
    distance = knn_distance(features)
    z = robust_z(distance)
    order = np.argsort(np.argsort(distance))  # rank 0 = most typical
    findings = []
    for index in np.flatnonzero(z >= z_threshold):
        score = float(order[index] / max(len(keys) - 1, 1))  # percentile of the distance
        reason = f"unlike the rest of the dataset (k-NN distance {distance[index]:.2f}, robust z {z[index]:.1f})"
        findings.append(
            Finding(keys[index], "outlier", score, reason, None, "imagehash", {"z": round(float(z[index]), 2)})
        )
    return sorted(findings, key=lambda f: -f.details["z"])
