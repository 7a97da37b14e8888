"""What a larger or different network would cost on this machine: the model-scale axis of the search.

Usage: python benchmarks/bench_model_scale.py [--models yolo11n.yaml,yolov8n.yaml,yolo11s.yaml]
       [--sizes 320,416] [--steps 6] [--runs 100] [--threads 2]

An accuracy trial of a new architecture has to start from scratch (the champion's weights do not
fit it). On 2 CPU cores a from-scratch yolo11n needed 1.5 h (24 epochs) to reach validation mAP50
0.57, and a 10-minute trial reaches ~3 epochs, where every network still scores near zero. So
the question this answers first is the budget one. For each network and input size it prints the
parameters and GFLOPs, the seconds one training step takes (forward, Ultralytics' detection loss
and backward on a batch of 16; compute only, since the trainer's loading and augmentation cost
the same for every network), that step relative to the first row (the shipped yolo11n at 320 px
by default), and the ONNX Runtime latency of the exported network (model only, median) with its
size (the bundled model must stay under 15 MB). Weights are random: speed does not depend on them.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_runtime import timed

from training.export import export_onnx
from wmstudio.brands import BRANDS
from wmstudio.offline import apply_offline_env
from wmstudio.runtime import Detector

BATCH = 16


def build(model_yaml: str):
    """An untrained Ultralytics model for our classes, with the trainer's loss attached."""
    from ultralytics.cfg import get_cfg
    from ultralytics.nn.tasks import DetectionModel

    model = DetectionModel(model_yaml, nc=len(BRANDS), verbose=False)
    model.args = get_cfg()
    return model


def train_step_seconds(model, imgsz: int, steps: int) -> float:
    """Median seconds of one optimiser step on a batch of 16 with a few boxes per image."""
    import torch

    torch.manual_seed(0)
    model.train()
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-4)
    images = torch.rand(BATCH, 3, imgsz, imgsz)
    batch = {
        "img": images,
        "batch_idx": torch.arange(BATCH, dtype=torch.float32),
        "cls": torch.zeros(BATCH, 1),
        "bboxes": torch.tensor([[0.5, 0.5, 0.4, 0.1]]).repeat(BATCH, 1),
    }
    times = []
    for step in range(steps + 1):
        start = time.perf_counter()
        optimiser.zero_grad()
        loss, _ = model.loss(batch)
        loss.sum().backward()
        optimiser.step()
        if step:  # the first step pays for allocation
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def onnx_latency_ms(model, imgsz: int, runs: int, threads: int, work: Path) -> tuple[float, float]:
    """Median model-only ONNX Runtime latency and the file's MB, exported as a release exports."""
    import torch

    weights = work / f"scale-{imgsz}.pt"
    torch.save({"model": model.float().eval(), "train_args": {}}, weights)
    onnx = export_onnx(weights, imgsz, work / f"scale-{imgsz}.onnx")
    detector = Detector(onnx, list(BRANDS), imgsz, 0.5, "scale", threads)
    tensor = np.random.default_rng(0).random((1, 3, imgsz, imgsz), dtype=np.float32)
    return statistics.median(timed(lambda: detector.raw(tensor), runs)), onnx.stat().st_size / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="yolo11n.yaml,yolov8n.yaml,yolo11s.yaml")
    parser.add_argument("--sizes", default="320,416")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    apply_offline_env()
    import torch
    from ultralytics.utils import LOGGER
    from ultralytics.utils.torch_utils import get_flops, get_num_params

    LOGGER.setLevel(logging.WARNING)  # the export's banner would bury the table
    torch.set_num_threads(args.threads)
    print(f"{args.threads} threads; training steps of {BATCH} images, compute only")
    print("| network | input | params (M) | GFLOPs | s per train step | × first row | ONNX ms (median) | ONNX MB |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    reference = None
    with tempfile.TemporaryDirectory() as tmp:
        for model_yaml in args.models.split(","):
            for imgsz in (int(size) for size in args.sizes.split(",")):
                model = build(model_yaml)
                params = get_num_params(model) / 1e6
                gflops = get_flops(model, imgsz)
                step = train_step_seconds(model, imgsz, args.steps)
                reference = reference or step
                latency, megabytes = onnx_latency_ms(model, imgsz, args.runs, args.threads, Path(tmp))
                name = model_yaml.removesuffix(".yaml")
                cells = [name, imgsz, f"{params:.2f}", f"{gflops:.1f}", f"{step:.2f}", f"{step / reference:.1f}"]
                cells += [f"{latency:.1f}", f"{megabytes:.1f}"]
                print("| " + " | ".join(map(str, cells)) + " |", flush=True)


if __name__ == "__main__":
    main()
