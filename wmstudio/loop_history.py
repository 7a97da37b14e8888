"""The retraining loop's history: one JSON line per run in ``state_dir/loop/history.jsonl``.

Kept in the core so the loop (``pipelines.loop``) writes it and the dashboard reads it without
the dashboard importing the training stack.
"""

from __future__ import annotations

import json
from pathlib import Path

HISTORY_FILE = "history.jsonl"


def append_history(loop_dir: Path, record: dict) -> Path:
    """One JSON line per run; appended, never rewritten, so concurrent readers see whole lines."""
    loop_dir.mkdir(parents=True, exist_ok=True)
    path = loop_dir / HISTORY_FILE
    with path.open("a") as handle:
        handle.write(json.dumps(record, default=str) + "\n")
    return path


def read_history(loop_dir: Path) -> list[dict]:
    path = Path(loop_dir) / HISTORY_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
