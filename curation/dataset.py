"""Turn the CLI's DATASET_OR_PATH into a loaded manifest that is also mirrored in the store.

A name is looked up under ``datasets_dir``; a folder holding ``manifest.json`` is used as it is;
any other existing path is ingested first (into ``datasets_dir/<name>``), so ``wmstudio curate
duplicates ~/Downloads/photos`` works on a folder nobody has ingested yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from wmstudio.data.manifest import MANIFEST_NAME, Item, Manifest
from wmstudio.settings import Settings


class CurationError(ValueError):
    """The target cannot be curated (unknown name, unreadable source)."""


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


def resolve_dataset(target: str, settings: Settings, name: str | None = None) -> CurationDataset:
    named = settings.datasets_dir / target
    if "/" not in target and (named / MANIFEST_NAME).exists():
        folder = named
    elif (Path(target) / MANIFEST_NAME).exists():
        folder = Path(target)
    elif Path(target).exists():
        from wmstudio.data.ingest import IngestError, ingest

        source = Path(target)
        dataset_name = name or (source.stem if source.is_file() else source.name) or "default"
        folder = settings.datasets_dir / dataset_name
        try:
            ingest(source, folder, name=dataset_name, max_pixels=settings.max_image_pixels)
        except IngestError as exc:
            raise CurationError(f"cannot ingest {source}: {exc}") from exc
    else:
        raise CurationError(f"{target!r} is neither a dataset under {settings.datasets_dir} nor an existing path")
    manifest = Manifest.load(folder)
    return CurationDataset(name or manifest.name, folder.resolve(), manifest)


def sync_to_store(dataset: CurationDataset, url: str | None = None) -> None:
    """Make sure every image of the dataset has a row (flags point at images)."""
    from wmstudio.store.session import transaction
    from wmstudio.store.sync import import_manifest

    with transaction(url) as session:
        import_manifest(session, dataset.manifest, dataset.name, dataset.folder)
