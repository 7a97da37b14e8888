"""Overview / EDA: what is in the dataset, as charts (balance, sizes, where the marks sit).

The numbers come from :func:`training.eda.summarise`, the same function ``wmstudio eda`` prints,
so a reviewer and an engineer never look at two different counts.
"""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from app.dashboard_pages.common import BRAND_COLOURS, Context, guarded, no_dataset_message
from training.eda import HEATMAP_BINS, box_heatmap, summarise
from wmstudio.data.manifest import Manifest

TITLE = "Overview / EDA"
BRAND_SCALE = alt.Scale(domain=list(BRAND_COLOURS), range=list(BRAND_COLOURS.values()))


@st.cache_data(show_spinner="Summarising the dataset…", max_entries=16)
def _summary(folder: str, data_version: str) -> dict:
    """Cached per data version: near-duplicate hashing reads every photo."""
    from pathlib import Path

    return summarise(Manifest.load(Path(folder)), Path(folder))


def _items_frame(manifest: Manifest) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "width": i.width,
                "height": i.height,
                "aspect": i.width / max(i.height, 1),
                "brand": i.brand or "none",
                "split": i.split or "unassigned",
                "source": i.source,
                "boxes": len(i.boxes),
            }
            for i in manifest.items.values()
        ]
    )


def _boxes_frame(manifest: Manifest) -> pd.DataFrame:
    rows = [
        {
            "brand": b.brand,
            "rel_width": (b.box[2] - b.box[0]) / i.width,
            "rel_height": (b.box[3] - b.box[1]) / i.height,
            "centre_x": (b.box[0] + b.box[2]) / 2 / i.width,
            "centre_y": (b.box[1] + b.box[3]) / 2 / i.height,
        }
        for i in manifest.items.values()
        for b in i.boxes
    ]
    return pd.DataFrame(rows, columns=["brand", "rel_width", "rel_height", "centre_x", "centre_y"])


def _count_chart(counts: dict[str, int], field: str, title: str) -> alt.Chart:
    frame = pd.DataFrame({field: list(counts), "photos": list(counts.values())})
    colour = alt.Color(f"{field}:N", scale=BRAND_SCALE, legend=None) if field == "brand" else alt.Color(f"{field}:N")
    return (
        alt.Chart(frame, title=title)
        .mark_bar()
        .encode(
            x=alt.X(f"{field}:N", sort="-y", axis=alt.Axis(labelAngle=0)),
            y="photos:Q",
            color=colour,
            tooltip=[field, "photos"],
        )
        .properties(height=220)
    )


def _heatmap_chart(manifest: Manifest) -> alt.Chart:
    grid = box_heatmap(manifest)
    frame = pd.DataFrame(
        [
            {"x": (c + 0.5) / HEATMAP_BINS, "y": (r + 0.5) / HEATMAP_BINS, "boxes": float(grid[r, c])}
            for r in range(HEATMAP_BINS)
            for c in range(HEATMAP_BINS)
        ]
    )
    step = 1 / HEATMAP_BINS
    return (
        alt.Chart(frame, title="Where the marks are (boxes covering each cell)")
        .mark_rect()
        .encode(
            x=alt.X("x:Q", bin=alt.Bin(step=step, extent=[0, 1]), title="x / width"),
            y=alt.Y("y:Q", bin=alt.Bin(step=step, extent=[0, 1]), sort="descending", title="y / height"),
            color=alt.Color("boxes:Q", scale=alt.Scale(scheme="magma")),
            tooltip=["x", "y", "boxes"],
        )
        .properties(height=300)
    )


def _charts(manifest: Manifest, summary: dict) -> None:
    items, boxes = _items_frame(manifest), _boxes_frame(manifest)
    left, middle, right = st.columns(3)
    left.altair_chart(_count_chart(summary["brands"], "brand", "Class / brand balance"), width="stretch")
    middle.altair_chart(_count_chart(summary["splits"], "split", "Splits"), width="stretch")
    right.altair_chart(_count_chart(summary["sources"], "source", "Label sources"), width="stretch")

    left, right = st.columns(2)
    sizes = (
        alt.Chart(items, title="Image sizes")
        .mark_circle(size=40, opacity=0.7)
        .encode(x="width:Q", y="height:Q", color=alt.Color("brand:N", scale=BRAND_SCALE), tooltip=list(items.columns))
        .properties(height=280)
    )
    left.altair_chart(sizes, width="stretch")
    aspects = (
        alt.Chart(items, title="Aspect ratios (width / height)")
        .mark_bar()
        .encode(x=alt.X("aspect:Q", bin=alt.Bin(maxbins=20), title="aspect ratio"), y="count():Q")
        .properties(height=280)
    )
    right.altair_chart(aspects, width="stretch")

    if boxes.empty:
        st.info("No boxes in this dataset: box size and position charts appear once photos have box labels.")
        return
    left, right = st.columns(2)
    box_sizes = (
        alt.Chart(boxes, title="Box sizes (fraction of the photo)")
        .mark_circle(size=40, opacity=0.7)
        .encode(
            x=alt.X("rel_width:Q", title="width / photo width"),
            y=alt.Y("rel_height:Q", title="height / photo height"),
            color=alt.Color("brand:N", scale=BRAND_SCALE),
        )
        .properties(height=300)
    )
    left.altair_chart(box_sizes, width="stretch")
    right.altair_chart(_heatmap_chart(manifest), width="stretch")


def _versions() -> None:
    from app.dashboard_data import dataset_versions

    rows = guarded(dataset_versions, "read the dataset versions from the store")
    if rows is None:
        return
    if not rows:
        st.caption("No dataset versions in the store yet (they are recorded when a dataset is synced).")
        return
    frame = pd.DataFrame([vars(r) for r in rows])
    st.dataframe(frame, hide_index=True, width="stretch")
    chart = (
        alt.Chart(frame, title="Images per synced version")
        .mark_line(point=True)
        .encode(
            x=alt.X("created:T", title="synced", axis=alt.Axis(format="%d %b %H:%M", labelAngle=0, tickCount=4)),
            y="images:Q",
            color="dataset:N",
            tooltip=["dataset", "version", "images", "labels"],
        )
        .properties(height=220)
    )
    st.altair_chart(chart, width="stretch")


def render(context: Context) -> None:
    st.title(TITLE)
    manifest, folder = context.manifest, context.dataset_dir
    if manifest is None or folder is None:
        no_dataset_message()
        return
    if not manifest.items:
        st.info(
            f"Dataset **{context.dataset}** has no photos yet: run `wmstudio ingest PATH --name {context.dataset}`."
        )
        return
    summary = guarded(lambda: _summary(str(folder), manifest.version()), "summarise the dataset")
    if summary is None:
        return
    st.caption(f"Dataset **{summary['dataset']}** · data version `{summary['data_version']}`")
    cols = st.columns(5)
    cols[0].metric("Photos", summary["images"])
    cols[1].metric("Watermarked", summary["watermarked"])
    cols[2].metric("Boxes", summary["boxes"])
    cols[3].metric("Near-duplicate groups", summary["duplicate_groups"])
    cols[4].metric("Median size", f"{summary['width'].get('median', 0):.0f}×{summary['height'].get('median', 0):.0f}")
    for note in summary["notes"]:
        st.warning(note)
    _charts(manifest, summary)
    st.subheader("Dataset versions")
    _versions()
