"""``wmstudio store``: create or upgrade the store's schema, show what it holds, sync a dataset.

Imported when the main CLI starts, so only typer is imported here; SQLAlchemy and Alembic load
inside the commands.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="The dataset store: schema migrations, status and sync.", no_args_is_help=True)

UrlOption = Annotated[str | None, typer.Option("--url", help="Store URL (default: WMSTUDIO_DATABASE_URL or SQLite).")]


@app.command()
def upgrade(url: UrlOption = None) -> None:
    """Create the store or apply pending migrations (safe to run at every deploy)."""
    from wmstudio.store.migrate import upgrade_to_head
    from wmstudio.store.session import masked, resolve_url

    revision = upgrade_to_head(url)
    typer.echo(f"{masked(resolve_url(url))} is at revision {revision}")


@app.command()
def status(
    url: UrlOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the status as JSON.")] = False,
) -> None:
    """Schema revision, row counts, datasets and open flags per kind."""
    from sqlalchemy import func, inspect, select

    from wmstudio.store import models
    from wmstudio.store.migrate import current_revision, head_revision
    from wmstudio.store.session import get_engine, masked, resolve_url, session_factory

    url = resolve_url(url)
    revision = current_revision(url)
    result: dict = {"url": masked(url), "revision": revision, "head": head_revision(), "tables": {}, "datasets": []}
    if revision is not None and inspect(get_engine(url)).has_table("images"):
        with session_factory(url, migrate=False)() as session:
            for model in (
                models.Dataset,
                models.DatasetVersion,
                models.Image,
                models.Label,
                models.Prediction,
                models.Flag,
                models.QueueItem,
            ):
                result["tables"][model.__tablename__] = session.scalar(select(func.count()).select_from(model))
            for dataset in session.scalars(select(models.Dataset).order_by(models.Dataset.name)):
                images = session.scalar(select(func.count()).where(models.Image.dataset_id == dataset.id))
                flags = session.execute(
                    select(models.Flag.kind, models.Flag.status, func.count())
                    .join(models.Image)
                    .where(models.Image.dataset_id == dataset.id)
                    .group_by(models.Flag.kind, models.Flag.status)
                ).all()
                result["datasets"].append(
                    {
                        "name": dataset.name,
                        "root": dataset.root,
                        "images": images,
                        "flags": {f"{kind}:{state}": count for kind, state, count in flags},
                    }
                )
    if as_json:
        typer.echo(json.dumps(result, indent=1))
        return
    typer.echo(f"store    {result['url']}")
    typer.echo(f"revision {revision or '(empty: run `wmstudio store upgrade`)'} (head {result['head']})")
    for table, count in result["tables"].items():
        typer.echo(f"  {table:<17} {count}")
    for dataset in result["datasets"]:
        flags = ", ".join(f"{k} {v}" for k, v in sorted(dataset["flags"].items())) or "no flags"
        typer.echo(f"dataset {dataset['name']}: {dataset['images']} images; {flags}")


@app.command()
def sync(
    dataset: Annotated[str, typer.Argument(help="Ingested dataset name, or a dataset folder holding manifest.json.")],
    url: UrlOption = None,
) -> None:
    """Mirror a dataset's manifest into the store (idempotent; one transaction)."""
    from wmstudio.data.manifest import MANIFEST_NAME, Manifest
    from wmstudio.settings import get_settings
    from wmstudio.store.session import transaction
    from wmstudio.store.sync import import_manifest

    folder = get_settings().datasets_dir / dataset
    if not (folder / MANIFEST_NAME).exists():
        folder = Path(dataset)
    if not (folder / MANIFEST_NAME).exists():
        typer.echo(f"error: no dataset {dataset!r} (no {MANIFEST_NAME} under datasets_dir or at that path)", err=True)
        raise typer.Exit(2)
    manifest = Manifest.load(folder)
    with transaction(url) as session:
        report = import_manifest(session, manifest, manifest.name, folder.resolve())
    typer.echo(
        f"{report.dataset}: {report.added} added, {report.updated} updated, {report.unchanged} unchanged "
        f"(data version {report.version})"
    )
