"""The fastdup backend: fastdup runs in its own virtual environment, in a child process.

fastdup is licensed CC BY-NC-ND 4.0 (non-commercial, no derivatives) and pins numpy<2 and
Pillow 10.3, so it is neither a dependency of the project nor installed in ``.venv``: it lives
in ``settings.resolved_fastdup_venv`` (``make fastdup-venv`` or ``wmstudio curate fastdup-venv``
creates it) and :mod:`curation.fastdup_worker` is run there. What comes back is the component
(cluster) of each image, the similar pairs and the outliers; exact duplicates are still decided
here from decoded pixels, like the imagehash backend does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from curation.duplicates import DuplicateResult, ImageRef, clusters_to_findings, pixel_digests
from curation.findings import Finding

WORKER = Path(__file__).resolve().parent / "fastdup_worker.py"
TIMEOUT_SECONDS = 3600


class FastdupUnavailable(RuntimeError):
    """The fastdup venv is missing or fastdup failed."""


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def create_fastdup_venv(venv: Path, python: str | None = None) -> Path:
    """Create the separate venv and ``pip install fastdup`` into it (network needed once)."""
    if not venv_python(venv).exists():
        subprocess.run([python or sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv_python(venv)), "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
    subprocess.run([str(venv_python(venv)), "-m", "pip", "install", "-q", "fastdup"], check=True)
    return venv_python(venv)


def fastdup_available(venv: Path) -> bool:
    python = venv_python(venv)
    if not python.exists():
        return False
    probe = subprocess.run(
        [str(python), "-c", "import importlib.util, sys; sys.exit(importlib.util.find_spec('fastdup') is None)"],
        capture_output=True,
        check=False,
    )
    return probe.returncode == 0


def run_worker(
    paths: list[Path], work_dir: Path, python: Path, similarity: float, outlier_fraction: float, threads: int = 2
) -> dict:
    work_dir.mkdir(parents=True, exist_ok=True)
    files = work_dir / "files.txt"
    files.write_text("".join(f"{p.resolve()}\n" for p in paths))
    out = work_dir / "result.json"
    env = {**os.environ, "SENTRY_OPT_OUT": "1", "FASTDUP_PRODUCTION": "1", "PYTHONNOUSERSITE": "1"}
    env.pop("PYTHONPATH", None)
    command = [
        str(python),
        "-I",  # isolated: the worker's folder is not on sys.path (curation/queue.py would shadow stdlib queue)
        str(WORKER),
        str(files),
        str(work_dir / "fastdup"),
        str(out),
        str(min(similarity, 0.9)),
        str(similarity),
        str(outlier_fraction),
        str(threads),
    ]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=TIMEOUT_SECONDS, check=False)
    if done.returncode != 0 or not out.exists():
        raise FastdupUnavailable(f"fastdup failed (exit {done.returncode}): {(done.stderr or done.stdout)[-2000:]}")
    return json.loads(out.read_text())


def fastdup_duplicates(
    refs: list[ImageRef],
    similarity: float = 0.95,
    python: Path | None = None,
    work_dir: Path | None = None,
    outlier_fraction: float = 0.02,
    threads: int = 2,
) -> DuplicateResult:
    if python is None or not Path(python).exists():
        raise FastdupUnavailable(
            f"no fastdup interpreter at {python}; create it with `make fastdup-venv` "
            "(or `wmstudio curate fastdup-venv`), or use --backend imagehash"
        )
    with tempfile.TemporaryDirectory(prefix="wmstudio-fastdup-") as scratch:
        raw = run_worker(
            [r.path for r in refs], Path(work_dir or scratch), Path(python), similarity, outlier_fraction, threads
        )
    key_of = {str(ref.path.resolve()): ref.key for ref in refs}
    groups = {ref.key: ref.key for ref in refs}
    for filename, component in raw["components"].items():
        if filename in key_of:
            groups[key_of[filename]] = f"cc{component}"
    sims: dict[tuple[str, str], float] = {}
    for source, target, value in raw["similarity"]:
        if source in key_of and target in key_of:
            pair = (key_of[source], key_of[target])
            sims[pair] = max(sims.get(pair, 0.0), float(value))
    result = clusters_to_findings(refs, groups, pixel_digests(refs), sims, "fastdup")
    by_key = {ref.key: ref for ref in refs}
    outliers: list[Finding] = []
    for source, target, value in raw["outliers"]:
        if source not in key_of:
            continue
        nearest = by_key.get(key_of.get(target, ""))
        reason = f"far from every other image (fastdup: nearest similarity {value:.2f}"
        reason += f" to {nearest.name})" if nearest else ")"
        if all(o.key != key_of[source] for o in outliers):
            outliers.append(Finding(key_of[source], "outlier", 1.0 - float(value), reason, None, "fastdup"))
    result.outliers = outliers
    result.details = {"fastdup_version": raw.get("fastdup_version"), "invalid": raw.get("invalid", [])}
    return result
