"""Latency of two or more model versions side by side, in-process and through the API, in one run.

Usage:
    python benchmarks/bench_versions.py v32 v37 [--registry DIR] [--photos DIR] [--rounds 3] [--requests 200]

In-process: each real listing photo (``--photos``, default ../shared/data/listings/images; a
synthetic 1080 px JPEG when absent) is decoded from its bytes as the API decodes uploads and
run through the whole detector (network and post-processing), versions in alternating blocks
(see ``in_process`` for why not photo by photo). API: a uvicorn server per version on a free loopback
port, single client, the same photos posted to /v1/detect in turn. Prints medians and p95s.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_api import start_server
from bench_runtime import photo_jpeg

from wmstudio.imaging import decode_image
from wmstudio.predict import prediction_record
from wmstudio.registry import Registry
from wmstudio.runtime import Detector
from wmstudio.settings import get_settings

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PHOTOS = ROOT.parent / "shared" / "data" / "listings" / "images"


def load_photos(folder: Path) -> list[bytes]:
    files = (
        sorted(p for p in folder.glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png")) if folder.is_dir() else []
    )
    return [p.read_bytes() for p in files] or [photo_jpeg()]


def quantiles(values: list[float]) -> tuple[float, float]:
    return statistics.median(values), statistics.quantiles(values, n=20)[18]


def in_process(detectors: dict[str, Detector], photos: list[bytes], rounds: int) -> dict[str, list[float]]:
    """Milliseconds per photo, end to end, versions in alternating blocks of all photos.

    Not photo by photo: ONNX Runtime's worker threads spin for a while after each run, so a
    session called right after another one shares 2 cores with the other's spinning threads.
    Interleaved that way v32 measured 50 ms here, alone 21 ms; a server runs one model at a time.
    Each round runs every version over all photos, in reversed order every other round, so
    slow drifts in machine load fall on all versions alike.
    """
    times: dict[str, list[float]] = {name: [] for name in detectors}
    for detector in detectors.values():  # warm-up: first runs allocate
        for data in photos[:5]:
            prediction_record(detector, decode_image(data, draft_size=detector.decode_size))
    for round_index in range(rounds):
        order = list(detectors.items())
        for name, detector in order if round_index % 2 == 0 else reversed(order):
            prediction_record(detector, decode_image(photos[0], draft_size=detector.decode_size))  # settle threads
            for data in photos:
                start = time.perf_counter()
                prediction_record(detector, decode_image(data, draft_size=detector.decode_size))
                times[name].append((time.perf_counter() - start) * 1000)
    return times


def single_version_registry(source: Path, work: Path) -> Path:
    """A registry folder holding only ``source`` as its champion, for one server."""
    registry = Registry(work / source.name)
    shutil.copytree(source, registry.root / source.name, ignore=shutil.ignore_patterns("evaluation", "*.pt"))
    registry.promote(source.name, "benchmark")
    return registry.root


def api_latency(folder: Path, photos: list[bytes], requests: int, work: Path) -> list[float]:
    """Milliseconds per /v1/detect call on a server serving only ``folder``'s version."""
    env = {
        "WMSTUDIO_REGISTRY_DIR": str(single_version_registry(folder, work)),
        "WMSTUDIO_STATE_DIR": str(work / f"state-{folder.name}"),
    }
    server, url = start_server(env)
    try:
        with httpx.Client(timeout=30) as client:
            times = []
            for index in range(requests + 5):
                data = photos[index % len(photos)]
                start = time.perf_counter()
                response = client.post(f"{url}/v1/detect", files={"file": ("photo.jpg", data, "image/jpeg")})
                elapsed = (time.perf_counter() - start) * 1000
                response.raise_for_status()
                if index >= 5:  # the first calls warm the server up
                    times.append(elapsed)
            return times
    finally:
        server.terminate()
        server.wait(timeout=30)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("versions", nargs="+")
    parser.add_argument("--registry", type=Path, default=None, help="registry folder (default: the settings')")
    parser.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    registry = Registry(args.registry or get_settings().registry_dir)
    folders = {version: registry.path(version) for version in args.versions}
    detectors = {v: Detector.from_version_dir(f, threads=args.threads) for v, f in folders.items()}
    photos = load_photos(args.photos)
    print(f"{len(photos)} photos from {args.photos if len(photos) > 1 else 'a synthetic 1080 px JPEG'}")
    results: dict[str, dict] = {}
    for version, times in in_process(detectors, photos, args.rounds).items():
        median, p95 = quantiles(times)
        results[version] = {"in_process_median_ms": round(median, 2), "in_process_p95_ms": round(p95, 2)}
        print(f"{version} in-process end to end: median {median:.1f} ms, p95 {p95:.1f} ms")
    with tempfile.TemporaryDirectory(prefix="wmstudio-bench-") as scratch:
        for version, folder in folders.items():
            median, p95 = quantiles(api_latency(folder, photos, args.requests, Path(scratch)))
            results[version] |= {"api_p50_ms": round(median, 2), "api_p95_ms": round(p95, 2)}
            print(f"{version} API /v1/detect, one client: p50 {median:.1f} ms, p95 {p95:.1f} ms")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
