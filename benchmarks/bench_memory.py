"""Peak memory of the API under worst-case photos: the figure behind the README's ceiling.

Usage: python benchmarks/bench_memory.py [--side 6300] [--concurrency 4] [--json]

Starts its own API (uvicorn on 127.0.0.1, the settings of the environment), then sends a flat
SIDE×SIDE PNG (a 6300 px one is ~130 KB on the wire and 40 MP, just under the pixel limit, so
it is decoded in full) to every image route, CONCURRENCY requests at a time: /v1/detect,
/v1/overlay (boxes and heatmap), and one /v1/detect/batch of CONCURRENCY such files. The peak
resident memory of the server process is the kernel's high-water mark (VmHWM in
/proc/PID/status), so no short spike between two samples is missed; it is printed after start
and after each route. The last line is the figure: ``peak server RSS: N MB``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent


def flat_png(side: int) -> bytes:
    """A one-colour PNG: tiny on the wire, ``side``² pixels once decoded."""
    buffer = io.BytesIO()
    Image.new("RGB", (side, side), (200, 184, 160)).save(buffer, "PNG")
    return buffer.getvalue()


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set so far (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc: this benchmark needs Linux")


def start_server(env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, "-m", "uvicorn", "api.main:create_app", "--factory", "--host", "127.0.0.1"]
    process = subprocess.Popen(
        [*command, "--port", str(port), "--log-level", "warning"], cwd=ROOT, env={**os.environ, **env}
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            break
        time.sleep(0.25)
    process.terminate()
    raise RuntimeError("the API did not become ready")


def _post(url: str, route: str, files: list, params: dict | None = None) -> int:
    response = httpx.post(f"{url}{route}", files=files, params=params, timeout=300)
    return response.status_code


def run(side: int, concurrency: int, env: dict[str, str] | None = None) -> dict:
    """Start a server, send the worst case to every route; peak RSS (MB) after each step."""
    data = flat_png(side)
    one = [("file", ("flat.png", data, "image/png"))]
    scenarios = {
        "detect": [("/v1/detect", one, None)] * concurrency,
        "overlay boxes": [("/v1/overlay", one, {"mode": "boxes"})] * concurrency,
        "overlay heatmap": [("/v1/overlay", one, {"mode": "heatmap"})] * concurrency,
        "batch": [("/v1/detect/batch", [("files", (f"{i}.png", data, "image/png")) for i in range(concurrency)], None)],
    }
    process, url = start_server(env or {})
    try:
        report = {"side": side, "png_bytes": len(data), "concurrency": concurrency}
        report["after start"] = round(peak_rss_mb(process.pid), 1)
        with ThreadPoolExecutor(concurrency) as pool:
            for name, calls in scenarios.items():
                started = time.perf_counter()
                statuses = list(pool.map(lambda call: _post(url, *call), calls))
                if set(statuses) != {200}:
                    raise RuntimeError(f"{name}: unexpected statuses {statuses}")
                report[name] = round(peak_rss_mb(process.pid), 1)
                report[f"{name} seconds"] = round(time.perf_counter() - started, 2)
        report["peak"] = max(v for k, v in report.items() if k in ("after start", *scenarios))
        return report
    finally:
        process.terminate()
        process.wait(15)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--side", type=int, default=6300, help="side of the flat PNG (default 6300: 39.7 MP)")
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight at once (default 4)")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON line")
    args = parser.parse_args()
    report = run(args.side, args.concurrency)
    if args.json:
        print(json.dumps(report))
    else:
        print(f"flat {args.side}x{args.side} PNG ({report['png_bytes']} bytes), {args.concurrency} requests at once")
        for key, value in report.items():
            if key not in ("side", "png_bytes", "concurrency", "peak"):
                print(f"  {key:<26} {value}")
    print(f"peak server RSS: {report['peak']:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
