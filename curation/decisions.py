"""Findings become flags; reviewers' decisions on flags are stored and respected on the next run.

One flag per (image, kind). A re-run:

- creates a flag (status ``open``) for a new finding, or reopens a ``closed`` one found again;
- refreshes score, reason and group of an ``open`` or ``accepted`` flag (an accepted flag keeps
  its status: the fix is agreed, perhaps not yet applied);
- leaves a ``dismissed`` flag alone and does not report the finding again ("this is fine");
- closes ``open`` flags of the kinds it checked that it no longer finds (problem gone).

The flags a run may rewrite are read ``FOR UPDATE`` inside a write-locked transaction
(:func:`wmstudio.store.session.lock_for_writing`), so a reviewer's decision committed while a
run is going is never overwritten by it: one of the two waits for the other.

``decide ... --label X`` on a ``label_conflict`` (or ``label_issue``) writes X to every copy in
the dataset's manifest (each file's own label included) and to the store, in the decision's
transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from curation.findings import Finding
from wmstudio.store.models import Dataset, Flag, Image

DECISIONS = {"accept": "accepted", "dismiss": "dismissed", "reopen": "open"}
RELABEL_KINDS = ("label_conflict", "label_issue")


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
    query = select(Flag).join(Image).join(Dataset).where(Dataset.name == dataset_name, Flag.kind.in_(kinds))
    existing = {(flag.image_id, flag.kind): flag for flag in session.scalars(query.with_for_update())}
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
        elif flag.status == "closed":  # the problem came back
            flag.status, flag.decided_by, flag.decided_at = "open", None, None
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
            flag.status = "closed"
            result.closed += 1
    session.flush()
    result.flags.sort(key=lambda f: (f.kind, -f.score, f.id))
    return result


def decide(session: Session, flag_id: int, decision: str, by: str, label: str | None = None) -> Flag:
    """Record a reviewer's decision: ``accept`` (fix it), ``dismiss`` (not a problem) or ``reopen``.

    ``label`` (with ``accept``, on a label conflict or label issue): the right label ("none" for
    no mark), written to every copy of the flagged group in the manifest and the store.
    """
    if decision not in DECISIONS:
        raise DecisionError(f"decision must be one of {', '.join(DECISIONS)}, not {decision!r}")
    if not by.strip():
        raise DecisionError("a decision needs the reviewer's name (--by)")
    flag = session.get(Flag, flag_id, with_for_update=True)
    if flag is None:
        raise DecisionError(f"no flag with id {flag_id}")
    if label is not None:
        if decision != "accept":
            raise DecisionError("--label goes with accept: it says what the right label is")
        if flag.kind not in RELABEL_KINDS:
            raise DecisionError(f"--label applies to {' and '.join(RELABEL_KINDS)} flags, not {flag.kind}")
        apply_label(session, flag, label, by.strip())
    elif decision == "accept" and flag.kind == "label_conflict":
        raise DecisionError("accepting a label conflict needs the right label: --label rumah123|99co|none")
    flag.status = DECISIONS[decision]
    flag.decided_by = None if decision == "reopen" else by.strip()
    flag.decided_at = None if decision == "reopen" else datetime.now(UTC)
    session.flush()
    return flag


def apply_label(session: Session, flag: Flag, label: str, by: str) -> list[str]:
    """Write ``label`` to every copy the flag names, in the manifest on disk and in the store."""
    from wmstudio.brands import normalise_brand
    from wmstudio.data.manifest import MANIFEST_NAME, Manifest
    from wmstudio.store.sync import import_manifest

    try:
        brand = normalise_brand(label)
    except ValueError as exc:
        raise DecisionError(str(exc)) from exc
    dataset = flag.image.dataset
    folder = Path(dataset.root) if dataset.root else None
    if folder is None or not (folder / MANIFEST_NAME).exists():
        raise DecisionError(f"dataset {dataset.name!r} has no manifest at {dataset.root or '(no folder)'}")
    manifest = Manifest.load(folder)
    keys = (flag.details or {}).get("keys") or [flag.image.sha256]
    missing = [key for key in keys if key not in manifest.items]
    if missing:
        raise DecisionError(f"{len(missing)} image(s) of flag {flag.id} are no longer in the dataset; re-run curate")
    note = f"label {brand or 'none'} set by {by} (flag {flag.id}, {flag.kind})"
    for key in keys:
        manifest.items[key].set_label(brand, note)
    manifest.save(folder)
    import_manifest(session, manifest, dataset.name, folder)
    flag.details = {**(flag.details or {}), "resolved_label": brand or "none"}
    return keys


def flag_record(flag: Flag, dataset_folder: str | None = None) -> dict:
    """The JSON shape of ``--json`` (docs/curation.md): the user's paths first, the stored copy beside them."""
    image = flag.image
    folder = dataset_folder or image.dataset.root
    stored = f"{folder}/{image.path}" if folder else image.path
    details = dict(flag.details or {})
    user_file = image.origin or stored
    record = {
        "file": user_file,
        "kind": flag.kind,
        "score": round(flag.score, 4),
        "group": flag.cluster,
        "reason": flag.reason,
        "id": flag.id,
        "status": flag.status,
        "files": details.get("files") or [user_file],
        "stored": stored,
        "dataset": image.dataset.name,
        "split": image.split,
        "origin": image.origin,
    }
    if "labels" in details:
        record["labels"] = details["labels"]
    return record
