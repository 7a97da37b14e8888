"""The two curation runs end to end, shared by the CLI and the benchmark.

Each run: mirror the dataset into the store, compute findings, and record them as flags in one
transaction (decisions respected, see :mod:`curation.decisions`). What comes back is already
plain data (the ``--json`` records), so callers never touch a closed session.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from curation.copies import copy_findings
from curation.dataset import CurationDataset, sync_to_store
from curation.decisions import flag_record, record_findings
from curation.duplicates import DuplicateResult, find_duplicates, refs_of
from curation.features import feature_matrix
from curation.findings import DUPLICATE_KINDS, LABEL_KINDS, Finding
from curation.outliers import find_outliers
from wmstudio.settings import Settings
from wmstudio.store.session import transaction

if TYPE_CHECKING:
    from wmstudio.runtime import Detector

log = logging.getLogger(__name__)

WEAK_ACCURACY = 0.75  # below this out-of-sample balanced accuracy the label flags are not worth a look


@dataclass
class RunResult:
    records: list[dict] = field(default_factory=list)  # reported flags, JSON-ready
    findings: list[Finding] = field(default_factory=list)  # everything found, dismissed ones included
    created: int = 0
    updated: int = 0
    suppressed: int = 0
    closed: int = 0
    notes: list[str] = field(default_factory=list)
    gallery: Path | None = None
    duplicates: DuplicateResult | None = None
    model_version: str | None = None


def _record(dataset: CurationDataset, findings: list[Finding], kinds: tuple[str, ...], url: str | None) -> RunResult:
    with transaction(url, immediate=True) as session:
        recorded = record_findings(session, dataset.name, findings, kinds)
        records = [flag_record(flag, str(dataset.folder)) for flag in recorded.flags]
    return RunResult(records, findings, recorded.created, recorded.updated, recorded.suppressed, recorded.closed)


def run_duplicates(
    dataset: CurationDataset,
    settings: Settings,
    backend: str | None = None,
    url: str | None = None,
    gallery: Path | None = None,
) -> RunResult:
    """Exact/near duplicates and outliers with the chosen backend; optional HTML gallery."""
    backend = backend or settings.duplicates_backend
    left = sync_to_store(dataset, url)
    refs = refs_of(dataset)
    from curation.fastdup_backend import venv_python

    result = find_duplicates(
        refs,
        backend,
        settings.near_duplicate_distance,
        settings.fastdup_similarity,
        venv_python(settings.resolved_fastdup_venv),
        None,
        settings.outlier_fraction,
    )
    outliers = result.outliers
    if outliers is None:
        outliers = find_outliers([r.key for r in refs], feature_matrix([r.path for r in refs]), settings.outlier_z)
    copies = copy_findings(refs, result)
    run = _record(dataset, result.findings + copies + outliers, DUPLICATE_KINDS, url)
    run.closed += left
    run.duplicates = result
    conflicts = sum(f.kind == "label_conflict" for f in copies)
    leaks = [c for c in result.clusters if c.leak]
    run.notes.append(
        f"{backend}: {len(result.clusters)} duplicate clusters ({len(leaks)} spanning splits), "
        f"{len(outliers)} outliers, {conflicts} label conflicts among copies"
    )
    if gallery is not None:
        from curation.gallery import write_gallery

        run.gallery = write_gallery(dataset, result.clusters, result.findings, outliers, gallery)
    return run


def load_detector(settings: Settings, model_dir: Path | None = None) -> tuple[Detector, str] | None:
    """The given model folder or the registry's champion, with its store version key; None if absent."""
    from wmstudio.registry import Registry, RegistryError
    from wmstudio.runtime import Detector

    try:
        folder = model_dir or Registry.from_settings(settings).champion_path()
    except RegistryError as exc:
        log.warning("no detector: %s", exc)
        return None
    from curation.predictions import version_key

    detector = Detector.from_version_dir(folder, settings.inference_threads)
    return detector, version_key(folder, detector.version)


def run_labels(
    dataset: CurationDataset,
    settings: Settings,
    url: str | None = None,
    threshold: float | None = None,
    box_threshold: float | None = None,
    confident: float | None = None,
    model_dir: Path | None = None,
    boxes: bool = True,
    use_detector: bool = True,
) -> RunResult:
    """Image-level label issues (cross-validated Cleanlab) and box issues (Cleanlab object detection)."""
    from curation.boxes import box_label_issues
    from curation.labels import detector_features, image_label_issues, labelled_brands
    from curation.predictions import predict_dataset

    left = sync_to_store(dataset, url)
    items = dataset.items()
    keys = [item.sha256 for item in items]
    loaded = load_detector(settings, model_dir) if use_detector else None
    notes = []
    predictions = None
    if loaded is not None:
        detector, version = loaded
        cached = predict_dataset(dataset, detector, version, url, settings.max_image_pixels)
        predictions = [cached.get(key) for key in keys]
        brands = labelled_brands([item.brand for item in items])
        features = np.stack(
            [detector_features(p, i.width, i.height, brands) for p, i in zip(predictions, items, strict=True)]
        )
        notes.append(f"detector {version}")
    else:
        features = feature_matrix([dataset.folder / item.path for item in items])
        notes.append("no detector: image-level labels from image features only (weak), no box checks")
    findings, info = image_label_issues(
        keys,
        [item.brand for item in items],
        features,
        settings.label_issue_threshold if threshold is None else threshold,
        settings.curation_folds,
        [p.brand_scores if p else {} for p in predictions] if predictions else None,
    )
    if "balanced_accuracy" in info:
        accuracy = info["balanced_accuracy"]
        notes.append(
            f"image labels: out-of-sample balanced accuracy {accuracy:.2f} over {', '.join(info['classes'])} "
            f"({info['folds']} folds); Cleanlab's find_label_issues calls {info['cleanlab_find_label_issues']} "
            f"labels issues, {len(findings)} of them below the quality threshold"
        )
        if accuracy < WEAK_ACCURACY:
            notes.append("warning: the labels are barely predictable here, so most label flags are noise")
    else:
        notes.append(f"image labels: skipped ({info.get('skipped')})")
    kinds: tuple[str, ...] = ("label_issue",)
    if boxes and predictions is not None and loaded is not None:
        confident = settings.box_confident_score if confident is None else confident
        box_findings = box_label_issues(
            items,
            predictions,
            settings.box_issue_threshold if box_threshold is None else box_threshold,
            confident,
        )
        notes.append(f"boxes: {len(box_findings)} images flagged (confident detector score {confident:.2f})")
        findings += box_findings
        kinds = LABEL_KINDS
    run = _record(dataset, findings, kinds, url)
    run.closed += left
    run.notes += notes
    run.model_version = loaded[1] if loaded else None
    return run
