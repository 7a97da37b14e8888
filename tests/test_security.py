"""Hostile traffic against the real uvicorn server (issue #33): every request gets a 4xx or its answer,
never a 5xx, never an unbounded read, and a broken model never replaces a working one.

Requests that must be refused *before their body is read* are sent over a raw socket: the head
goes out, the body does not (or only part of it), and the answer must come anyway.
"""

from __future__ import annotations

import io
import json
import os
import select
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.conftest import ROOT, WEBHOOK_SECRET, Server, free_port, jpeg_bytes, run_cli
from tests.fake_label_studio import PROJECT_ID, fake_label_studio
from wmstudio.registry import Registry

KEY = {"X-API-Key": "k-one"}
HOOK = "/v1/webhooks/label-studio"
MIB = 1024 * 1024
DETECT_LIMIT = 20 * MIB + 64 * 1024  # max_upload_bytes + multipart overhead (api/main.py)


# --- raw HTTP/1.1, to prove what the server did not wait for ------------------------------------


def exchange(
    port: int, head: str, chunks: Iterable[bytes] = (), timeout: float = 20.0
) -> tuple[int, dict[str, str], bytes, int]:
    """Send ``head`` then ``chunks`` until the server answers; (status, headers, body, body bytes sent)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\n")
        sent = 0
        sock.settimeout(2.0)  # a server that stopped reading fills the buffers: then stop sending
        for chunk in chunks:
            if select.select([sock], [], [], 0)[0]:
                break  # the answer is there already
            try:
                sock.sendall(chunk)
            except (TimeoutError, BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
        sock.settimeout(timeout)
        data = b""
        while b"\r\n\r\n" not in data:
            part = sock.recv(65536)
            assert part, f"connection closed without an answer: {data!r}"
            data += part
        head_bytes, _, body = data.partition(b"\r\n\r\n")
        lines = head_bytes.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        length = int(headers.get("content-length", "0"))
        while len(body) < length:
            part = sock.recv(65536)
            if not part:
                break
            body += part
    return int(lines[0].split()[1]), headers, body[:length], sent


def request_head(path: str, headers: dict[str, str]) -> str:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1"] + [f"{k}: {v}" for k, v in headers.items()]
    return "\n".join(lines) + "\n"


def chunked(parts: Iterable[bytes]) -> Iterator[bytes]:
    """HTTP/1.1 chunked framing (no Content-Length anywhere)."""
    for part in parts:
        yield f"{len(part):x}\r\n".encode() + part + b"\r\n"
    yield b"0\r\n\r\n"


def multipart_stream(total: int, field: str = "file") -> Iterator[bytes]:
    yield (
        f'--b0undary\r\nContent-Disposition: form-data; name="{field}"; filename="big.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()
    for _ in range(total // MIB):
        yield b"\0" * MIB
    yield b"\r\n--b0undary--\r\n"


MULTIPART = "multipart/form-data; boundary=b0undary"


def error_code(body: bytes) -> str:
    return json.loads(body)["error"]["code"]


# --- body limits and auth before the body ------------------------------------------------------------


@pytest.mark.parametrize(
    "framing",
    [{"Content-Length": str(300 * MIB)}, {"Transfer-Encoding": "chunked"}],
    ids=["content-length", "chunked"],
)
@pytest.mark.parametrize("key", [None, "wrong"], ids=["no-key", "wrong-key"])
def test_unauthenticated_body_is_refused_before_any_byte_is_read(secured_server, framing, key):
    headers = {"Content-Type": MULTIPART, **framing, **({"X-API-Key": key} if key else {})}
    for path in ("/v1/detect", "/v1/detect/batch", "/v1/overlay"):
        status, response_headers, body, sent = exchange(secured_server.port, request_head(path, headers))
        assert (status, error_code(body), sent) == (401, "unauthorized", 0), path
        assert response_headers["connection"] == "close"  # the unread body never reaches a next request


def test_declared_oversize_body_is_413_before_it_is_read(secured_server):
    too_big = {"Content-Type": MULTIPART, "Content-Length": str(DETECT_LIMIT + 1), **KEY}
    status, _, body, _ = exchange(secured_server.port, request_head("/v1/detect", too_big))
    assert (status, error_code(body)) == (413, "request_too_large")
    assert str(DETECT_LIMIT) in json.loads(body)["error"]["message"]
    hook = {"Content-Type": "application/json", "Content-Length": str(MIB), "X-Webhook-Secret": WEBHOOK_SECRET}
    status, _, body, _ = exchange(secured_server.port, request_head(HOOK, hook))
    assert (status, error_code(body)) == (413, "request_too_large")


def test_chunked_oversize_upload_is_cut_off_at_the_limit(secured_server):
    """No Content-Length: the streamed bytes are counted, and reading stops at the route's limit."""
    headers = {"Content-Type": MULTIPART, "Transfer-Encoding": "chunked", **KEY}
    status, _, body, sent = exchange(
        secured_server.port, request_head("/v1/detect", headers), chunked(multipart_stream(80 * MIB))
    )
    assert (status, error_code(body)) == (413, "request_too_large")
    assert sent < DETECT_LIMIT + 24 * MIB  # the limit plus what socket buffers hold, not the 80 MiB
    # the webhook's JSON cap counts chunked bodies too
    hook = {"Content-Type": "application/json", "Transfer-Encoding": "chunked", "X-Webhook-Secret": WEBHOOK_SECRET}
    filler = b'{"action": "ANNOTATION_CREATED", "pad": "' + b"x" * (200 * 1024) + b'"}'
    status, _, body, _ = exchange(secured_server.port, request_head(HOOK, hook), chunked([filler]))
    assert (status, error_code(body)) == (413, "request_too_large")


def test_batch_parts_beyond_the_batch_limit_are_refused(secured_server):
    files = [("files", (f"{i}.jpg", b"x", "image/jpeg")) for i in range(1000)]
    response = httpx.post(f"{secured_server.url}/v1/detect/batch", files=files, headers=KEY, timeout=60)
    assert response.status_code == 413 and response.json()["error"]["code"] == "too_many_files"
    assert "16" in response.json()["error"]["message"]


# --- every route's auth ------------------------------------------------------------------------------

OPEN_ROUTES = {("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics")}
KEYED_CALLS = {
    ("POST", "/v1/detect"): {"files": {"file": ("a.jpg", jpeg_bytes(320, 240), "image/jpeg")}},
    ("POST", "/v1/detect/batch"): {"files": [("files", ("a.jpg", jpeg_bytes(320, 240), "image/jpeg"))]},
    ("POST", "/v1/overlay"): {"files": {"file": ("a.jpg", jpeg_bytes(320, 240), "image/jpeg")}},
    ("GET", "/v1/model"): {},
    ("POST", "/v1/model/reload"): {},
}


def test_every_route_is_classified_and_guarded(secured_server):
    spec = httpx.get(f"{secured_server.url}/openapi.json").json()
    routes = {(method.upper(), path) for path, item in spec["paths"].items() for method in item}
    assert routes == OPEN_ROUTES | set(KEYED_CALLS) | {("POST", HOOK)}, "a new route must be classified here"
    for method, path in OPEN_ROUTES:
        assert httpx.request(method, f"{secured_server.url}{path}").status_code == 200, path
    for (method, path), kwargs in KEYED_CALLS.items():
        url = f"{secured_server.url}{path}"
        for headers in ({}, {"X-API-Key": "nope"}, {"X-Webhook-Secret": WEBHOOK_SECRET}):
            refused = httpx.request(method, url, headers=headers, timeout=30, **kwargs)
            assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthorized", (path, headers)
        assert httpx.request(method, url, headers={"X-API-Key": "k-two"}, timeout=30, **kwargs).status_code == 200
    ping = {"action": "PING"}
    for headers in ({}, KEY, {"X-Webhook-Secret": "wrong"}):  # an API key is not the webhook's secret
        assert httpx.post(f"{secured_server.url}{HOOK}", json=ping, headers=headers).status_code == 401
    accepted = httpx.post(f"{secured_server.url}{HOOK}", json=ping, headers={"X-Webhook-Secret": WEBHOOK_SECRET})
    assert accepted.status_code == 200 and accepted.json()["status"] == "ignored"


# --- the webhook ---------------------------------------------------------------------------------------

SECRET = {"X-Webhook-Secret": WEBHOOK_SECRET}
MALFORMED = {
    "no action": {"task": {"id": 3}},
    "string task id": {"action": "ANNOTATION_CREATED", "task": {"id": "x"}},
    "negative task id": {"action": "ANNOTATION_CREATED", "task": {"id": -4}},
    "huge task id": {"action": "ANNOTATION_CREATED", "task": {"id": 2**70}},
    "boolean task id": {"action": "ANNOTATION_UPDATED", "annotation": {"task": True}},
    "action not a name": {"action": "<script>", "task": {"id": 3}},
    "action a number": {"action": 5},
    "tasks not a list": {"action": "TASKS_DELETED", "tasks": "all"},
    "annotations of strings": {"action": "ANNOTATIONS_CREATED", "annotations": ["a", "b"]},
    "a list": [{"action": "ANNOTATION_CREATED"}],
    "a string": "ANNOTATION_CREATED",
    "over the id cap": {"action": "TASKS_DELETED", "tasks": [{"id": i} for i in range(1, 102)]},
    "over the list bound": {"action": "TASKS_DELETED", "tasks": [{"id": 1}] * 1001},
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_webhook_payloads_get_4xx(secured_server, name):
    response = httpx.post(f"{secured_server.url}{HOOK}", json=MALFORMED[name], headers=SECRET, timeout=30)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] in {"invalid_request", "too_many_tasks"}


def test_webhook_body_that_is_not_json_is_4xx(secured_server):
    for body in (b"{not json", b"\xff\xfe", b""):
        response = httpx.post(
            f"{secured_server.url}{HOOK}", content=body, headers={**SECRET, "Content-Type": "application/json"}
        )
        assert 400 <= response.status_code < 500, (body, response.text)


@pytest.fixture(scope="module")
def label_studio_api(tmp_path_factory, registry_copy: Path) -> Iterator[tuple[Server, object]]:
    """The API with Label Studio configured (a fake one holding tasks of two projects) and a secret."""
    tasks = {
        5: {"id": 5, "project": PROJECT_ID, "data": {"image": "/data/local-files/?d=a/1.jpg"}, "annotations": []},
        6: {"id": 6, "project": PROJECT_ID + 1, "data": {"image": "/data/local-files/?d=b/1.jpg"}, "annotations": []},
    }
    with fake_label_studio(tasks) as fake:
        state = tmp_path_factory.mktemp("ls-api")
        server = Server(
            {
                "WMSTUDIO_REGISTRY_DIR": str(registry_copy),
                "WMSTUDIO_API_KEYS": "k-one",
                "WMSTUDIO_LABEL_STUDIO_URL": fake.url,
                "WMSTUDIO_LABEL_STUDIO_TOKEN": "token-of-the-fake",
                "WMSTUDIO_WEBHOOK_SECRET": WEBHOOK_SECRET,
                "WMSTUDIO_WEBHOOK_RATE_LIMIT": "8/minute",
                "WMSTUDIO_DATABASE_URL": f"sqlite:///{state / 'store.db'}",
            },
            state,
        )
        yield server, fake
        server.stop()


def test_webhook_reads_tasks_back_keeps_to_our_project_and_is_throttled(label_studio_api):
    server, fake = label_studio_api

    def post(payload: dict) -> httpx.Response:
        return httpx.post(f"{server.url}{HOOK}", json=payload, headers=SECRET, timeout=30)

    foreign = post({"action": "ANNOTATION_CREATED", "task": {"id": 6}, "annotation": {"task": 6}})
    assert foreign.status_code == 200 and foreign.json()["tasks"] == {"6": "foreign"}
    ours = post({"action": "ANNOTATION_UPDATED", "annotation": {"id": 1, "task": {"id": 5}}})
    assert ours.status_code == 200 and ours.json()["status"] == "stored"
    assert ours.json()["tasks"]["5"] not in {"foreign", "requeued"}
    # a forged deletion of a live task is read back, and does not re-queue it
    deleted = post({"action": "TASKS_DELETED", "tasks": [{"id": 5}, {"id": 8}]})
    assert deleted.status_code == 200 and deleted.json()["tasks"]["5"] != "requeued"
    assert deleted.json()["tasks"]["8"] == "unchanged"  # really gone, but nothing of ours was sent as task 8
    assert {5, 6, 8} <= set(fake.reads)
    # an API key does not open the webhook; neither does a wrong secret
    assert httpx.post(f"{server.url}{HOOK}", json={"action": "PING"}, headers=KEY).status_code == 401
    # throttled: 8 calls a minute, 3 made above
    statuses = [post({"action": "PING"}).status_code for _ in range(6)]
    assert statuses[:5] == [200] * 5 and statuses[5] == 429
    limited = post({"action": "PING"})
    assert limited.json()["error"]["code"] == "rate_limited" and int(limited.headers["retry-after"]) >= 1


def test_webhook_is_off_when_label_studio_is_configured_without_a_secret(tmp_path, registry_copy):
    server = Server(
        {
            "WMSTUDIO_REGISTRY_DIR": str(registry_copy),
            "WMSTUDIO_LABEL_STUDIO_URL": f"http://127.0.0.1:{free_port()}",
            "WMSTUDIO_LABEL_STUDIO_TOKEN": "some-token",
        },
        tmp_path,
    )
    try:
        response = httpx.post(f"{server.url}{HOOK}", json={"action": "TASKS_DELETED", "tasks": [{"id": 1}]})
        assert response.status_code == 403 and response.json()["error"]["code"] == "webhook_disabled"
        assert "WMSTUDIO_WEBHOOK_SECRET" in response.json()["error"]["message"]
    finally:
        server.stop()


# --- a broken model never replaces a working one -------------------------------------------------------


def small_registry(target: Path, bundled: Path) -> tuple[Registry, str]:
    """The bundled champion alone (no .pt weights, no evaluation), champion of a new registry."""
    source = Registry(bundled)
    version = source.champion()
    shutil.copytree(source.path(version), target / version, ignore=shutil.ignore_patterns("*.pt", "evaluation"))
    registry = Registry(target)
    registry.promote(version, "test")
    return registry, version


def add_corrupt_version(registry: Registry, like: str) -> str:
    version = registry.next_version()
    shutil.copytree(registry.path(like), registry.root / version)
    card = json.loads((registry.root / version / "model_card.json").read_text())
    (registry.root / version / "model_card.json").write_text(json.dumps({**card, "version": version}))
    (registry.root / version / "model.onnx").write_bytes(b"not an onnx model " * 64)
    return version


def test_corrupt_champion_keeps_the_old_model_serving(tmp_path, bundled_registry):
    registry, good = small_registry(tmp_path / "models", bundled_registry)
    server = Server({"WMSTUDIO_REGISTRY_DIR": str(registry.root), "WMSTUDIO_RELOAD_POLL_SECONDS": "0.3"}, tmp_path)
    try:
        bad = add_corrupt_version(registry, good)
        registry.promote(bad, "a corrupt file")
        time.sleep(1.5)  # several registry polls
        detect = httpx.post(f"{server.url}/v1/detect", files={"file": ("a.jpg", jpeg_bytes(), "image/jpeg")})
        assert detect.status_code == 200 and detect.json()["model_version"] == good
        assert httpx.get(f"{server.url}/readyz").json() == {"status": "ready", "model_version": good}
        reload = httpx.post(f"{server.url}/v1/model/reload")
        assert reload.status_code == 409 and reload.json()["error"]["code"] == "model_load_failed"
        assert bad in reload.json()["error"]["message"] and f"still serving {good}" in reload.json()["error"]["message"]
        assert server.process.poll() is None
    finally:
        server.stop()


def test_corrupt_champion_at_start_is_not_ready_but_does_not_crash(tmp_path, bundled_registry):
    registry, good = small_registry(tmp_path / "models", bundled_registry)
    registry.promote(add_corrupt_version(registry, good), "a corrupt file")
    server = Server({"WMSTUDIO_REGISTRY_DIR": str(registry.root)}, tmp_path, ready_path="/healthz")
    try:
        assert httpx.get(f"{server.url}/readyz").status_code == 503  # Kubernetes keeps the old pods serving
        detect = httpx.post(f"{server.url}/v1/detect", files={"file": ("a.jpg", jpeg_bytes(), "image/jpeg")})
        assert detect.status_code == 503 and detect.json()["error"]["code"] == "model_unavailable"
        assert server.process.poll() is None
        registry.rollback("the corrupt one goes")  # and the next poll brings the good one in
        deadline = time.monotonic() + 15
        while httpx.get(f"{server.url}/readyz").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.3)
        assert httpx.get(f"{server.url}/readyz").json()["model_version"] == good
    finally:
        server.stop()


# --- bounded work ---------------------------------------------------------------------------------------


def flat_png(side: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (side, side), (200, 184, 160)).save(buffer, "PNG")
    return buffer.getvalue()


def test_overlay_of_a_huge_photo_is_drawn_at_the_working_size(api_server):
    for mode in ("boxes", "heatmap"):
        response = httpx.post(
            f"{api_server.url}/v1/overlay",
            params={"mode": mode, "min_score": 0.0},
            files={"file": ("flat.png", flat_png(6300), "image/png")},
            timeout=120,
        )
        assert response.status_code == 200, response.text
        overlay = Image.open(io.BytesIO(response.content))
        assert max(overlay.size) <= 2048 and overlay.size[0] == overlay.size[1]
        assert float(response.headers["x-scale"]) * overlay.size[0] == pytest.approx(6300, rel=0.01)


def test_peak_memory_of_worst_case_requests_stays_under_a_gigabyte(registry_copy):
    """benchmarks/bench_memory.py: 4 concurrent 40 MP flat PNGs on every image route (README's ceiling)."""
    result = subprocess.run(
        [sys.executable, "benchmarks/bench_memory.py", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "WMSTUDIO_REGISTRY_DIR": str(registry_copy)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.splitlines()[0])
    assert {"detect", "overlay boxes", "overlay heatmap", "batch"} <= set(report)
    assert report["peak"] < 1024, report  # MB; measured about 500 MB (README)


def test_probes_answer_while_every_worker_thread_waits_for_inference(tmp_path, registry_copy):
    """80 requests queued for one inference slot hold all 40 worker threads; the async probes still answer."""
    server = Server({"WMSTUDIO_REGISTRY_DIR": str(registry_copy), "WMSTUDIO_MAX_CONCURRENT_INFERENCE": "1"}, tmp_path)
    files = {"file": ("flat.png", flat_png(2500), "image/png")}
    try:
        with ThreadPoolExecutor(80) as pool:
            jobs = [pool.submit(httpx.post, f"{server.url}/v1/detect", files=files, timeout=300) for _ in range(80)]
            time.sleep(1.0)
            for _ in range(3):
                assert sum(not job.done() for job in jobs) > 45, "the queue drained too fast to test anything"
                for path in ("/healthz", "/readyz"):
                    started = time.perf_counter()
                    assert httpx.get(f"{server.url}{path}", timeout=30).status_code == 200
                    assert time.perf_counter() - started < 1.0, path
            assert {job.result().status_code for job in jobs} == {200}
    finally:
        server.stop()


# --- secure by default ------------------------------------------------------------------------------------


def test_api_refuses_to_start_exposed_without_keys(tmp_path, registry_copy):
    """Compose and Kubernetes bind 0.0.0.0 (WMSTUDIO_API_HOST): without keys the API does not start."""
    command = [sys.executable, "-m", "uvicorn", "api.main:create_app", "--factory", "--host", "127.0.0.1"]
    env = {
        **os.environ,
        "WMSTUDIO_REGISTRY_DIR": str(registry_copy),
        "WMSTUDIO_STATE_DIR": str(tmp_path),
        "WMSTUDIO_API_HOST": "0.0.0.0",
        "WMSTUDIO_API_KEYS": "",
    }
    refused = subprocess.run(
        [*command, "--port", str(free_port())], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert refused.returncode != 0 and "refusing to start the API on 0.0.0.0" in refused.stderr
    assert "WMSTUDIO_API_KEYS" in refused.stderr and "WMSTUDIO_ALLOW_INSECURE" in refused.stderr
    # the explicit flag lets it run
    server = Server(
        {"WMSTUDIO_REGISTRY_DIR": str(registry_copy), "WMSTUDIO_API_HOST": "0.0.0.0", "WMSTUDIO_ALLOW_INSECURE": "1"},
        tmp_path,
    )
    server.stop()
    # the CLI checks the address it is asked to bind (a documentation address: never bound)
    cli = run_cli("serve", "--host", "192.0.2.1", "--port", str(free_port()), env={"WMSTUDIO_API_KEYS": ""})
    assert cli.returncode == 2 and "refusing to start the API on 192.0.2.1" in cli.stderr
    assert "Traceback" not in cli.stderr
