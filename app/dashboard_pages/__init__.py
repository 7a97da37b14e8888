"""The dashboard's pages, one module each, in sidebar order.

Each module exposes ``TITLE`` and ``render(context)``; ``PAGES`` maps the ``?page=`` key to it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from app.dashboard_pages import curation, models, overview, predictions, queue, upload
from app.dashboard_pages.common import Context


@dataclass(frozen=True)
class Page:
    title: str
    render: Callable[[Context], None]


PAGES: dict[str, Page] = {
    module.__name__.rsplit(".", 1)[-1]: Page(module.TITLE, module.render)
    for module in (overview, predictions, queue, curation, models, upload)
}
