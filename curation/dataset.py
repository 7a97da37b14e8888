"""Turn the CLI's DATASET_OR_PATH into a loaded manifest that is also mirrored in the store.

A folder holding ``manifest.json`` is used as it is; any other existing path is a source folder
(or label file) and is ingested first, into the dataset built from that very path before
(:mod:`wmstudio.data.identity`: by resolved path, never by folder name alone), so ``wmstudio
curate duplicates ~/Downloads/photos`` works on a folder nobody has ingested yet, and a second
``photos`` folder elsewhere is refused instead of mixed in. A path wins over a dataset name of
the same spelling; a name that is no path is looked up under ``datasets_dir``.

The dataset mirrors its source: files deleted or renamed there leave the dataset (ingest with
``prune``), and their flags are closed, not reported as open.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from wmstudio.data.manifest import MANIFEST_NAME, Item, Manifest
from wmstudio.settings import Settings


class CurationError(ValueError):
    """The target cannot be curated (unknown name, unreadable source, a name taken by another folder)."""


@dataclass
class CurationDataset:
    name: str
    folder: Path
    manifest: Manifest

    def path_of(self, key: str) -> Path:
        return self.folder / self.manifest.items[key].path

    def items(self) -> list[Item]:
        """Items in a stable order (by key), the order every method works in."""
        return [self.manifest.items[key] for key in sorted(self.manifest.items)]


def _ingest_path(source: Path, settings: Settings, name: str | None) -> Path:
    from wmstudio.data.identity import DatasetIdentityError, dataset_for_source
    from wmstudio.data.ingest import IngestError, ingest

    resolved = source.resolve()
    default = (resolved.stem if resolved.is_file() else resolved.name) or "default"
    try:
        dataset_name = dataset_for_source(settings.datasets_dir, source, name, default)
        folder = settings.datasets_dir / dataset_name
        ingest(
            source,
            folder,
            name=dataset_name,
            max_pixels=settings.max_image_pixels,
            prune=True,
            label_studio_url=settings.label_studio_url,
        )
    except DatasetIdentityError as exc:
        raise CurationError(str(exc)) from exc
    except IngestError as exc:
        raise CurationError(f"cannot ingest {source}: {exc}") from exc
    return folder


def resolve_dataset(target: str, settings: Settings, name: str | None = None) -> CurationDataset:
    path = Path(target).expanduser()
    named = settings.datasets_dir / target
    if (path / MANIFEST_NAME).exists():
        folder = path
    elif path.exists():
        folder = _ingest_path(path, settings, name)
    elif "/" not in target and (named / MANIFEST_NAME).exists():
        folder = named
    else:
        raise CurationError(f"{target!r} is neither a dataset under {settings.datasets_dir} nor an existing path")
    manifest = Manifest.load(folder)
    return CurationDataset(name or manifest.name, folder.resolve(), manifest)


def sync_to_store(dataset: CurationDataset, url: str | None = None) -> int:
    """Make sure every image of the dataset has a row (flags point at images); returns flags closed.

    Refuses a store dataset of the same name that belongs to another folder, and closes the
    open (or accepted) flags of images that are no longer in the manifest: their files left.
    """
    from sqlalchemy import select

    from wmstudio.store.models import Dataset, Flag, Image
    from wmstudio.store.session import transaction
    from wmstudio.store.sync import import_manifest

    with transaction(url, immediate=True) as session:
        row = session.scalar(select(Dataset).where(Dataset.name == dataset.name))
        if row is not None and row.root and Path(row.root).resolve() != dataset.folder.resolve():
            raise CurationError(
                f"the store's dataset {dataset.name!r} is the folder {row.root}, not {dataset.folder}; pass "
                "--name NEW to curate this one as a dataset of its own"
            )
        import_manifest(session, dataset.manifest, dataset.name, dataset.folder)
        current = session.execute(
            select(Flag, Image.sha256)
            .join(Image)
            .join(Dataset)
            .where(Dataset.name == dataset.name, Flag.status.in_(("open", "accepted")))
            .with_for_update()
        ).all()
        left = [flag for flag, sha256 in current if sha256 not in dataset.manifest.items]
        for flag in left:
            flag.status = "closed"
            flag.details = {**(flag.details or {}), "closed_because": "the file left the dataset"}
        return len(left)
