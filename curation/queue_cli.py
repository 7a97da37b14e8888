"""``wmstudio queue build|push|pull|status|webhook``: the labelling queue from the command line.

Kept light at import (typer only): the detector, the store and the Label Studio SDK load inside
the commands, so ``wmstudio --help`` stays fast.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

app = typer.Typer(help="Uncertainty queue and Label Studio sync.", no_args_is_help=True)
console = Console(stderr=True)


def _setup() -> None:
    from wmstudio.offline import apply_offline_env
    from wmstudio.settings import get_settings

    apply_offline_env(get_settings().state_dir)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _fail(message: str, code: int = 2) -> None:
    console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code)


def _sync():
    from curation.labelstudio import LabelStudioConfigError, LabelStudioSync

    try:
        return LabelStudioSync.from_settings()
    except LabelStudioConfigError as exc:
        _fail(str(exc))


@app.command()
def build(
    source: Annotated[
        Path | None, typer.Option("--from", help="Folder of unlabelled photos to add to the pool first.")
    ] = None,
    dataset: Annotated[list[str] | None, typer.Option(help="Store datasets to score (default: the pool).")] = None,
    version: Annotated[str | None, typer.Option(help="Model version (default: champion).")] = None,
    tta: Annotated[bool | None, typer.Option(help="Test-time augmentation (default: settings).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Score unlabelled photos with the model and rank them (uncertainty + diversity) as pending items."""
    _setup()
    from curation.queue import add_pool_folder, build_queue
    from wmstudio.registry import Registry, RegistryError
    from wmstudio.runtime import Detector
    from wmstudio.settings import get_settings
    from wmstudio.store.session import transaction

    settings = get_settings()
    try:
        detector = Detector.from_registry(Registry.from_settings(settings), version, settings.inference_threads)
    except RegistryError as exc:
        _fail(str(exc))
    pool = settings.queue_pool_dataset
    if source is not None:
        if not source.is_dir():
            _fail(f"{source} is not a folder")
        with transaction() as session:
            added = add_pool_folder(session, source, settings.datasets_dir / pool, pool)
        console.print(f"pool: {added} new photos from {source}")
    with transaction() as session:
        report = build_queue(
            session,
            detector,
            dataset or [pool],
            settings.queue_tta if tta is None else tta,
            settings.near_duplicate_distance,
            settings.queue_batch_size,
        )
    if as_json:
        print(json.dumps(asdict(report), indent=1))
        return
    console.print(
        f"scored {report.scored} photos with {report.model_version}: {report.queued} pending, "
        f"{report.demoted_copies} near copies demoted, {len(report.unreadable)} unreadable"
    )
    for row in report.top:
        console.print(f"  {row['score']:.3f}  {row['image']}  {row['reason']}")


@app.command()
def push(
    k: Annotated[
        int | None, typer.Option("-k", "--k", help="Open tasks to keep in Label Studio (default: batch size).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Top Label Studio up to k open tasks from the best pending items, model boxes as pre-annotations."""
    _setup()
    from curation.labelstudio import LabelStudioConfigError, LabelStudioUnavailable
    from wmstudio.settings import get_settings
    from wmstudio.store.session import transaction

    sync = _sync()
    try:
        report = sync.push(transaction, k or get_settings().queue_batch_size)
    except (LabelStudioUnavailable, LabelStudioConfigError) as exc:
        _fail(str(exc), 3)
    if as_json:
        print(json.dumps(asdict(report)))
        return
    console.print(
        f"project {report.project_id}: {report.created} tasks created, {report.adopted} already there, "
        f"{report.outstanding} were already open"
    )


@app.command()
def pull(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Take finished Label Studio annotations back into the store as human labels (idempotent)."""
    _setup()
    from curation.labelstudio import LabelStudioUnavailable
    from wmstudio.store.session import transaction

    sync = _sync()
    try:
        report = sync.pull(transaction)
    except LabelStudioUnavailable as exc:
        _fail(str(exc), 3)
    if as_json:
        print(json.dumps(asdict(report)))
        return
    console.print(
        f"project {report.project_id}: {report.labelled} labelled, {report.updated} updated, "
        f"{report.unchanged} unchanged, {report.skipped} skipped, {len(report.conflicts)} conflicts, "
        f"{report.requeued_deleted} re-queued (task deleted)"
    )
    for conflict in report.conflicts:
        console.print(f"  [yellow]conflict[/yellow] task {conflict['task']}: settle it in Label Studio")
    for refused in report.refused:
        console.print(f"  [red]refused[/red] task {refused['task']}: {refused['reason']}")


@app.command()
def status() -> None:
    """Queue items per status."""
    from curation.queue import queue_counts
    from wmstudio.store.session import transaction

    with transaction() as session:
        print(json.dumps(queue_counts(session)))


@app.command()
def webhook(
    url: Annotated[str | None, typer.Option(help="URL Label Studio should call (default: the API's route).")] = None,
) -> None:
    """Register the API's webhook in the Label Studio project, so annotations arrive as soon as saved."""
    _setup()
    from curation.labelstudio import LabelStudioUnavailable
    from wmstudio.settings import get_settings

    settings = get_settings()
    target = url or settings.label_studio_webhook_url or f"{settings.api_url.rstrip('/')}/v1/webhooks/label-studio"
    # Its own secret, never an API key: any Label Studio user can read a webhook's headers.
    if settings.label_studio_configured and not settings.webhook_secret:
        _fail("set WMSTUDIO_WEBHOOK_SECRET (here and in the API) first: the API refuses the webhook without it")
    headers = {"X-Webhook-Secret": settings.webhook_secret} if settings.webhook_secret else {}
    try:
        hook = _sync().ensure_webhook(target, headers)
    except LabelStudioUnavailable as exc:
        _fail(str(exc), 3)
    console.print(f"webhook {hook} → {target}")
