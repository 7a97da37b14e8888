"""Models: registered versions side by side, PR curves, champion/challenger history, promote/rollback.

Promotion rewrites the registry's champion pointer (the API hot-reloads it), so the confirm step
is deliberate: one click changes what production serves.
"""

from __future__ import annotations

import json
from pathlib import Path

import altair as alt
import pandas as pd
import streamlit as st

from app.dashboard_pages.common import Context, api_error_text, guarded
from wmstudio.gate import GateConfig, GateFailed, gated_promote
from wmstudio.registry import Registry, RegistryError

TITLE = "Models"
EVAL_SETS = ("test_real", "test_synthetic")
# Validation figures (what the gate compares) first, then the test figures measured once per release.
HEADLINE = (
    "val_f1",
    "val_real_f1",
    "val_synthetic_ap50",
    "val_other_fp_rate",
    "test_f1",
    "test_real_f1",
    "test_other_fp_rate",
)
# Headline figures of older cards (before the validation-only gate) in the version history table.
OLDER_HEADLINE = ("real_test_f1", "synthetic_test_ap50", "synthetic_other_fp_rate")


def _cards(registry: Registry) -> dict[str, dict]:
    cards = {}
    for version in registry.versions():
        try:
            cards[version] = registry.card(version)
        except (OSError, ValueError) as exc:
            st.warning(f"model card of {version} cannot be read: {exc}")
    return cards


def _side_by_side(cards: dict[str, dict], champion: str | None) -> None:
    rows = []
    for version, card in cards.items():
        row = {
            "version": f"{version} ★" if version == champion else version,
            "created": card.get("created", ""),
            "threshold": card.get("threshold"),
            "data version": card.get("data_version", ""),
            "parent": card.get("parent") or "",
        }
        row |= {k: v for k, v in (card.get("metrics") or {}).items() if isinstance(v, (int, float))}
        rows.append(row)
    frame = pd.DataFrame(rows).set_index("version")
    st.dataframe(frame.T.astype(str), width="stretch")
    metrics = [
        {"version": v, "metric": m, "value": float(val)}
        for v, card in cards.items()
        for m, val in (card.get("metrics") or {}).items()
        if isinstance(val, (int, float)) and (m in HEADLINE or m.endswith(("_f1", "_ap50")))
    ]
    if not metrics:
        st.info("No metrics on the model cards yet: `wmstudio evaluate VERSION` writes them.")
        return
    chart = (
        alt.Chart(pd.DataFrame(metrics), title="Headline metrics per version")
        .mark_bar()
        .encode(
            x=alt.X("version:N", title=None),
            y=alt.Y("value:Q", scale=alt.Scale(domain=[0, 1])),
            color="version:N",
            column=alt.Column("metric:N", title=None),
            tooltip=["version", "metric", alt.Tooltip("value:Q", format=".3f")],
        )
        .properties(width=110, height=200)
    )
    st.altair_chart(chart)


def _mlflow_links(context: Context, cards: dict[str, dict]) -> None:
    """Each version's MLflow run and model version (ids written into the card at release)."""
    from wmstudio.mlflow_registry import ui_links

    lines = []
    for version, card in reversed(cards.items()):
        links = ui_links(card, context.settings)
        if links:
            lines.append(f"- **{version}**: " + " · ".join(f"[{name}]({url})" for name, url in links.items()))
    ui = context.settings.resolved_mlflow_ui_url
    if lines:
        st.markdown("\n".join(lines))
    else:
        st.caption("No version here was logged to MLflow yet: `wmstudio models sync-mlflow` registers them.")
    st.caption(f"MLflow UI: {ui} (`make mlflow-ui` serves the embedded store).")


def _earlier_versions(context: Context, registry: Registry) -> None:
    """Figures of every version ever registered (git keeps only the champion's files)."""
    from wmstudio.model_history import build_history, read_history
    from wmstudio.registry import HISTORY_FILE

    bundled = context.settings.bundled_models_dir / HISTORY_FILE
    entries = build_history(registry, read_history(bundled if bundled.exists() else registry.root / HISTORY_FILE))
    if not entries:
        st.caption("No version history yet.")
        return
    rows = [
        {
            "version": entry["version"] + (" ★" if entry.get("champion") else ""),
            "created": str(entry.get("created", ""))[:10],
            "parent": entry.get("parent") or "",
            "threshold": entry.get("threshold"),
            "validation F1": entry.get("validation_f1"),
            **{k: v for k, v in (entry.get("metrics") or {}).items() if k in HEADLINE + OLDER_HEADLINE},
            "decision": entry.get("decision", ""),
            "reason": entry.get("reason", ""),
        }
        for entry in reversed(entries)
    ]
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")


def _evaluation(folder: Path, name: str) -> dict | None:
    try:
        return json.loads((folder / "evaluation" / f"{name}.json").read_text())
    except (OSError, ValueError):
        return None


def _variant_heatmaps(registry: Registry, versions: list[str]) -> None:
    """F1 per robustness variant (crop, border, thumbnail, ...): where a version breaks, at a glance."""
    shown = [(v, registry.path(v) / "evaluation" / "test_f1.png") for v in versions]
    shown = [(v, path) for v, path in shown if path.exists()]
    if shown:
        st.subheader("Test F1 per photo variant")
        for version, path in shown:
            st.image(str(path), caption=f"{version}: test variants at its operating threshold")


def _pr_curves(registry: Registry, versions: list[str]) -> None:
    rows = []
    for version in versions:
        for name in EVAL_SETS:
            result = _evaluation(registry.path(version), name)
            for brand, values in ((result or {}).get("per_brand") or {}).items():
                curve = values.get("pr_curve") or {}
                for t, p, r in zip(
                    curve.get("threshold", []), curve.get("precision", []), curve.get("recall", []), strict=False
                ):
                    rows.append(
                        {"version": version, "set": name, "brand": brand, "threshold": t, "precision": p, "recall": r}
                    )
    if not rows:
        st.info("No evaluation files (evaluation/test_real.json, test_synthetic.json) for these versions yet.")
        return
    frame = pd.DataFrame(rows)
    chart = (
        alt.Chart(frame)
        .mark_line(point=alt.OverlayMarkDef(size=14))
        .encode(
            x=alt.X("recall:Q", scale=alt.Scale(domain=[0, 1])),
            y=alt.Y("precision:Q", scale=alt.Scale(domain=[0, 1])),
            color="version:N",
            strokeDash="brand:N",
            order="threshold:Q",
            tooltip=["version", "brand", "threshold", "precision", "recall"],
        )
        .properties(width=300, height=260)
        .facet(column=alt.Column("set:N", title=None))
    )
    st.altair_chart(chart)


def _loop_history(context: Context) -> list[dict]:
    """Runs of the champion/challenger loop (``pipelines.loop``), flattened for a table."""
    try:
        from wmstudio.loop_history import read_history
    except ImportError:
        return []
    settings = context.settings
    folder = getattr(settings, "loop_dir", settings.state_dir / "loop")
    return [
        {
            k: v if isinstance(v, (str, int, float, bool)) or v is None else json.dumps(v, default=str)
            for k, v in r.items()
        }
        for r in read_history(folder)
    ]


def _history(context: Context, registry: Registry) -> None:
    history = registry.history()
    if history:
        st.dataframe(pd.DataFrame(history)[::-1], hide_index=True, width="stretch")
    else:
        st.caption("No promotions recorded yet.")
    runs = guarded(lambda: _loop_history(context), "read the loop's run history")
    if runs:
        st.markdown("**Retraining loop runs** (challenger vs champion)")
        st.dataframe(pd.DataFrame(runs)[::-1], hide_index=True, width="stretch")


def _after_change(context: Context, message: str) -> None:
    """Tell the API to reload now (it would also notice on its next poll)."""
    if context.api_ok:
        try:
            context.client.reload()
            message += " · the API reloaded it"
        except Exception as exc:
            message += f" · the API did not reload yet ({api_error_text(exc)}); it polls the registry"
    st.session_state["models_message"] = message
    st.rerun()


def _actions(context: Context, registry: Registry, champion: str | None) -> None:
    promote, rollback = st.columns(2)
    with promote, st.container(border=True):
        st.markdown("**Promote a version to champion**")
        candidates = [v for v in registry.versions() if v != champion]
        if not candidates:
            st.caption("Only one version is registered: train a challenger with `wmstudio train`.")
        else:
            version = st.selectbox("Version", candidates[::-1], key="m_promote_version")
            reason = st.text_input("Reason", value="reviewed in the dashboard", key="m_promote_reason")
            sure = st.checkbox(f"Yes, serve {version} in production", key="m_promote_confirm")
            force = st.checkbox("Promote even if the validation gate fails (recorded)", key="m_promote_force")
            if st.button("Promote", key="m_promote", type="primary", disabled=not sure):
                try:  # the same gate as the CLI and the retraining loop
                    gated_promote(registry, version, reason, GateConfig.from_settings(context.settings), force)
                except GateFailed as exc:
                    st.error(f"Not promoted: {exc}. Tick the override to promote it anyway.")
                except RegistryError as exc:
                    st.error(f"Promotion failed: {exc}")
                else:
                    _after_change(context, f"{version} is now the champion")
    with rollback, st.container(border=True):
        st.markdown("**Roll back to the previous champion**")
        sure = st.checkbox("Yes, roll back production", key="m_rollback_confirm")
        if st.button("Roll back", key="m_rollback", disabled=not sure):
            try:
                previous = registry.rollback("rolled back in the dashboard")
            except RegistryError as exc:
                st.error(f"Rollback failed: {exc}")
            else:
                _after_change(context, f"rolled back to {previous}")


def render(context: Context) -> None:
    st.title(TITLE)
    if message := st.session_state.pop("models_message", None):
        st.success(message)
    registry = context.registry
    cards = guarded(lambda: _cards(registry), "read the model registry")
    if not cards:
        st.info(
            f"No model in the registry at `{context.settings.registry_dir}` yet. "
            "Train one with `wmstudio train` (it registers and evaluates the new version)."
        )
        return
    champion = registry.champion()
    served = context.model.get("version")
    st.markdown(f"Champion: **{champion}** · served by the API: **{served or 'API down'}** · {len(cards)} version(s)")
    if served and champion and served != champion:
        st.warning(f"The API still serves {served}; it reloads the champion within a few seconds.")
    _side_by_side(cards, champion)
    st.subheader("Precision-recall curves")
    chosen = st.multiselect("Versions", list(cards), default=list(cards)[-3:], key="m_versions")
    _pr_curves(registry, chosen)
    _variant_heatmaps(registry, chosen)
    st.subheader("Experiment tracking (MLflow)")
    guarded(lambda: _mlflow_links(context, cards), "build the MLflow links")
    st.subheader("Every version so far")
    guarded(lambda: _earlier_versions(context, registry), "read the version history")
    st.subheader("Champion / challenger history")
    _history(context, registry)
    st.subheader("Promote or roll back")
    _actions(context, registry, champion)
