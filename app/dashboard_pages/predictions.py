"""Predictions browser: the model's output on every photo, against the ground truth.

Predictions are asked of the API once per (dataset, model version) with a low score floor and
kept in the store; the threshold slider then re-judges them locally, so moving it is instant and
the outcome filter (TP / FP / FN / TN) always agrees with the overlay drawn at the same value.
"""

from __future__ import annotations

from pathlib import Path

import altair as alt
import pandas as pd
import streamlit as st

from app.dashboard_pages.common import (
    BRAND_COLOURS,
    Context,
    api_error_text,
    draw_truth,
    guarded,
    letterbox,
    no_dataset_message,
)
from app.dashboard_pages.outcomes import OUTCOMES, Judged, judge
from wmstudio.client import WatermarkClient
from wmstudio.data.manifest import Item

TITLE = "Predictions"
SCORE_FLOOR = 0.05  # candidates kept from the API; the slider cannot go below it
PAGE_SIZE = 12
COLUMNS = 4


@st.cache_data(show_spinner=False, max_entries=512)
def _overlay(api_url: str, path: str, mode: str, threshold: float, version: str) -> bytes:
    """The API's overlay, cached per model version (``version`` is part of the key on purpose)."""
    with WatermarkClient(api_url) as client:
        return client.overlay(Path(path), mode=mode, min_score=threshold)


def _predict_missing(context: Context, items: list[Item], version: str) -> dict[str, dict]:
    """Ask the API for the photos without a stored prediction, in batches, with a progress bar."""
    from app.dashboard_data import save_predictions, sync_dataset_to_store

    folder = context.dataset_dir
    assert folder is not None and context.dataset is not None
    batch_size = max(1, int(context.settings.max_batch_files))
    records: dict[str, dict] = {}
    bar = st.progress(0.0, text=f"Predicting {len(items)} photos through the API…")
    for start in range(0, len(items), batch_size):
        chunk = items[start : start + batch_size]
        results = context.client.detect_batch([folder / item.path for item in chunk], min_score=SCORE_FLOOR)
        for item, result in zip(chunk, results, strict=True):
            if result.get("error"):
                records[item.sha256] = {"detections": [], "error": result["error"], "model_version": version}
            else:
                records[item.sha256] = result
        bar.progress(min(1.0, (start + len(chunk)) / len(items)), text=f"Predicted {start + len(chunk)}/{len(items)}")
    bar.empty()
    stored = guarded(
        lambda: (sync_dataset_to_store(context.dataset, folder), save_predictions(context.dataset, records, version)),
        "store the predictions",
    )
    if stored is None:
        st.caption("Predictions are kept for this session only.")
    return records


def _predictions(context: Context, version: str) -> dict[str, dict] | None:
    """Stored predictions plus fresh ones for photos that have none (session-cached)."""
    from app.dashboard_data import load_predictions

    assert context.manifest is not None and context.dataset is not None
    key = f"predictions:{context.dataset}:{version}:{context.manifest.version()}"
    if key in st.session_state:
        return st.session_state[key]
    records = guarded(lambda: load_predictions(context.dataset, version), "read stored predictions") or {}
    missing = [item for sha, item in sorted(context.manifest.items.items()) if sha not in records]
    if missing and context.api_ok:
        fresh = guarded(lambda: _predict_missing(context, missing, version), "predict the photos")
        if fresh is None:
            return None
        records |= fresh
    elif missing:
        st.warning(f"{len(missing)} photos have no stored prediction and the API is down: they are not shown.")
    st.session_state[key] = records
    return records


def _filters(default_threshold: float) -> tuple[float, str, list[str], tuple[float, float], list[str]]:
    left, middle, right = st.columns([2, 2, 3])
    threshold = left.slider("Threshold", SCORE_FLOOR, 1.0, default_threshold, 0.01, key="pred_threshold")
    mode = left.radio("Overlay", ["boxes", "heatmap"], horizontal=True, key="pred_mode")
    brands = middle.multiselect("Brand (truth or predicted)", list(BRAND_COLOURS), key="pred_brands")
    score_range = middle.slider("Top score range", 0.0, 1.0, (0.0, 1.0), 0.01, key="pred_scores")
    outcomes = right.multiselect(
        "Outcome against ground truth",
        list(OUTCOMES),
        key="pred_outcomes",
        help="TP: labelled brand found · FP: a brand found that is not there · FN: labelled brand missed · "
        "TN: clean photo, nothing found",
    )
    return threshold, mode, brands, score_range, outcomes


def _keep(judged: Judged, brands: list[str], score_range: tuple[float, float], outcomes: list[str]) -> bool:
    shown = {judged.truth or "none", *judged.predicted} if judged.predicted else {judged.truth or "none"}
    if brands and not shown & set(brands):
        return False
    if not score_range[0] <= judged.top_score <= score_range[1]:
        return False
    return not outcomes or bool(set(judged.outcomes) & set(outcomes))


def _outcome_chart(judged: dict[str, Judged]) -> None:
    counts = {o: sum(o in j.outcomes for j in judged.values()) for o in OUTCOMES}
    frame = pd.DataFrame({"outcome": list(counts), "photos": list(counts.values())})
    chart = (
        alt.Chart(frame, title="Outcomes at this threshold (all photos)")
        .mark_bar()
        .encode(
            x=alt.X("outcome:N", sort=list(OUTCOMES), axis=alt.Axis(labelAngle=0)),
            y="photos:Q",
            color=alt.Color(
                "outcome:N",
                scale=alt.Scale(domain=list(OUTCOMES), range=["#2a9d8f", "#e76f51", "#f4a261", "#8d99ae"]),
                legend=None,
            ),
            tooltip=["outcome", "photos"],
        )
        .properties(height=180)
    )
    st.altair_chart(chart, width="stretch")


def _image(context: Context, item: Item, mode: str, threshold: float, version: str) -> bytes | None:
    """The API overlay when the API is up; the ground truth drawn locally otherwise."""
    folder = context.dataset_dir
    assert folder is not None
    if context.api_ok:
        try:
            return _overlay(context.settings.api_url, str(folder / item.path), mode, round(threshold, 2), version)
        except Exception as exc:
            st.caption(f"overlay unavailable: {api_error_text(exc)}")
    return draw_truth(folder / item.path, [(b.brand, b.box) for b in item.boxes])


def _caption(item: Item, judged: Judged) -> str:
    predicted = ", ".join(f"{b} {s:.2f}" for b, s in sorted(judged.predicted.items())) or "nothing"
    return f"{'/'.join(judged.outcomes)} · truth: {item.brand or 'none'} · predicted: {predicted}"


def _grid(
    context: Context, shown: list[Item], judged: dict[str, Judged], mode: str, threshold: float, version: str
) -> None:
    pages = max(1, -(-len(shown) // PAGE_SIZE))
    page = st.columns(4)[0].number_input(f"Page (of {pages})", 1, pages, 1, key="pred_page") if pages > 1 else 1
    chunk = shown[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    for index, item in enumerate(chunk):
        if index % COLUMNS == 0:  # a fresh row of columns, so cards line up whatever their captions
            columns = st.columns(COLUMNS)
        with columns[index % COLUMNS]:
            picture = _image(context, item, mode, threshold, version)
            if picture is not None:
                st.image(letterbox(picture), caption=_caption(item, judged[item.sha256]), width="stretch")
            if st.button("Details", key=f"detail-{item.sha256}"):
                st.session_state["pred_detail"] = item.sha256


def _detail(
    context: Context, item: Item, record: dict, judged: Judged, mode: str, threshold: float, version: str
) -> None:
    st.subheader(f"Detail: {Path(item.origin).name or item.path}")
    left, right = st.columns([3, 2])
    with left:
        folder = context.dataset_dir
        assert folder is not None
        if context.api_ok:
            full = guarded(
                lambda: _overlay(context.settings.api_url, str(folder / item.path), mode, round(threshold, 2), version),
                "draw the overlay",
            )
            if full is not None:
                st.image(full, caption=f"{mode} overlay at threshold {threshold:.2f}", width="stretch")
        else:
            st.image(str(folder / item.path), caption="API down: photo without overlay", width="stretch")
    with right:
        shown = {**record, "detections": [d for d in record.get("detections", []) if d["score"] >= threshold]}
        st.json(
            {
                "file": item.origin or item.path,
                "sha256": item.sha256,
                "split": item.split,
                "outcome": list(judged.outcomes),
                "ground_truth": {"brand": item.brand, "boxes": [{"brand": b.brand, "box": b.box} for b in item.boxes]},
                "prediction": shown,
            }
        )


def render(context: Context) -> None:
    st.title(TITLE)
    manifest = context.manifest
    if manifest is None:
        no_dataset_message()
        return
    if not manifest.items:
        st.info(f"Dataset **{context.dataset}** is empty: run `wmstudio ingest PATH --name {context.dataset}`.")
        return
    if not context.api_ok:
        st.error(
            st.error(
                f"The detection API is not reachable ({context.api_message}). Start it with `wmstudio serve` "
                "or `make run`; showing stored predictions only."
            )
        )
    version = str(context.model.get("version") or guarded(context.registry.champion, "read the registry") or "unknown")
    records = _predictions(context, version)
    if records is None:
        return
    if not records:
        st.info("No predictions to show yet: start the API and reload this page to predict the dataset.")
        return
    threshold, mode, brands, score_range, outcomes = _filters(float(context.model.get("threshold", 0.5)))
    judged = {
        sha: judge(manifest.items[sha].brand, rec.get("detections", []), threshold)
        for sha, rec in records.items()
        if sha in manifest.items
    }
    _outcome_chart(judged)
    shown = [manifest.items[sha] for sha in sorted(judged) if _keep(judged[sha], brands, score_range, outcomes)]
    st.markdown(f"**{len(shown)}** of {len(judged)} photos match · model `{version}`")
    if not shown:
        st.info("No photo matches these filters: widen the score range or clear the brand / outcome filters.")
        return
    _grid(context, shown, judged, mode, threshold, version)
    chosen = st.session_state.get("pred_detail")
    item = manifest.items.get(chosen) if chosen in judged else shown[0]
    if item is not None:
        st.divider()
        _detail(context, item, records[item.sha256], judged[item.sha256], mode, threshold, version)
