"""Findings become flags; reviewers' decisions on flags are stored and respected on the next run.

One flag per (image, kind). A re-run:

- creates a flag (status ``open``) for a new finding;
- refreshes score, reason and group of an ``open`` or ``accepted`` flag (an accepted flag keeps
  its status: the fix is agreed, perhaps not yet applied);
- leaves a ``dismissed`` flag alone and does not report the finding again ("this is fine");
- deletes ``open`` flags of the kinds it checked that it no longer finds (problem gone).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from curation.findings import Finding
from wmstudio.store.models import Dataset, Flag, Image

DECISIONS = {"accept": "accepted", "dismiss": "dismissed", "reopen": "open"}


@dataclass
class RecordResult:
    flags: list[Flag] = field(default_factory=list)  # reported this run (not dismissed), best first
    created: int = 0
    updated: int = 0
    suppressed: int = 0  # found again but dismissed earlier
    closed: int = 0


class DecisionError(ValueError):
    pass


def record_findings(
    session: Session, dataset_name: str, findings: list[Finding], kinds: tuple[str, ...]
) -> RecordResult:
    """Upsert ``findings`` as flags of ``dataset_name``; ``kinds`` are the kinds this run checked."""
    image_ids = dict(
        session.execute(select(Image.sha256, Image.id).join(Dataset).where(Dataset.name == dataset_name)).all()
    )
    existing = {
        (flag.image_id, flag.kind): flag
        for flag in session.scalars(
            select(Flag).join(Image).join(Dataset).where(Dataset.name == dataset_name, Flag.kind.in_(kinds))
        )
    }
    result = RecordResult()
    seen: set[tuple[int, str]] = set()
    for finding in findings:
        image_id = image_ids.get(finding.key)
        if image_id is None:
            raise KeyError(f"image {finding.key} of {dataset_name!r} is not in the store; sync the dataset first")
        slot = (image_id, finding.kind)
        if slot in seen:
            continue
        seen.add(slot)
        flag = existing.get(slot)
        if flag is not None and flag.status == "dismissed":
            result.suppressed += 1
            continue
        if flag is None:
            flag = Flag(image_id=image_id, kind=finding.kind, status="open")
            session.add(flag)
            result.created += 1
        else:
            result.updated += 1
        flag.score = finding.score
        flag.cluster = finding.group
        flag.reason = finding.reason
        flag.method = finding.method
        flag.details = finding.details
        result.flags.append(flag)
    for slot, flag in existing.items():
        if slot not in seen and flag.status == "open":
            session.delete(flag)
            result.closed += 1
    session.flush()
    result.flags.sort(key=lambda f: (f.kind, -f.score, f.id))
    return result


def decide(session: Session, flag_id: int, decision: str, by: str) -> Flag:
    """Record a reviewer's decision: ``accept`` (fix it), ``dismiss`` (not a problem) or ``reopen``."""
    if decision not in DECISIONS:
        raise DecisionError(f"decision must be one of {', '.join(DECISIONS)}, not {decision!r}")
    if not by.strip():
        raise DecisionError("a decision needs the reviewer's name (--by)")
    flag = session.get(Flag, flag_id)
    if flag is None:
        raise DecisionError(f"no flag with id {flag_id}")
    flag.status = DECISIONS[decision]
    flag.decided_by = None if decision == "reopen" else by.strip()
    flag.decided_at = None if decision == "reopen" else datetime.now(UTC)
    session.flush()
    return flag


def flag_record(flag: Flag, dataset_folder: str | None = None) -> dict:
    """The JSON shape of ``--json``: file, kind, score, group, reason (plus id and status for ``decide``)."""
    image = flag.image
    folder = dataset_folder or image.dataset.root
    return {
        "file": f"{folder}/{image.path}" if folder else image.path,
        "kind": flag.kind,
        "score": round(flag.score, 4),
        "group": flag.cluster,
        "reason": flag.reason,
        "id": flag.id,
        "status": flag.status,
        "origin": image.origin,
        "split": image.split,
    }
