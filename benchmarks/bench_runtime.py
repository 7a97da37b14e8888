"""ONNX Runtime latency of the served model on this machine (median of many runs).

Usage: python benchmarks/bench_runtime.py [--version vN] [--runs 200] [--threads 2]
Prints end-to-end per-photo latency (decode + letterbox + inference + NMS) for a 1080 px
JPEG and the model-only time on a pre-processed tensor, once per input size when the version
runs its network at several (``extra_input_sizes`` in its card).
"""

from __future__ import annotations

import argparse
import io
import statistics
import time

import numpy as np
from PIL import Image

from wmstudio.imaging import decode_image
from wmstudio.predict import prediction_record
from wmstudio.registry import Registry
from wmstudio.runtime import Detector
from wmstudio.runtime.preprocess import letterbox
from wmstudio.settings import get_settings


def photo_jpeg(width: int = 1080, height: int = 810) -> bytes:
    rng = np.random.default_rng(0)
    ys, xs = np.mgrid[0:height, 0:width]
    base = np.stack([xs / width * 200, ys / height * 180, (xs + ys) / (width + height) * 150], -1)
    image = Image.fromarray(np.clip(base + rng.normal(0, 12, base.shape) + 30, 0, 255).astype(np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def timed(fn, runs: int) -> list[float]:
    for _ in range(10):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--version", default=None)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    registry = Registry.from_settings(get_settings())
    folder = registry.path(args.version) if args.version else registry.champion_path()
    detector = Detector.from_version_dir(folder, threads=args.threads)
    data = photo_jpeg()
    rows = []
    for size in detector.input_sizes:
        tensor, _ = letterbox(decode_image(data).image, size)
        rows.append((f"model only at {size} px", timed(lambda tensor=tensor: detector.raw(tensor), args.runs)))
    end_to_end = timed(
        lambda: prediction_record(detector, decode_image(data, draft_size=detector.decode_size)), args.runs
    )
    rows.append(("1080px JPEG end-to-end", end_to_end))
    sizes = " + ".join(str(size) for size in detector.input_sizes)
    print(f"model {detector.version}, input {sizes} px, {args.threads} threads, {args.runs} runs")
    for name, values in rows:
        q = statistics.quantiles(values, n=20)
        print(f"{name:>24}: median {statistics.median(values):6.2f} ms   p95 {q[18]:6.2f} ms")


if __name__ == "__main__":
    main()
