"""Upload: drop photos, get the API's predictions and overlays, optionally add them to the pool.

The pool is the store's set of unlabelled photos; ``wmstudio queue build`` ranks it into the
labelling queue, so an interesting upload reaches a labeller without anyone copying files.
"""

from __future__ import annotations

import streamlit as st

from app.dashboard_pages.common import Context, api_error_text

TITLE = "Upload"


def _analyse(context: Context, name: str, data: bytes, mode: str, threshold: float) -> dict | None:
    """Detect and draw one photo; an API refusal (not an image, too large) is a message, not a crash."""
    try:
        record = context.client.detect(data, filename=name, min_score=threshold)
        overlay = context.client.overlay(data, mode=mode, min_score=threshold)
    except Exception as exc:
        st.error(f"**{name}**: {api_error_text(exc)}")
        return None
    left, right = st.columns([3, 2])
    verdict = "watermarked" if record["watermarked"] else "clean"
    left.image(overlay, caption=f"{name}: {verdict}", width="stretch")
    right.json(record)
    return record


def render(context: Context) -> None:
    from app.dashboard_data import add_to_pool, pool_size

    st.title(TITLE)
    if not context.api_ok:
        st.error(
            f"The detection API is not reachable ({context.api_message}). Uploads need it for predictions: "
            "start it with `wmstudio serve` or `make run`."
        )
        return
    files = st.file_uploader(
        "Drop listing photos",
        type=["jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff"],
        accept_multiple_files=True,
        key="up_files",
    )
    left, middle, right = st.columns(3)
    mode = left.radio("Overlay", ["boxes", "heatmap"], horizontal=True, key="up_mode")
    threshold = middle.slider("Threshold", 0.05, 1.0, float(context.model.get("threshold", 0.5)), 0.01, key="up_thr")
    to_pool = right.checkbox("Add to the unlabelled pool", key="up_pool", help="Stored for labelling via the queue")
    if not files:
        st.info("Drop one or more photos above to see what the model finds in them.")
        return
    bar = st.progress(0.0, text=f"Analysing {len(files)} photo(s)…")
    added = 0
    for index, upload in enumerate(files):
        data = upload.getvalue()
        record = _analyse(context, upload.name, data, mode, threshold)
        if record is not None and to_pool:
            try:
                _, new = add_to_pool(context.settings, data, upload.name, record)
                added += int(new)
            except Exception as exc:
                st.error(f"**{upload.name}** could not be added to the pool: {type(exc).__name__}: {exc}")
        bar.progress((index + 1) / len(files), text=f"Analysed {index + 1}/{len(files)}")
    bar.empty()
    if to_pool:
        try:
            size = pool_size(context.settings)
        except Exception:
            size = None
        st.success(
            f"{added} new photo(s) added to the pool" + (f" ({size} unlabelled in total)" if size is not None else "")
        )
