"""Would PP-OCR's text detector find the marks the version misses, anywhere in the photo?

Issue #30. The pipeline reads only what the network proposes. PP-OCRv4's text detector (DBNet,
inside the ``rapidocr-onnxruntime`` wheel, Apache-2.0) proposes text boxes with no notion of
brand or place; the recogniser can then spot the brand's name in each. Here the detector runs
on every validation photo of the default draw, in the chosen variants, with its ONNX file on
ONNX Runtime and a connected-component post-processing (axis-aligned boxes, DB's unclip ratio);
each box is read and the brands spotted. For the photos the version misses at its threshold it
counts those where a text box over the mark spots the brand, and for photos without a brand how
often any box spots one. It also times the detector and the reads:

    python -m experiments.text_detector [VERSION] [--long-side 640] [--variants original,corner,crop,collage]
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import numpy as np
import onnxruntime as ort
from PIL import Image
from scipy import ndimage

from training.evaluate import carries_other_mark
from training.release import default_data, evaluation_sets
from training.robustness import collage_partners, make_variant, predict_variant
from training.script_errors import exit_on_user_error
from wmstudio.imaging import decode_image
from wmstudio.registry import Registry
from wmstudio.runtime import Detector
from wmstudio.runtime.postprocess import iou
from wmstudio.runtime.text_reading import TextReader, brand_spotting, reading_crop, recogniser_path
from wmstudio.settings import get_settings

SPOT = 0.3  # the card's spotting level


def detector_session(threads: int = 2) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    path = recogniser_path().with_name("ch_PP-OCRv4_det_infer.onnx")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def text_boxes(
    session: ort.InferenceSession, image: Image.Image, long_side: int, thresh: float = 0.3, box_thresh: float = 0.5
) -> list[tuple[float, float, float, float]]:
    """DB text boxes in the photo's pixels: probability map > ``thresh``, dilated, one box per
    component whose mean probability reaches ``box_thresh``, grown by DB's unclip distance (1.6)."""
    scale = long_side / max(image.size)
    width, height = (max(32, round(side * scale / 32) * 32) for side in image.size)
    bgr = np.asarray(image.convert("RGB").resize((width, height), Image.BILINEAR), dtype=np.float32)[:, :, ::-1]
    tensor = ((bgr / 255.0 - 0.5) / 0.5).transpose(2, 0, 1)[np.newaxis]
    probability = session.run(None, {session.get_inputs()[0].name: tensor})[0][0, 0]
    labels, _ = ndimage.label(ndimage.binary_dilation(probability > thresh, structure=np.ones((2, 2))))
    sx, sy = image.width / width, image.height / height
    boxes = []
    for index, (rows, cols) in enumerate(ndimage.find_objects(labels), start=1):
        w, h = cols.stop - cols.start, rows.stop - rows.start
        if min(w, h) < 3 or probability[rows, cols][labels[rows, cols] == index].mean() < box_thresh:
            continue
        grow = w * h * 1.6 / (2 * (w + h))
        boxes.append(
            (
                max(0.0, (cols.start - grow) * sx),
                max(0.0, (rows.start - grow) * sy),
                min(image.width, (cols.stop + grow) * sx),
                min(image.height, (rows.stop + grow) * sy),
            )
        )
    return boxes


def over_mark(box: tuple[float, ...], truth: list[tuple[float, ...]]) -> bool:
    return any(iou(box, mark) >= 0.2 for mark in truth)


@exit_on_user_error
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("version", nargs="?", default=None)
    parser.add_argument("--long-side", type=int, default=640)
    parser.add_argument("--variants", default="original,corner,crop,collage")
    args = parser.parse_args()
    settings = get_settings()
    detector = Detector.from_version_dir(Registry.from_settings(settings).resolve(args.version))
    session, reader = detector_session(), TextReader()
    data = default_data(settings.state_dir)
    sets = evaluation_sets(data.real, data.real_dir, data.synthetic, data.synthetic_dir, "val")  # the default draw
    counts: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    timings: dict[str, list[float]] = {"detector": [], "reads": []}
    for name, items in sets.items():
        partners = collage_partners(items)
        for variant in args.variants.split(","):
            for item, root in items:
                pool = [p for p in partners if p[0].sha256 != item.sha256]
                photo = make_variant(variant, item, root, pool)
                scores = predict_variant(detector, photo).prediction.brand_scores()
                image = decode_image(photo.data).image.convert("RGB")
                started = time.perf_counter()
                boxes = text_boxes(session, image, args.long_side)
                timings["detector"].append(time.perf_counter() - started)
                started = time.perf_counter()
                crops = [reading_crop(image, box, 0.05, 0.1) for box in boxes]
                read = reader.probabilities_of(crops) if crops else []
                timings["reads"].append(time.perf_counter() - started)
                spotted = [{b: brand_spotting(p, reader.alphabet, b) for b in detector.classes} for p in read]
                truth = [tuple(box.box) for box in photo.item.boxes]
                row = counts[(name, variant)]
                if item.brand is not None:
                    missed = scores.get(item.brand, 0.0) < detector.threshold
                    on_mark = [s for box, s in zip(boxes, spotted, strict=True) if over_mark(box, truth)]
                    found = any(s[item.brand] >= SPOT for s in on_mark)
                    row[f"{item.brand} photos"] += 1
                    row[f"{item.brand} found by text boxes"] += found
                    row[f"{item.brand} missed"] += missed
                    row[f"{item.brand} missed, a text box on it"] += missed and bool(on_mark)
                    row[f"{item.brand} missed, found by text boxes"] += missed and found
                else:
                    kind = "other-agency" if carries_other_mark(item) else "clean"
                    row[f"{kind} photos"] += 1
                    row[f"{kind}, a brand spotted"] += any(max(s.values()) >= SPOT for s in spotted)
    for key, row in sorted(counts.items()):
        print(*key, dict(row))
    for stage, seconds in timings.items():
        ms = np.asarray(seconds) * 1000
        print(f"{stage}: median {np.median(ms):.1f} ms, p95 {np.percentile(ms, 95):.1f} ms")


if __name__ == "__main__":
    main()
