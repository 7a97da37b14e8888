"""``wmstudio curate``: duplicates and outliers, label issues, reviewers' decisions.

Imported when the main CLI starts, so only typer is imported at module level; the heavy work
(SQLAlchemy, scikit-learn, Cleanlab, ONNX Runtime) loads inside the commands. With ``--json`` a
command prints only the JSON list of flags on stdout (progress goes to stderr), so it pipes.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from curation.dataset import CurationDataset
    from curation.run import RunResult

app = typer.Typer(help="Find duplicates, outliers and label issues; record reviewers' decisions.", no_args_is_help=True)

Target = Annotated[str, typer.Argument(metavar="DATASET_OR_PATH", help="Ingested dataset name, or a path to ingest.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print the flags as a JSON list.")]
Name = Annotated[str | None, typer.Option(help="Dataset name when a path is ingested (default: its folder name).")]
Url = Annotated[str | None, typer.Option("--url", help="Store URL (default: WMSTUDIO_DATABASE_URL or SQLite).")]


def _setup() -> None:
    from wmstudio.offline import apply_offline_env
    from wmstudio.settings import get_settings

    apply_offline_env(get_settings().state_dir)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def _dataset(target: str, name: str | None) -> CurationDataset:
    from curation.dataset import CurationError, resolve_dataset
    from wmstudio.settings import get_settings

    try:
        return resolve_dataset(target, get_settings(), name)
    except CurationError as exc:
        _fail(str(exc))


def _print(records: list[dict], as_json: bool, notes: list[str], summary: str) -> None:
    if as_json:
        typer.echo(json.dumps(records, indent=1))
    else:
        for record in records:
            group = f" [{record['group']}]" if record["group"] else ""
            status = "" if record["status"] == "open" else f" ({record['status']})"
            typer.echo(
                f"#{record['id']:<5} {record['kind']:<15} {record['score']:.3f}{group}{status} "
                f"{Path(record['file']).name}: {record['reason']}"
            )
    for note in notes:
        typer.echo(note, err=True)
    typer.echo(summary, err=True)


def _summary(run: RunResult) -> str:
    return (
        f"{len(run.records)} flags reported: {run.created} new, {run.updated} updated, "
        f"{run.suppressed} dismissed earlier and not shown, {run.closed} closed"
    )


@app.command()
def duplicates(
    target: Target,
    as_json: AsJson = False,
    backend: Annotated[str | None, typer.Option(help="imagehash (default, licence-clean) or fastdup.")] = None,
    name: Name = None,
    gallery: Annotated[Path | None, typer.Option(help="HTML gallery path (default: state_dir/curation/NAME).")] = None,
    no_gallery: Annotated[bool, typer.Option("--no-gallery", help="Do not write the HTML gallery.")] = False,
    url: Url = None,
) -> None:
    """Exact and near duplicates (clusters, train/test leakage) and outliers, stored as flags."""
    _setup()
    from curation.dataset import CurationError
    from curation.fastdup_backend import FastdupUnavailable
    from curation.run import run_duplicates
    from wmstudio.settings import get_settings

    settings = get_settings()
    if backend not in (None, "imagehash", "fastdup"):
        _fail(f"unknown backend {backend!r}; expected imagehash or fastdup")
    dataset = _dataset(target, name)
    out = None if no_gallery else gallery or settings.curation_dir / dataset.name / "duplicates.html"
    try:
        run = run_duplicates(dataset, settings, backend, url, out)
    except (FastdupUnavailable, CurationError) as exc:
        _fail(str(exc))
    notes = list(run.notes) + ([f"gallery: {run.gallery}"] if run.gallery else [])
    _print(run.records, as_json, notes, _summary(run))


@app.command()
def labels(
    target: Target,
    as_json: AsJson = False,
    threshold: Annotated[
        float | None, typer.Option(help="Flag image labels with quality below this (default: label_issue_threshold).")
    ] = None,
    box_threshold: Annotated[
        float | None, typer.Option(help="Flag images with box quality at or below this (default: box_issue_threshold).")
    ] = None,
    confident: Annotated[
        float | None, typer.Option(help="Detector score that counts as confident (default: box_confident_score).")
    ] = None,
    model: Annotated[str | None, typer.Option(help="Registry version to use (default: the champion).")] = None,
    no_boxes: Annotated[bool, typer.Option("--no-boxes", help="Only image-level labels.")] = False,
    name: Name = None,
    url: Url = None,
) -> None:
    """Label issues: Cleanlab on cross-validated probabilities (images) and on detector boxes."""
    _setup()
    from curation.dataset import CurationError
    from curation.run import run_labels
    from wmstudio.registry import Registry, RegistryError
    from wmstudio.settings import get_settings

    settings = get_settings()
    model_dir = None
    if model:
        try:
            model_dir = Registry.from_settings(settings).path(model)
        except RegistryError as exc:
            _fail(str(exc))
    dataset = _dataset(target, name)
    try:
        run = run_labels(dataset, settings, url, threshold, box_threshold, confident, model_dir, boxes=not no_boxes)
    except CurationError as exc:
        _fail(str(exc))
    _print(run.records, as_json, run.notes, _summary(run))


@app.command()
def decide(
    flag_id: Annotated[int, typer.Argument(help="Flag id (the 'id' in --json output).")],
    decision: Annotated[str, typer.Argument(help="accept | dismiss | reopen")],
    by: Annotated[str, typer.Option("--by", help="Reviewer's name (stored with the decision).")],
    label: Annotated[
        str | None,
        typer.Option(
            help="With accept on a label_conflict/label_issue: the right label (rumah123|99co|none), "
            "written to every copy."
        ),
    ] = None,
    url: Url = None,
) -> None:
    """Accept (fix it) or dismiss (not a problem) a flag; dismissed flags are not raised again."""
    from curation.decisions import DecisionError, flag_record
    from curation.decisions import decide as record_decision
    from wmstudio.store.session import transaction

    try:
        with transaction(url, immediate=True) as session:
            flag = record_decision(session, flag_id, decision, by, label)
            record = flag_record(flag)
    except DecisionError as exc:
        _fail(str(exc))
    typer.echo(json.dumps(record))


@app.command()
def flags(
    target: Annotated[str, typer.Argument(metavar="DATASET", help="Dataset name in the store.")],
    status: Annotated[str | None, typer.Option(help="open | accepted | dismissed (default: all).")] = None,
    kind: Annotated[str | None, typer.Option(help="Only this kind.")] = None,
    as_json: AsJson = False,
    url: Url = None,
) -> None:
    """List the stored flags of a dataset, worst first."""
    from sqlalchemy import select

    from curation.decisions import flag_record
    from wmstudio.store.models import Dataset, Flag, Image
    from wmstudio.store.session import transaction

    with transaction(url) as session:
        query = select(Flag).join(Image).join(Dataset).where(Dataset.name == target)
        if status:
            query = query.where(Flag.status == status)
        if kind:
            query = query.where(Flag.kind == kind)
        records = [flag_record(f) for f in session.scalars(query.order_by(Flag.kind, Flag.score.desc()))]
    _print(records, as_json, [], f"{len(records)} flags")


@app.command("fastdup-venv")
def fastdup_venv(
    python: Annotated[str | None, typer.Option(help="Interpreter to build the venv from (default: this one).")] = None,
) -> None:
    """Create the separate virtual environment for the fastdup backend (CC BY-NC-ND; numpy<2)."""
    from curation.fastdup_backend import create_fastdup_venv
    from wmstudio.settings import get_settings

    venv = get_settings().resolved_fastdup_venv
    typer.echo(f"installing fastdup into {venv} (licence: CC BY-NC-ND 4.0, non-commercial use only)", err=True)
    typer.echo(str(create_fastdup_venv(venv, python)))
