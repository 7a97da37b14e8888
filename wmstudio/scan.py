"""Bulk scan: ``wmstudio scan MANIFEST --shard i/n`` and ``wmstudio scan-merge``.

A listing portal checks millions of photos at once. The work is a text manifest (one image
path per line); each worker takes a deterministic slice of it (line index modulo ``n``), so a
Kubernetes Indexed Job can give pod ``i`` the shard ``i/n`` with no coordination, and a lost
pod is re-run on exactly the same photos. Every line of output carries the manifest index, so
``scan-merge`` can put the shards back in order and prove that none is missing or doubled:
merged shards are byte-identical to one unsharded scan.

A bad photo never stops a scan (it gets an ``error`` record); only a broken setup does (no
manifest, bad shard spec, no model), with exit code 2.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Annotated

import typer

from wmstudio.settings import get_settings


class ScanError(RuntimeError):
    """The scan or merge cannot go on (bad input, not a bad photo)."""


@dataclass(frozen=True)
class Entry:
    """One manifest line: its index among the manifest's entries and the path as written."""

    index: int
    file: str


def parse_shard(spec: str) -> tuple[int, int]:
    """``"i/n"`` -> ``(i, n)`` with ``0 <= i < n``."""
    try:
        index_text, count_text = spec.split("/")
        index, count = int(index_text), int(count_text)
    except ValueError:
        raise ScanError(f"--shard must look like i/n (for example 0/4), not {spec!r}") from None
    if count < 1 or not 0 <= index < count:
        raise ScanError(f"--shard {spec}: need n >= 1 and 0 <= i < n")
    return index, count


def read_manifest(path: Path) -> list[Entry]:
    """Entries of a manifest; blank lines and ``#`` comments are not entries and take no index."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ScanError(f"cannot read the manifest {path}: {exc.strerror}") from exc
    files = [line.strip() for line in lines]
    return [Entry(index, file) for index, file in enumerate(f for f in files if f and not f.startswith("#"))]


def shard_entries(entries: list[Entry], index: int, count: int) -> list[Entry]:
    """The entries of shard ``index`` of ``count``: every ``count``-th, starting at ``index``."""
    return [entry for entry in entries if entry.index % count == index]


def dumps(record: dict) -> str:
    """The one serialisation of a record, shared by scan and merge so their bytes agree."""
    return json.dumps(record, ensure_ascii=False, separators=(", ", ": "))


def scan_records(entries: Iterable[Entry], base: Path, min_score: float | None) -> Iterator[dict]:
    """Run the champion model over the entries; relative paths are relative to ``base``."""
    from wmstudio.imaging import ImageError, decode_image
    from wmstudio.predict import prediction_record
    from wmstudio.registry import Registry, RegistryError
    from wmstudio.runtime import Detector

    settings = get_settings()
    try:
        detector = Detector.from_registry(Registry.from_settings(settings), threads=settings.inference_threads)
    except RegistryError as exc:
        raise ScanError(str(exc)) from exc
    for entry in entries:
        path = Path(entry.file)
        if not path.is_absolute():
            path = base / path
        try:
            decoded = decode_image(path, settings.max_image_pixels, draft_size=detector.decode_size)
        except ImageError as exc:
            yield {"index": entry.index, "file": entry.file, "error": {"code": exc.code, "message": exc.message}}
            continue
        yield {"index": entry.index, "file": entry.file, **prediction_record(detector, decoded, min_score)}


def write_lines(records: Iterable[dict], out: Path | None) -> None:
    """Write JSON lines to ``out`` atomically (a file that exists is complete) or to stdout."""
    if out is None:
        for record in records:
            sys.stdout.write(dumps(record) + "\n")
        sys.stdout.flush()
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    try:
        with partial.open("w", encoding="utf-8") as handle:
            for record in records:
                handle.write(dumps(record) + "\n")
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, out)


def _load_shard(path: Path) -> Iterator[dict]:
    try:
        handle: IO[str] = path.open(encoding="utf-8")
    except OSError as exc:
        raise ScanError(f"cannot read shard file {path}: {exc.strerror}") from exc
    with handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                int(record["index"])
            except (ValueError, KeyError, TypeError):
                raise ScanError(f"{path}:{number} is not a scan record") from None
            yield record


def _ranges(numbers: list[int]) -> str:
    shown = ", ".join(str(n) for n in numbers[:10])
    return shown + (f" and {len(numbers) - 10} more" if len(numbers) > 10 else "")


def merge_records(inputs: list[Path], manifest: Path | None = None) -> list[dict]:
    """All shard records sorted by index; every index from 0 to the last must appear exactly once.

    With ``manifest``, the indices must be exactly the manifest's entries (with the same files),
    which also catches a missing last shard.
    """
    seen: dict[int, Path] = {}
    records: list[dict] = []
    for path in inputs:
        for record in _load_shard(path):
            index = int(record["index"])
            if index in seen:
                raise ScanError(f"index {index} appears twice ({seen[index]} and {path}): a shard was merged twice")
            seen[index] = path
            records.append(record)
    records.sort(key=lambda record: int(record["index"]))
    if manifest is not None:
        entries = read_manifest(manifest)
        expected = len(entries)
        for record in records:
            index = int(record["index"])
            if index < expected and record.get("file") != entries[index].file:
                raise ScanError(
                    f"index {index} is {record.get('file')!r} but the manifest says {entries[index].file!r}"
                )
    else:
        expected = int(records[-1]["index"]) + 1 if records else 0
    missing = [i for i in range(expected) if i not in seen]
    extra = sorted(i for i in seen if i >= expected)
    if missing:
        raise ScanError(f"indices missing: {_ranges(missing)} (a shard file is missing or incomplete)")
    if extra:
        raise ScanError(f"indices beyond the manifest's {expected} entries: {_ranges(extra)}")
    return records


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def scan_command(
    manifest: Annotated[Path, typer.Argument(help="Text file: one image path per line (# comments allowed).")],
    shard: Annotated[str, typer.Option(help="i/n: scan the entries whose index % n == i.")] = "0/1",
    out: Annotated[Path | None, typer.Option(help="JSON lines file (default: stdout); written atomically.")] = None,
    min_score: Annotated[float | None, typer.Option(help="Score cut-off (default: the model's threshold).")] = None,
) -> None:
    """Scan a manifest of photos (or one shard of it) with the champion model; one JSON line per photo."""
    from tqdm import tqdm

    from wmstudio.offline import apply_offline_env

    apply_offline_env(get_settings().state_dir)
    try:
        index, count = parse_shard(shard)
        entries = shard_entries(read_manifest(manifest), index, count)
        errors = 0
        with tqdm(total=len(entries), desc=f"scan {index}/{count}", unit="img", file=sys.stderr, mininterval=2) as bar:

            def progress(records: Iterable[dict]) -> Iterator[dict]:
                nonlocal errors
                for record in records:
                    errors += "error" in record
                    bar.update()
                    yield record

            write_lines(progress(scan_records(entries, manifest.parent, min_score)), out)
    except ScanError as exc:
        _fail(str(exc))
    typer.echo(f"scanned {len(entries)} photos of shard {index}/{count}, {errors} unreadable", err=True)


def merge_command(
    inputs: Annotated[list[Path], typer.Argument(help="Shard files written by `wmstudio scan --shard`.")],
    out: Annotated[Path, typer.Option(help="Merged JSON lines file, sorted by manifest index.")],
    manifest: Annotated[
        Path | None, typer.Option(help="The scanned manifest: check that every entry has exactly one record.")
    ] = None,
) -> None:
    """Merge shard files into one, in manifest order; fail if an index is missing or duplicated."""
    try:
        records = merge_records(inputs, manifest)
    except ScanError as exc:
        _fail(str(exc), code=1)
    write_lines(records, out)
    typer.echo(f"merged {len(records)} records from {len(inputs)} shard files into {out}", err=True)
