"""Uncertainty queue: what to label next, ranked; push to Label Studio, see sync state, pull back.

The ranking itself is built by ``wmstudio queue build`` into the store; this page shows it and
drives the push/pull through :mod:`app.dashboard_pages.labelstudio_adapter`, so the page works
(read-only, with a message) even where Label Studio or the integration is missing.
"""

from __future__ import annotations

from collections.abc import Callable

import altair as alt
import pandas as pd
import streamlit as st

from app.dashboard_data import QueueRow
from app.dashboard_pages import labelstudio_adapter as ls
from app.dashboard_pages.common import Context, guarded, letterbox, thumb

TITLE = "Uncertainty queue"
STATUSES = ("pending", "sent", "labelled", "skipped")
STATUS_LABELS = {  # plain words: emoji need fonts a headless server or kiosk may not have
    "pending": ":orange[pending]",
    "sent": ":blue[sent to Label Studio]",
    "labelled": ":green[labelled]",
    "skipped": ":gray[skipped]",
}
MAX_ROWS = 60


def _run(action: str, function: Callable[..., ls.Outcome], *args: object) -> None:
    """Run a push/pull with a status box; every failure becomes a message below it."""
    outcome: ls.Outcome | None = None
    error = ""
    with st.status(f"{action}…") as status:
        try:
            outcome = function(*args)
        except ls.QueueUnavailable as exc:
            error = str(exc)
        except Exception as exc:  # Label Studio answered something unexpected
            error = f"{action} failed: {type(exc).__name__}: {exc}"
        if outcome is not None:
            status.update(label=outcome.message, state="complete" if outcome.ok else "error")
        else:
            status.update(label=f"{action}: failed", state="error")
    if outcome is None:
        st.error(error)
        return
    if not outcome.ok:
        st.warning(outcome.message)
        return
    if isinstance(outcome.details, dict) and outcome.details.get("project_id"):
        st.session_state["ls_project"] = outcome.details["project_id"]
    st.session_state["q_message"] = outcome.message  # redraw the list with the new sync states
    st.rerun()


def _status_chart(rows: list) -> None:
    counts = {s: sum(r.status == s for r in rows) for s in STATUSES}
    frame = pd.DataFrame({"sync": list(counts), "items": list(counts.values())})
    chart = (
        alt.Chart(frame, title="Sync status")
        .mark_bar()
        .encode(
            x=alt.X("sync:N", sort=list(STATUSES), title=None, axis=alt.Axis(labelAngle=0)),
            y="items:Q",
            color=alt.Color("sync:N", legend=None),
        )
        .properties(height=200)
    )
    st.altair_chart(chart, width="stretch")


def _project(context: Context, rows: list) -> int | None:
    """Label Studio's project id for task links, asked once per session and only when needed."""
    if "ls_project" not in st.session_state and any(r.task_id is not None for r in rows):
        st.session_state["ls_project"] = ls.project_id(context.settings)
    return st.session_state.get("ls_project")


def _row(context: Context, row: QueueRow, selectable: bool, project: int | None) -> bool:
    """One ranked item; returns whether it is ticked for the push."""
    tick, picture, text = st.columns([0.3, 1.2, 5], vertical_alignment="center")
    chosen = tick.checkbox(
        f"Select queue item {row.id}", key=f"q-{row.id}", disabled=not selectable, label_visibility="collapsed"
    )
    data = thumb(row.path, 480)
    if data is not None:
        picture.image(letterbox(data), width="stretch")
    else:
        picture.caption("photo missing")
    link = ""
    if row.task_id is not None:
        link = f" · [open task {row.task_id} in Label Studio]({ls.task_url(row.task_id, context.settings, project)})"
    text.markdown(
        f"**{row.score:.3f}** · {STATUS_LABELS.get(row.status, row.status)}{link}  \n"
        f"{row.reason or 'no reason recorded'}  \n"
        f"`{row.dataset}` · `{row.sha256[:12]}` · model {row.model_version or '?'}"
    )
    return chosen


def render(context: Context) -> None:
    from app.dashboard_data import queue

    st.title(TITLE)
    if message := st.session_state.pop("q_message", None):
        st.success(message)
    only_dataset = st.toggle("Only the selected dataset", value=False, key="q_only", disabled=not context.dataset)
    rows = guarded(lambda: queue(context.dataset if only_dataset else None), "read the queue from the store")
    if rows is None:
        return
    left, right = st.columns([3, 2])
    if right.button("Pull annotations from Label Studio", key="q_pull"):
        _run("Pulling annotations", ls.pull, context.settings)
        rows = queue(context.dataset if only_dataset else None)
    if not rows:
        st.info(
            "The labelling queue is empty. Build it with `wmstudio queue build`: it ranks unlabelled and "
            "uncertain photos by the current model. Upload photos on the Upload page to add to the pool."
        )
        return
    with left:
        _status_chart(rows)
    wanted = st.multiselect("Show status", list(STATUSES), default=["pending", "sent"], key="q_status")
    shown = [r for r in rows if r.status in wanted][:MAX_ROWS]
    st.markdown(f"**{len(shown)}** of {len(rows)} queue items, highest priority first")
    project = _project(context, shown)
    selected = [r.id for r in shown if _row(context, r, r.status in {"pending", "skipped"}, project)]
    if st.button(f"Push {len(selected)} selected to Label Studio", key="q_push", type="primary"):
        _run("Pushing to Label Studio", ls.push, selected, context.settings)
