"""Where a label file may point: inside its own folder, or at the configured Label Studio.

Label files (CSV, COCO, YOLO, Label Studio exports) name the photos they describe, and a label
file is data from someone else: ``../../home/me/.ssh/id_rsa``, ``/etc/passwd``,
``file:///…`` or ``http://elsewhere/…`` must not make an ingest read (or a later step fetch)
anything outside the folder the user chose. Each bad reference is an :class:`UnsafeReference`
that ingest reports for that one item; the rest of the import goes on.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from urllib.parse import parse_qs, unquote, urlsplit

LS_LOCAL_FILES = "/data/local-files/"
LS_UPLOADS = "/data/upload/"


class UnsafeReference(ValueError):
    """A label file names a file outside its folder, or a URL on a host other than Label Studio's."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def inside(root: Path, name: str) -> Path:
    """``root / name``, refused unless it stays inside ``root`` (after symlinks are followed too).

    ``..`` is refused outright even when it would land back inside: a label file that climbs is
    not one to trust, and the rule is easy to state.
    """
    text = str(name).strip()
    if not text:
        raise UnsafeReference("outside_source", "empty file name")
    if text.lower().startswith("file:"):
        raise UnsafeReference("outside_source", f"{text!r}: file:// references are not accepted")
    parts = PurePosixPath(text.replace("\\", "/"))
    if parts.is_absolute() or Path(text).is_absolute():
        raise UnsafeReference("outside_source", f"{text!r} is an absolute path; names must be relative to {root}")
    if ".." in parts.parts:
        raise UnsafeReference("outside_source", f"{text!r} climbs out of {root} with '..'")
    path = Path(root) / parts
    try:
        path.resolve().relative_to(Path(root).resolve())
    except ValueError:
        raise UnsafeReference("outside_source", f"{text!r} leads outside {root} (symbolic link)") from None
    return path


def _host(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{(parts.netloc or '').lower()}"


def labelstudio_image(ref: str, root: Path, label_studio_url: str) -> Path:
    """The local file a Label Studio task's image refers to, confined to ``root``.

    Accepted: ``/data/local-files/?d=REL`` (REL under ``root``), ``/data/upload/N/NAME`` (NAME
    beside the export: Label Studio's own upload, downloaded with it), and a plain relative
    name, each optionally prefixed with the configured Label Studio URL. Refused: any other host
    or scheme (``https://elsewhere``, ``s3://``, ``file://``), absolute paths and ``..``.
    """
    text = str(ref).strip()
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme == "file":
        raise UnsafeReference("outside_source", f"{text!r}: file:// references are not accepted")
    if scheme in {"http", "https"}:
        if _host(text) != _host(label_studio_url):
            raise UnsafeReference(
                "foreign_host", f"{text!r} is not on the configured Label Studio ({label_studio_url}); not fetched"
            )
    elif scheme or parts.netloc:
        raise UnsafeReference("foreign_host", f"{text!r}: only Label Studio URLs and local files are accepted")
    path = unquote(parts.path)
    if path.startswith(LS_LOCAL_FILES) or path.rstrip("/") == LS_LOCAL_FILES.rstrip("/"):
        names = parse_qs(parts.query).get("d")
        if not names:
            raise UnsafeReference("outside_source", f"{text!r} names no file (no ?d=)")
        return inside(root, names[0])
    if path.startswith(LS_UPLOADS):
        return inside(root, PurePosixPath(path).name)
    if scheme:
        raise UnsafeReference("foreign_host", f"{text!r} is not a Label Studio file URL")
    return inside(root, path)
