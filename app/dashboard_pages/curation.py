"""Curation: duplicate clusters and label issues found by ``wmstudio curate``, to accept or dismiss.

Decisions are written to the store (status, reviewer, time) at once; ``wmstudio curate decide``
applies the accepted ones to the dataset, so a reviewer never edits a manifest by hand.
"""

from __future__ import annotations

from collections import defaultdict

import altair as alt
import pandas as pd
import streamlit as st

from app.dashboard_pages.common import Context, guarded, letterbox, thumb

TITLE = "Curation"
DUPLICATE_KINDS = ("exact_duplicate", "near_duplicate")
ISSUE_KINDS = ("label_issue", "label_conflict", "box_issue", "outlier")
STATUSES = ("open", "accepted", "dismissed", "closed")  # closed: the problem or its file is gone
MAX_CARDS = 40


def _decide(flag_ids: list[int], status: str, reviewer: str) -> None:
    from app.dashboard_data import decide_flag

    def apply() -> None:
        for flag_id in flag_ids:
            decide_flag(flag_id, status, reviewer)

    if guarded(lambda: apply() or True, f"store the decision '{status}'"):
        st.session_state["cur_message"] = f"{len(flag_ids)} finding(s) marked {status} by {reviewer}"
        st.rerun()


def _buttons(key: str, flag_ids: list[int], status: str, reviewer: str) -> None:
    accept, dismiss, reopen = st.columns(3)
    if status != "accepted" and accept.button("Accept", key=f"acc-{key}", type="primary"):
        _decide(flag_ids, "accepted", reviewer)
    if status != "dismissed" and dismiss.button("Dismiss", key=f"dis-{key}"):
        _decide(flag_ids, "dismissed", reviewer)
    if status != "open" and reopen.button("Reopen", key=f"reo-{key}"):
        _decide(flag_ids, "open", reviewer)


def _chart(rows: list) -> None:
    frame = pd.DataFrame([{"kind": r.kind, "decision": r.status} for r in rows])
    chart = (
        alt.Chart(frame, title="Findings by kind and decision")
        .mark_bar()
        .encode(
            x=alt.X("kind:N", axis=alt.Axis(labelAngle=0)),
            y="count():Q",
            color=alt.Color(
                "decision:N", scale=alt.Scale(domain=list(STATUSES), range=["#f4a261", "#2a9d8f", "#8d99ae", "#d9d9d9"])
            ),
        )
        .properties(height=200)
    )
    st.altair_chart(chart, width="stretch")


def _clusters(rows: list, reviewer: str) -> None:
    groups: dict[str, list] = defaultdict(list)
    for row in rows:
        groups[row.cluster or f"single-{row.id}"].append(row)
    if not groups:
        st.caption("No duplicate clusters with this status.")
        return
    ordered = sorted(groups.items(), key=lambda kv: -max(r.score for r in kv[1]))[:MAX_CARDS]
    for cluster, members in ordered:
        first = members[0]
        with st.container(border=True):
            st.markdown(
                f"**Cluster `{cluster}`** · {first.kind.replace('_', ' ')} · score {max(r.score for r in members):.2f} "
                f"· {len(members)} photo(s) flagged · status **{first.status}**  \n{first.reason}"
            )
            columns = st.columns(4)
            for index, member in enumerate(members[:4]):
                data = thumb(member.path, 480)
                if data is not None:
                    columns[index].image(letterbox(data), caption=member.sha256[:10], width="stretch")
            if len(members) > len(columns):
                st.caption(f"… and {len(members) - len(columns)} more photo(s) in this cluster")
            _buttons(f"c-{cluster}", [m.id for m in members], first.status, reviewer)


def _issues(rows: list, reviewer: str) -> None:
    if not rows:
        st.caption("No label issues with this status.")
        return
    for row in rows[:MAX_CARDS]:
        with st.container(border=True):
            picture, text = st.columns([1, 3])
            data = thumb(row.path, 480)
            if data is not None:
                picture.image(letterbox(data), width="stretch")
            else:
                picture.caption("photo missing")
            with text:
                st.markdown(
                    f"**{row.kind.replace('_', ' ')}** · score {row.score:.2f} · status **{row.status}**"
                    f"{f' by {row.decided_by}' if row.decided_by else ''}  \n{row.reason or 'no reason recorded'}"
                )
                if row.details:
                    st.caption(
                        ", ".join(f"{k}: {v}" for k, v in row.details.items() if not isinstance(v, (list, dict)))
                    )
                _buttons(f"i-{row.id}", [row.id], row.status, reviewer)


def render(context: Context) -> None:
    from app.dashboard_data import flags

    st.title(TITLE)
    if message := st.session_state.pop("cur_message", None):
        st.success(message)
    reviewer = context.user  # from the sign-in (app/login.py), not a box anyone can type into
    st.sidebar.caption(f"Decisions are recorded as **{reviewer}**")
    only_dataset = st.toggle("Only the selected dataset", value=True, key="cur_only", disabled=not context.dataset)
    rows = guarded(
        lambda: flags(context.dataset if only_dataset and context.dataset else None), "read curation findings"
    )
    if rows is None:
        return
    if not rows:
        st.info(
            "No curation findings yet. Run `wmstudio curate duplicates` and `wmstudio curate labels` "
            "to find duplicate clusters and likely label errors; they appear here for review."
        )
        return
    _chart(rows)
    wanted = st.multiselect("Show status", list(STATUSES), default=["open"], key="cur_status")
    shown = [r for r in rows if r.status in wanted]
    duplicates, issues = st.tabs(
        [
            f"Duplicate clusters ({sum(r.kind in DUPLICATE_KINDS for r in shown)})",
            f"Label issues & outliers ({sum(r.kind in ISSUE_KINDS for r in shown)})",
        ]
    )
    with duplicates:
        _clusters([r for r in shown if r.kind in DUPLICATE_KINDS], reviewer)
    with issues:
        _issues([r for r in shown if r.kind in ISSUE_KINDS], reviewer)
