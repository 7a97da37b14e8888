"""Latency and throughput of the running API over loopback.

Usage: python benchmarks/bench_api.py [--url http://127.0.0.1:8000] [--requests 200] [--clients 4]
Starts its own server on a free port when --url is not given. Sends a 1080 px JPEG to
/v1/detect: single-client latency p50/p95, then throughput with N concurrent clients.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_runtime import photo_jpeg

ROOT = Path(__file__).resolve().parent.parent


def start_server(env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    """A uvicorn server on a free loopback port, once /readyz answers; ``env`` adds variables."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "api.main:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(240):
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    process.kill()
    raise SystemExit("server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default=None)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    process, url = (None, args.url) if args.url else start_server()
    data = photo_jpeg(1080, 810)
    files = {"file": ("photo.jpg", data, "image/jpeg")}
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            for _ in range(10):
                client.post("/v1/detect", files=files).raise_for_status()
            latencies = []
            for _ in range(args.requests):
                start = time.perf_counter()
                client.post("/v1/detect", files=files).raise_for_status()
                latencies.append((time.perf_counter() - start) * 1000)
        q = statistics.quantiles(latencies, n=20)
        print(f"single client, {args.requests} requests of a {len(data) // 1024} KB 1080x810 JPEG")
        print(f"  latency p50 {statistics.median(latencies):.1f} ms   p95 {q[18]:.1f} ms")

        def worker(count: int) -> int:
            with httpx.Client(base_url=url, timeout=30) as client:
                for _ in range(count):
                    client.post("/v1/detect", files=files).raise_for_status()
            return count

        per_client = args.requests // args.clients
        start = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            done = sum(pool.map(worker, [per_client] * args.clients))
        elapsed = time.perf_counter() - start
        print(f"{args.clients} concurrent clients: {done} photos in {elapsed:.1f} s = {done / elapsed:.1f} photos/s")
    finally:
        if process is not None:
            process.terminate()
            process.wait(10)


if __name__ == "__main__":
    main()
