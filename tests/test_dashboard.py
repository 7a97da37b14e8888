"""The Streamlit dashboard through ``streamlit.testing.v1.AppTest``: every page, seeded store,
empty state and API-down state, plus the demo dataset and the pure helpers behind the pages.

AppTest runs the real script in this process, so the settings (state folder, registry, API URL)
come from the environment set by the fixtures, exactly as ``make run`` sets them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from app.dashboard_pages.outcomes import judge
from tests.conftest import ROOT, encode, free_port, photo
from tests.dashboard_seed import seed_state
from wmstudio.data.manifest import Manifest
from wmstudio.passwords import make_entry
from wmstudio.registry import Registry
from wmstudio.settings import get_settings

pytestmark = [pytest.mark.integration, pytest.mark.model]

DASHBOARD = ROOT / "app" / "dashboard.py"
PAGES = ("overview", "predictions", "queue", "curation", "models", "upload")


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory, bundled_registry: Path) -> Iterator[dict]:
    """A state folder as a first start leaves it (demo dataset) plus store findings and two models."""
    seeded_state = seed_state(bundled_registry, tmp_path_factory.mktemp("dash-state"))
    seeded_state.pop("folder")
    yield seeded_state
    get_settings.cache_clear()


def _environment(patch: pytest.MonkeyPatch, state: Path, registry: Path, api_url: str, demo: str = "off") -> None:
    patch.setenv("WMSTUDIO_STATE_DIR", str(state))
    patch.setenv("WMSTUDIO_REGISTRY_DIR", str(registry))
    patch.setenv("WMSTUDIO_API_URL", api_url)
    patch.setenv("WMSTUDIO_DEMO_SOURCE", demo)
    get_settings.cache_clear()


@pytest.fixture
def live(monkeypatch: pytest.MonkeyPatch, seeded: dict, api_server) -> dict:
    """Seeded state, API up."""
    _environment(monkeypatch, seeded["state"], seeded["registry"], api_server.url)
    yield seeded
    get_settings.cache_clear()


@pytest.fixture
def api_down(monkeypatch: pytest.MonkeyPatch, seeded: dict) -> dict:
    """Seeded state, nothing listening at the API URL."""
    _environment(monkeypatch, seeded["state"], seeded["registry"], f"http://127.0.0.1:{free_port()}")
    yield seeded
    get_settings.cache_clear()


@pytest.fixture
def empty(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, api_server) -> Path:
    """A fresh state folder with the demo switched off and an empty registry: every empty state."""
    monkeypatch.setenv("WMSTUDIO_BUNDLED_MODELS_DIR", str(tmp_path / "nothing-bundled"))  # else seeded from models/
    _environment(monkeypatch, tmp_path, tmp_path / "no-models", api_server.url)
    yield tmp_path
    get_settings.cache_clear()


def open_page(page: str) -> AppTest:
    app = AppTest.from_file(str(DASHBOARD), default_timeout=180)
    app.query_params["page"] = page
    return app.run()


def texts(app: AppTest, kind: str) -> str:
    return "\n".join(str(element.value) for element in getattr(app, kind))


def charts(app: AppTest) -> list:
    return app.get("vega_lite_chart")


def no_traceback(app: AppTest) -> None:
    assert not app.exception, [e.value for e in app.exception]


# --- every page, API down and empty ------------------------------------------------------------


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_with_api_down(api_down, page):
    app = open_page(page)
    no_traceback(app)
    assert "not reachable" in texts(app.sidebar, "warning")
    assert app.title[0].value  # the page drew its heading instead of crashing


@pytest.mark.parametrize(
    ("page", "hint"),
    [
        ("overview", "wmstudio ingest PATH"),
        ("predictions", "wmstudio ingest PATH"),
        ("queue", "wmstudio queue build"),
        ("curation", "wmstudio curate"),
        ("models", "wmstudio train"),
        ("upload", "Drop one or more photos"),
    ],
)
def test_every_page_explains_its_empty_state(empty, page, hint):
    app = open_page(page)
    no_traceback(app)
    assert hint in texts(app, "info")


# --- overview ----------------------------------------------------------------------------------


def test_overview_shows_counts_and_charts(live):
    app = open_page("overview")
    no_traceback(app)
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Photos"] == "40"
    assert int(metrics["Boxes"]) > 0
    assert len(charts(app)) >= 7  # balance, splits, sources, sizes, aspects, box sizes, heatmap, versions
    assert live["dataset"] in texts(app, "caption") + texts(app, "markdown")
    assert any("demo" in str(row) for row in app.dataframe[0].value.to_dict("records"))  # dataset versions


# --- predictions -------------------------------------------------------------------------------


def test_predictions_browser_filters_and_detail(live):
    from app.dashboard_data import load_predictions

    app = open_page("predictions")
    no_traceback(app)
    served = httpx.get(f"{get_settings().api_url}/v1/model", timeout=10).json()["version"]
    stored = load_predictions(live["dataset"], served)  # the API serves the bundled champion
    assert len(stored) == 40, "the predictions went through the API into the store"
    assert "40** of 40 photos match" in texts(app, "markdown")
    assert len(app.image) >= 12  # one page of overlays plus the detail view
    assert app.json, "the detail view shows the JSON"
    detail = json.loads(app.json[0].value)
    assert {"ground_truth", "prediction", "outcome"} <= set(detail)

    app.slider(key="pred_threshold").set_value(1.0).run()  # nothing is predicted at 1.0
    app.multiselect(key="pred_outcomes").set_value(["TN"]).run()
    no_traceback(app)
    matched = texts(app, "markdown")
    assert "of 40 photos match" in matched
    shown = int(matched.split("**")[1])
    items = Manifest.load(live["state"] / "datasets" / live["dataset"]).items.values()
    assert shown == sum(1 for item in items if item.brand is None)  # at 1.0 only clean photos are TN

    app.multiselect(key="pred_outcomes").set_value(["FP"]).run()
    assert "No photo matches these filters" in texts(app, "info")

    app.multiselect(key="pred_outcomes").set_value([]).run()
    app.radio(key="pred_mode").set_value("heatmap").run()
    no_traceback(app)
    assert any("heatmap overlay" in caption for image in app.image for caption in image.captions)


def test_predictions_with_api_down_use_stored_predictions(api_down):
    from app.dashboard_data import save_predictions

    manifest = Manifest.load(api_down["state"] / "datasets" / api_down["dataset"])
    records = {sha: {"detections": [], "model_version": "v1"} for sha in manifest.items}
    save_predictions(api_down["dataset"], records, "v1")
    app = open_page("predictions")
    no_traceback(app)
    assert "not reachable" in texts(app, "error")
    assert "of 40 photos match" in texts(app, "markdown")  # the stored ones are still browsable
    assert len(app.image) >= 1


# --- queue -------------------------------------------------------------------------------------


def test_queue_lists_ranked_items_and_pushes_selection(live, monkeypatch):
    from app.dashboard_pages import labelstudio_adapter
    from wmstudio.store.models import QueueItem
    from wmstudio.store.session import transaction

    pushed: list[list[int]] = []

    def fake_push(ids: list[int], settings) -> labelstudio_adapter.Outcome:
        pushed.append(ids)
        with transaction() as session:
            for number, item in enumerate(session.scalars(select(QueueItem).where(QueueItem.id.in_(ids)))):
                item.status, item.label_studio_task_id = "sent", 100 + number
        return labelstudio_adapter.Outcome(True, f"Pushed to Label Studio {len(ids)} item(s)")

    monkeypatch.setattr(labelstudio_adapter, "push", fake_push)
    app = open_page("queue")
    no_traceback(app)
    body = texts(app, "markdown")
    assert "4** of 4 queue items" in body
    assert body.index("0.900") < body.index("0.800") < body.index("0.700"), "highest priority first"
    assert "open task 42 in Label Studio" in body  # the already-sent item links out
    assert len(app.image) == 4  # thumbnails

    first, second = live["queue"][:2]
    app.checkbox(key=f"q-{first}").check().run()
    app.checkbox(key=f"q-{second}").check().run()
    app.button(key="q_push").click().run()
    no_traceback(app)
    assert pushed == [[first, second]]
    assert "Pushed to Label Studio 2 item(s)" in texts(app, "success")
    assert "Pushed" not in texts(app, "error")
    assert texts(app, "markdown").count("sent to Label Studio") == 3  # new sync state per item


def test_queue_push_without_label_studio_is_a_message(live):
    app = open_page("queue")
    app.checkbox(key=f"q-{live['queue'][2]}").check().run()
    app.button(key="q_push").click().run()
    no_traceback(app)
    assert texts(app, "error"), "no Label Studio here: the page says so instead of raising"


def test_queue_pull_without_label_studio_is_a_message(live):
    app = open_page("queue")
    app.button(key="q_pull").click().run()
    no_traceback(app)
    assert texts(app, "error")


# --- curation ----------------------------------------------------------------------------------


def sign_in(app: AppTest, name: str, password: str) -> AppTest:
    app.text_input(key="sign_in_user").set_value(name)
    app.text_input(key="sign_in_password").set_value(password)
    return app.button[0].click().run()


def test_curation_accept_and_dismiss_are_stored(live, monkeypatch):
    """Decisions are recorded under the signed-in name: there is no reviewer box to type into."""
    from app.dashboard_data import flags

    monkeypatch.setenv("WMSTUDIO_APP_USERS", make_entry("ana", "pw-ana"))
    get_settings.cache_clear()
    app = open_page("curation")
    assert "dup-1" not in texts(app, "markdown")  # nothing but the sign-in form
    app = sign_in(app, "ana", "pw-ana")
    no_traceback(app)
    assert not [box for box in app.sidebar.text_input if box.key == "reviewer"]
    assert "dup-1" in texts(app, "markdown")
    assert "labelled rumah123 but looks clean" in texts(app, "markdown")
    assert charts(app)
    app.button(key="acc-c-dup-1").click().run()
    no_traceback(app)
    assert "marked accepted by ana" in texts(app, "success")
    label_issue = live["flags"][2]
    app.button(key=f"dis-i-{label_issue}").click().run()
    no_traceback(app)
    status = {row.id: (row.status, row.decided_by) for row in flags(live["dataset"])}
    assert status[live["flags"][0]] == ("accepted", "ana") and status[live["flags"][1]] == ("accepted", "ana")
    assert status[label_issue] == ("dismissed", "ana")
    assert status[live["flags"][3]] == ("open", None)
    # decided findings leave the default "open" view
    assert "dup-1" not in texts(app, "markdown")


# --- sign-in -----------------------------------------------------------------------------------


def test_no_page_without_signing_in_when_logins_are_configured(live, monkeypatch):
    monkeypatch.setenv("WMSTUDIO_APP_USERS", make_entry("ana", "pw-ana"))
    get_settings.cache_clear()
    app = open_page("overview")
    no_traceback(app)
    assert [box.key for box in app.text_input] == ["sign_in_user", "sign_in_password"]
    assert not app.sidebar.radio and not charts(app)  # no page picker, no data
    app = sign_in(app, "ana", "wrong")
    assert "wrong password" in texts(app, "error") and not app.sidebar.radio
    app = sign_in(app, "mallory", "pw-ana")
    assert "wrong password" in texts(app, "error") and not app.sidebar.radio
    app = sign_in(app, "ana", "pw-ana")
    no_traceback(app)
    assert app.sidebar.radio and "Signed in as **ana**" in texts(app.sidebar, "caption")


def test_exposed_dashboard_without_logins_shows_nothing(live, monkeypatch):
    """Bound beyond loopback (compose, Kubernetes) with no WMSTUDIO_APP_USERS: refuses, says what to set."""
    monkeypatch.setenv("WMSTUDIO_API_HOST", "0.0.0.0")
    get_settings.cache_clear()
    app = open_page("curation")
    no_traceback(app)
    assert "WMSTUDIO_APP_USERS" in texts(app, "error") and not app.sidebar.radio
    assert "dup-1" not in texts(app, "markdown")
    monkeypatch.setenv("WMSTUDIO_ALLOW_INSECURE", "1")  # said on purpose: open again
    get_settings.cache_clear()
    assert open_page("curation").sidebar.radio


# --- models ------------------------------------------------------------------------------------


def test_models_side_by_side_and_promote_with_confirmation(live):
    registry = Registry(live["registry"])
    assert registry.champion() == "v1"
    app = open_page("models")
    no_traceback(app)
    table = app.dataframe[0].value
    assert {"v1 ★", "v2"} <= set(table.columns)
    assert "val_f1" in table.index and "test_f1" in table.index
    assert len(charts(app)) >= 2  # headline metrics and PR curves
    assert not app.error, [e.value for e in app.error]
    loop_runs = app.dataframe[-1].value
    assert loop_runs.iloc[0]["challenger"] == "v2"  # the retraining loop's run history
    promote = app.button(key="m_promote")
    assert promote.disabled, "promotion needs the confirmation first"
    app.checkbox(key="m_promote_confirm").check().run()
    card = registry.card("v2")
    registry.write_card("v2", card | {"metrics": card["metrics"] | {"val_f1": 0.5}})  # now worse than v1
    app.button(key="m_promote").click().run()
    no_traceback(app)
    assert registry.champion() == "v1", "the dashboard applies the promotion gate"
    assert "fails the promotion gate against v1" in texts(app, "error") and "val_f1" in texts(app, "error")
    app.checkbox(key="m_promote_force").check().run()
    app.button(key="m_promote").click().run()
    no_traceback(app)
    assert registry.champion() == "v2"
    assert "v2 is now the champion" in texts(app, "success")
    assert "forced past the gate: val_f1 0.5 vs 0.62" in registry.history()[-1]["reason"]
    registry.write_card("v2", card)
    app.checkbox(key="m_rollback_confirm").check().run()
    app.button(key="m_rollback").click().run()
    no_traceback(app)
    assert registry.champion() == "v1"
    assert [h["action"] for h in registry.history()][-2:] == ["promote", "rollback"]
    # the decisions reached MLflow (embedded store in the state dir): alias, tags, links on the page
    from wmstudio import tracking

    mlflow = tracking.client(get_settings())
    champion = mlflow.get_model_version_by_alias(get_settings().mlflow_model_name, "champion")
    assert champion.tags["wmstudio_version"] == "v1" and champion.tags["reason"] == "rolled back in the dashboard"
    assert "#/experiments/" in texts(app, "markdown") and "/runs/" in texts(app, "markdown")
    assert "v1 ★" in app.dataframe[-3].value["version"].tolist()  # every version so far, champion marked


# --- upload ------------------------------------------------------------------------------------


def test_upload_predicts_through_the_api_and_adds_to_the_pool(live):
    from app.dashboard_data import pool_size

    app = open_page("upload")
    no_traceback(app)
    good = encode(photo(640, 480, seed=5), "JPEG")
    app.checkbox(key="up_pool").check()
    app.file_uploader(key="up_files").set_value(
        [("house.jpg", good, "image/jpeg"), ("notes.jpg", b"nope", "image/jpeg")]
    )
    app.run()
    no_traceback(app)
    assert len(app.image) == 1 and "house.jpg: " in app.image[0].captions[0]
    assert json.loads(app.json[0].value)["image"] == {"width": 640, "height": 480}
    assert "notes.jpg" in texts(app, "error")  # the API's refusal, as a message
    assert "1 new photo(s) added to the pool" in texts(app, "success")
    assert pool_size(get_settings()) == 1


# --- demo dataset and helpers ------------------------------------------------------------------


def test_demo_dataset_is_made_once_and_respects_the_setting(tmp_path, monkeypatch, seeded):
    from app.demo_data import ensure_demo_dataset

    monkeypatch.setenv("WMSTUDIO_STATE_DIR", str(seeded["state"]))
    get_settings.cache_clear()
    assert ensure_demo_dataset(get_settings()) == seeded["state"] / "datasets" / seeded["dataset"]  # kept as is

    monkeypatch.setenv("WMSTUDIO_STATE_DIR", str(tmp_path / "off"))
    monkeypatch.setenv("WMSTUDIO_DEMO_SOURCE", "off")
    get_settings.cache_clear()
    assert ensure_demo_dataset(get_settings()) is None

    own = tmp_path / "mine"
    for index, brand in enumerate(("rumah123", "no_watermark", "rumah123")):
        (own / brand).mkdir(parents=True, exist_ok=True)
        (own / brand / f"p{index}.jpg").write_bytes(encode(photo(320, 240, seed=index), "JPEG"))
    monkeypatch.setenv("WMSTUDIO_STATE_DIR", str(tmp_path / "own"))
    monkeypatch.setenv("WMSTUDIO_DEMO_SOURCE", str(own))
    get_settings.cache_clear()
    folder = ensure_demo_dataset(get_settings())
    manifest = Manifest.load(folder)
    assert len(manifest.items) == 3
    assert sorted(i.brand or "none" for i in manifest.items.values()) == ["none", "rumah123", "rumah123"]
    assert all(i.split for i in manifest.items.values())
    get_settings.cache_clear()


def test_synthetic_demo_dataset_has_every_class(seeded):
    items = list(Manifest.load(seeded["state"] / "datasets" / seeded["dataset"]).items.values())
    assert len(items) == 40
    assert {i.brand for i in items} == {"rumah123", "99co", None}
    assert all(i.source == "synthetic" and i.split for i in items)
    assert all(i.boxes for i in items if i.brand)


@pytest.mark.parametrize(
    ("truth", "scores", "threshold", "expected"),
    [
        ("rumah123", [("rumah123", 0.9)], 0.5, ("TP",)),
        ("rumah123", [("rumah123", 0.4)], 0.5, ("FN",)),
        (None, [("99co", 0.7)], 0.5, ("FP",)),
        (None, [("99co", 0.3)], 0.5, ("TN",)),
        ("rumah123", [("99co", 0.8)], 0.5, ("FN", "FP")),
        ("rumah123", [("rumah123", 0.8), ("99co", 0.6)], 0.5, ("TP", "FP")),
    ],
)
def test_outcome_against_ground_truth(truth, scores, threshold, expected):
    detections = [{"brand": b, "score": s, "box": [0, 0, 1, 1]} for b, s in scores]
    judged = judge(truth, detections, threshold)
    assert judged.outcomes == expected
    assert judged.top_score == max(s for _, s in scores)


def test_letterbox_gives_one_aspect_ratio():
    import io

    from PIL import Image

    from app.dashboard_pages.common import letterbox

    for size in ((300, 600), (800, 200)):
        padded = Image.open(io.BytesIO(letterbox(encode(photo(*size), "JPEG"))))
        assert padded.size == (480, 360)


def test_dashboard_data_has_no_streamlit_dependency():
    """The data module is reused by scripts and tests; it must not need a Streamlit session."""
    source = (ROOT / "app" / "dashboard_data.py").read_text()
    assert "import streamlit" not in source
