"""Watermark Studio review dashboard: ``streamlit run app/dashboard.py`` (``make run`` starts it).

One entry point with a page picker in the sidebar (mirrored in the ``?page=`` query parameter,
so every page has a link of its own). The dashboard is a client: predictions and overlays come
from the API, everything else from the store, the registry and the dataset manifests.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # `streamlit run app/dashboard.py` runs this file as a script
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import streamlit as st

from app.dashboard_pages import PAGES
from app.dashboard_pages.common import Context
from app.login import signed_in_user
from wmstudio.client import WatermarkClient
from wmstudio.offline import apply_offline_env
from wmstudio.settings import Settings, get_settings


def _api_status(settings: Settings) -> tuple[bool, str, dict]:
    """Ask the API which model it serves; down is a normal state, shown not raised."""
    client = WatermarkClient(settings.api_url, timeout=3.0)
    try:
        if not client.ready():
            return False, f"API at {settings.api_url} is not reachable or not ready", {}
        info = client.model()
        return True, f"API ready · model {info.get('version', '?')}", info
    except Exception as exc:
        return False, f"API at {settings.api_url}: {exc}", {}
    finally:
        client.close()


def _ensure_dataset(settings: Settings) -> None:
    """First start: make the demo dataset (offline, a few seconds) with a visible progress bar."""
    from app.dashboard_data import dataset_names
    from app.demo_data import demo_source, ensure_demo_dataset

    if dataset_names(settings) or demo_source(settings).lower() in {"off", "none", "false", "0"}:
        return
    with st.status("First start: generating a demo dataset offline…", expanded=True) as status:
        bar = st.progress(0.0)

        def progress(fraction: float, text: str) -> None:
            bar.progress(min(max(fraction, 0.0), 1.0), text=text)

        try:
            folder = ensure_demo_dataset(settings, progress)
        except Exception as exc:
            status.update(label="Demo dataset could not be generated", state="error")
            st.error(f"Generating the demo dataset failed: {type(exc).__name__}: {exc}")
            return
        status.update(label=f"Demo dataset ready: {folder.name if folder else 'none'}", state="complete")


def _pick_page() -> str:
    keys = list(PAGES)
    wanted = st.query_params.get("page", keys[0])
    index = keys.index(wanted) if wanted in keys else 0
    page = st.sidebar.radio("Page", keys, index=index, format_func=lambda k: PAGES[k].title, key="page")
    if st.query_params.get("page") != page:
        st.query_params["page"] = page
    return page


def main() -> None:
    st.set_page_config(page_title="Watermark Studio", page_icon="🏷️", layout="wide")
    settings = get_settings()
    apply_offline_env(settings.state_dir)
    user = signed_in_user(settings)  # nothing below runs, and no data is read, before sign-in
    st.sidebar.title("Watermark Studio")
    page = _pick_page()
    _ensure_dataset(settings)

    from app.dashboard_data import dataset_names

    names = dataset_names(settings)
    dataset = st.sidebar.selectbox("Dataset", names, key="dataset") if names else None
    api_ok, api_message, model = _api_status(settings)
    if api_ok:
        st.sidebar.success(api_message)
    else:
        st.sidebar.warning(api_message)
    context = Context(settings, dataset, api_ok, api_message, model, user)
    PAGES[page].render(context)


main()
