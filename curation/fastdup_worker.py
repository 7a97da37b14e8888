"""Runs *inside* the fastdup virtual environment (``.wmstudio/fastdup-venv``), never in the main one.

fastdup pins numpy<2 and an old Pillow and is CC BY-NC-ND, so the project never imports it:
:mod:`curation.fastdup_backend` starts this script with the fastdup venv's Python and reads back
one JSON file. Only the standard library and fastdup are used here.

Usage: python fastdup_worker.py FILES_TXT WORK_DIR OUT_JSON SIMILARITY CC_THRESHOLD OUTLIER_FRACTION THREADS
"""

from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path


def _rows(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def main(argv: list[str]) -> int:
    files, work, out = Path(argv[0]), Path(argv[1]), Path(argv[2])
    similarity, cc_threshold, outlier_fraction, threads = float(argv[3]), float(argv[4]), float(argv[5]), int(argv[6])
    os.environ.setdefault("SENTRY_OPT_OUT", "1")  # no telemetry from fastdup
    import fastdup

    code = fastdup.run(
        input_dir=str(files),
        work_dir=str(work),
        threshold=similarity,
        lower_threshold=outlier_fraction,
        nearest_neighbors_k=5,
        num_threads=threads,
        turi_param=f"ccthreshold={cc_threshold}",
    )
    names = {row["index"]: row["filename"] for row in _rows(work / "atrain_features.dat.csv")}
    components = {
        names[row["__id"]]: row["component_id"]
        for row in _rows(work / "connected_components.csv")
        if row["__id"] in names
    }
    result = {
        "fastdup_version": getattr(fastdup, "__version__", "?"),
        "returncode": code,
        "components": components,
        "similarity": [[r["from"], r["to"], float(r["distance"])] for r in _rows(work / "similarity.csv")],
        "outliers": [[r["from"], r["to"], float(r["distance"])] for r in _rows(work / "outliers.csv")],
        "invalid": [r.get("filename", "") for r in _rows(work / "atrain_features.bad.csv")],
    }
    out.write_text(json.dumps(result))
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
