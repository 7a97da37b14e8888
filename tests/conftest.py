"""Shared fixtures: data paths, sample images of every awkward kind, a real uvicorn server."""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from wmstudio.offline import apply_offline_env

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("WMSTUDIO_DATA_DIR", ROOT.parent / "shared" / "data"))
BUNDLED_REGISTRY = ROOT / "models"
WEBHOOK_SECRET = "hook-secret"  # the secured server's Label Studio webhook secret
FUZZ_RATE = "100/second"  # webhook throttle of the shared servers: schemathesis must get past it

apply_offline_env(ROOT / ".wmstudio")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (DATA_DIR / "listings" / "labels.csv").exists():
        pytest.skip(f"provided data not found at {DATA_DIR}")
    return DATA_DIR


@pytest.fixture(scope="session")
def bundled_registry() -> Path:
    if not (BUNDLED_REGISTRY / "registry.json").exists():
        pytest.skip("no bundled model in models/")
    return BUNDLED_REGISTRY


def textured_photos(folder: Path, count: int = 6) -> list[Path]:
    """Textured photos with light text-like bars: batch-norm statistics and int8 ranges need varied
    pixels, and a network needs no real photo to be rebuilt or quantized."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        pixels = rng.integers(0, 255, (90 + 10 * index, 120, 3), dtype=np.uint8)
        pixels[30:40, 20:100] = 245
        path = folder / f"p{index}.jpg"
        Image.fromarray(pixels).save(path)
        paths.append(path)
    return paths


def untrained_version(folder: Path, imgsz: int = 64) -> Path:
    """A version folder with PyTorch weights (an untrained two-class network) and its ONNX export.

    Git carries the champion's ONNX file only; code that needs ``model.pt`` (re-export, parity
    with PyTorch) gets a real network of the right shape here in seconds, without training.
    """
    pytest.importorskip("ultralytics")
    from ultralytics import YOLO
    from ultralytics.nn.tasks import DetectionModel

    from training.export import export_onnx
    from wmstudio.brands import BRANDS

    folder.mkdir(parents=True, exist_ok=True)
    network = YOLO("yolo11n.yaml")
    network.model = DetectionModel("yolo11n.yaml", nc=len(BRANDS), verbose=False)
    network.model.names = dict(enumerate(BRANDS))
    network.save(folder / "model.pt")
    export_onnx(folder / "model.pt", imgsz, folder / "model.onnx")
    card = {"version": folder.name, "classes": list(BRANDS), "imgsz": imgsz, "threshold": 0.5}
    (folder / "model_card.json").write_text(json.dumps(card))
    return folder


def trained_champion(bundled: Path) -> Path | None:
    """The champion's folder with its trained weights beside its ONNX file, where this checkout has
    them: the working registry of the default state dir (or a bundled copy from before weights
    left git). None on a fresh clone."""
    from wmstudio.registry import Registry

    champion = Registry(bundled).champion()
    state = Path(os.environ.get("WMSTUDIO_STATE_DIR", ROOT / ".wmstudio"))
    for root in (bundled, state / "models"):
        if champion and (root / champion / "model.pt").exists() and (root / champion / "model.onnx").exists():
            return root / champion
    return None


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``wmstudio`` as a user would: a fresh interpreter, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, timeout: float = 60.0, expect: int = 200) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | int | None = None
    while time.monotonic() < deadline:
        try:
            response = httpx.get(url, timeout=2)
            if response.status_code == expect:
                return
            last = response.status_code
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.25)
    raise TimeoutError(f"{url} not ready: {last}")


class Server:
    """A real uvicorn process serving the API on 127.0.0.1."""

    def __init__(self, env: dict[str, str], state_dir: Path, ready_path: str = "/readyz") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = state_dir / f"api-{self.port}.log"
        full_env = {**os.environ, **env, "WMSTUDIO_STATE_DIR": str(state_dir)}
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "api.main:create_app",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=full_env,
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for(f"{self.url}{ready_path}")
        except TimeoutError:
            self.stop()
            raise RuntimeError(self.log.read_text()) from None

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


@pytest.fixture(scope="session")
def registry_copy(tmp_path_factory: pytest.TempPathFactory, bundled_registry: Path) -> Path:
    """A writable copy of the bundled registry (tests promote versions in it)."""
    target = tmp_path_factory.mktemp("registry") / "models"
    shutil.copytree(bundled_registry, target)
    return target


@pytest.fixture(scope="session")
def api_server(registry_copy: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = Server(
        {
            "WMSTUDIO_REGISTRY_DIR": str(registry_copy),
            "WMSTUDIO_API_KEYS": "",
            "WMSTUDIO_RELOAD_POLL_SECONDS": "0.5",
            "WMSTUDIO_WEBHOOK_RATE_LIMIT": FUZZ_RATE,
        },
        tmp_path_factory.mktemp("state"),
    )
    yield server
    server.stop()


@pytest.fixture(scope="session")
def secured_server(bundled_registry: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = Server(
        {
            "WMSTUDIO_REGISTRY_DIR": str(bundled_registry),
            "WMSTUDIO_API_KEYS": "k-one,k-two",
            "WMSTUDIO_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "WMSTUDIO_WEBHOOK_RATE_LIMIT": FUZZ_RATE,
        },
        tmp_path_factory.mktemp("state-secured"),
    )
    yield server
    server.stop()


# --- awkward images ----------------------------------------------------------------------------


def photo(width: int = 640, height: int = 480, seed: int = 0) -> Image.Image:
    """A photo-like RGB image (smooth gradients plus noise)."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width]
    base = np.stack([xs / width * 200, ys / height * 180, (xs + ys) / (width + height) * 150], -1)
    noise = rng.normal(0, 12, (height, width, 3))
    return Image.fromarray(np.clip(base + noise + 30, 0, 255).astype(np.uint8))


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def jpeg_bytes(width: int = 640, height: int = 480) -> bytes:
    return encode(photo(width, height), "JPEG", quality=90)


def truncated_jpeg() -> bytes:
    data = jpeg_bytes()
    return data[: len(data) // 2]


def bomb_png() -> bytes:
    """A 20000×20000 PNG of a few hundred kilobytes: refused from its header."""
    return encode(Image.new("1", (20000, 20000), 0), "PNG", optimize=True)


def cmyk_jpeg() -> bytes:
    return encode(photo().convert("CMYK"), "JPEG")


def png16() -> bytes:
    array = (np.linspace(0, 65535, 320 * 240).reshape(240, 320)).astype(np.uint16)
    return encode(Image.fromarray(array), "PNG")


def palette_png() -> bytes:
    return encode(photo().convert("P", palette=Image.ADAPTIVE), "PNG")


def rgba_png() -> bytes:
    image = photo().convert("RGBA")
    image.putalpha(128)
    return encode(image, "PNG")


def exif_rotated_jpeg(width: int = 640, height: int = 480) -> bytes:
    """Stored landscape, EXIF orientation 6: upright it is portrait (height × width)."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(photo(width, height), "JPEG", exif=exif)


def animated_gif() -> bytes:
    frames = [photo(200, 150, seed=i).convert("P") for i in range(3)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buffer.getvalue()


def webp_bytes() -> bytes:
    return encode(photo(), "WEBP")
