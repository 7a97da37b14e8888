"""A static HTML gallery of duplicate clusters and outliers, for reviewers without the dashboard.

One self-contained file (thumbnails inlined as base64 JPEG), so it can be mailed, attached to a
ticket or opened from a CI artefact. Leaking clusters (members in different splits) come first.
"""

from __future__ import annotations

import base64
import io
from html import escape
from pathlib import Path

from PIL import Image

from curation.dataset import CurationDataset
from curation.duplicates import Cluster
from curation.findings import Finding

THUMB = 160
MAX_CLUSTERS = 300

STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5rem;background:#fafafa;color:#222}
.cluster{background:#fff;border:1px solid #ddd;border-radius:6px;margin:0 0 1rem;padding:.6rem}
.cluster.leak{border-color:#d33}
.members{display:flex;flex-wrap:wrap;gap:.6rem}
figure{margin:0;width:170px;font-size:.75rem;overflow-wrap:anywhere}
figure img{max-width:160px;max-height:160px;display:block;border:1px solid #ccc}
.keeper img{border:2px solid #2a2}
.badge{display:inline-block;padding:0 .4rem;border-radius:3px;background:#eee;margin-right:.3rem}
.leak .badge.leak{background:#d33;color:#fff}
"""


def thumbnail(path: Path) -> str:
    try:
        with Image.open(path) as image:
            image.draft("RGB", (THUMB * 2, THUMB * 2))
            small = image.convert("RGB")
            small.thumbnail((THUMB, THUMB))
    except OSError:
        return ""
    buffer = io.BytesIO()
    small.save(buffer, "JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def _figure(dataset: CurationDataset, key: str, caption: str, keeper: bool = False) -> str:
    item = dataset.manifest.items[key]
    name = Path(item.origin).name if item.origin else Path(item.path).name
    src = thumbnail(dataset.path_of(key))
    return (
        f'<figure class="{"keeper" if keeper else ""}"><img src="{src}" alt="{escape(name)}">'
        f"<figcaption><b>{escape(name)}</b><br>{item.width}×{item.height} · split {escape(item.split or '-')}"
        f"<br>{escape(caption)}</figcaption></figure>"
    )


def write_gallery(
    dataset: CurationDataset, clusters: list[Cluster], findings: list[Finding], outliers: list[Finding], out: Path
) -> Path:
    by_key = {(f.key, f.group): f for f in findings}
    ordered = sorted(clusters, key=lambda c: (not c.leak, -len(c.members), c.id))[:MAX_CLUSTERS]
    parts = [
        f"<!doctype html><meta charset='utf-8'><title>Duplicates · {escape(dataset.name)}</title>",
        f"<style>{STYLE}</style><h1>Duplicates and outliers · {escape(dataset.name)}</h1>",
        f"<p>{len(clusters)} clusters ({sum(c.leak for c in clusters)} spanning splits), "
        f"{len(findings)} flagged copies, {len(outliers)} outliers. Green border: the copy to keep.</p>",
    ]
    for cluster in ordered:
        badges = (
            f'<span class="badge">{escape(cluster.id)}</span><span class="badge">{len(cluster.members)} images</span>'
        )
        if cluster.leak:
            badges += f'<span class="badge leak">leak: {escape(" + ".join(cluster.splits))}</span>'
        figures = [_figure(dataset, cluster.keeper, "keep", keeper=True)]
        for key in cluster.members[1:]:
            finding = by_key.get((key, cluster.id))
            caption = f"{finding.kind.replace('_', ' ')} · {finding.score:.3f}" if finding else ""
            figures.append(_figure(dataset, key, caption))
        parts.append(
            f'<section class="cluster{" leak" if cluster.leak else ""}"><div>{badges}</div>'
            f'<div class="members">{"".join(figures)}</div></section>'
        )
    if outliers:
        figures = [_figure(dataset, f.key, f.reason) for f in outliers[:MAX_CLUSTERS]]
        parts.append(
            f'<h2>Outliers</h2><section class="cluster"><div class="members">{"".join(figures)}</div></section>'
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(parts), encoding="utf-8")
    return out
