"""Which dataset a source folder belongs to: decided by its resolved path, never by its name alone.

Two folders called ``photos`` (``~/a/photos`` and ``~/b/photos``) are two datasets. A source is
looked up among the manifests' ``sources`` first, so curating the same folder again (from any
working directory, through any symbolic link) finds its dataset; a new source gets the name it
asks for only when no other source holds that name, and otherwise a clear refusal says what to
pass instead. Nothing is ever mixed silently.
"""

from __future__ import annotations

from pathlib import Path

from wmstudio.data.manifest import MANIFEST_NAME, Manifest


class DatasetIdentityError(ValueError):
    """The dataset name asked for already belongs to another source."""


def dataset_holding(datasets_dir: Path, source: Path) -> str | None:
    """The name of the dataset under ``datasets_dir`` that was built from ``source``, if any."""
    resolved = str(Path(source).resolve())
    for manifest_file in sorted(Path(datasets_dir).glob(f"*/{MANIFEST_NAME}")):
        if resolved in Manifest.load(manifest_file.parent).sources:
            return manifest_file.parent.name
    return None


def dataset_for_source(
    datasets_dir: Path, source: Path, name: str | None, default: str, extend: bool = False, hint: str = "--name NEW"
) -> str:
    """The dataset ``source`` goes into; raises :class:`DatasetIdentityError` rather than mix two sources.

    ``name`` None: the dataset already built from this source, else ``default``. An explicit
    ``name`` is honoured, but a dataset of that name built from other sources is only extended
    when ``extend`` says so.
    """
    resolved = str(Path(source).resolve())
    if name is None:
        holder = dataset_holding(datasets_dir, source)
        if holder is not None:
            return holder
        name = default
    folder = Path(datasets_dir) / name
    if (folder / MANIFEST_NAME).exists() and not extend:
        sources = Manifest.load(folder).sources
        if sources and resolved not in sources:
            others = sources[0] + (f" and {len(sources) - 1} more" if len(sources) > 1 else "")
            raise DatasetIdentityError(
                f"dataset {name!r} already holds {others}, not {resolved}; pass {hint} to give this folder a "
                "dataset of its own"
            )
    return name
