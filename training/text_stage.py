"""A new version: a registered version's network plus text rescoring of its candidates, released as usual.

The network is copied, not re-exported, so the new version's network alone is exactly the
source's; a static batch is freed on the way (:mod:`training.onnx_batch`, outputs verified equal)
so the runtime can batch its extra looks. The release then chooses the threshold on the
validation variants (with the reading, and for the network alone), measures test once and writes
the card; the gate and ``wmstudio models promote`` take it from there. The rescoring settings
come from validation (``python -m experiments.ocr_rescoring``).

    python -m training.text_stage v32 [--version v36] [--match 0.75 --boost 0.5 --damp 0.3] [--spot 0.3]
        [--cross-brand] [--unspotted 0.02] [--reread-part 0.3 --reread-margin-x 0.5] [--faint 0.05 0.3]
        [--input-margin 0.04]
        [--margin-x 0.1 --margin-y 0.25] [--second-view 0.04,0.08 0.1 0.7] [--tile-view 2 0.25 0.1 0.7]
        [--panel-view 0.55 0.2 1.0 [--panel-lowest 0.05]] [--int8 [--int8-float /model.0/,/model.10/,/model.23/]]
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from training.onnx_batch import free_batch
from training.quantize import CALIBRATION_PHOTOS, FLOAT_PARTS, is_quantized, quantize_network
from training.release import calibrate_and_evaluate, default_data
from training.script_errors import exit_on_user_error
from training.warm_start import calibration_photos
from wmstudio import tracking
from wmstudio.registry import Registry
from wmstudio.runtime.panel_view import PanelView
from wmstudio.runtime.second_view import SecondView
from wmstudio.runtime.text_reading import TextRescoring
from wmstudio.runtime.tile_view import TileView
from wmstudio.settings import get_settings

# Fields of the source card that describe its own release, not the new version's.
RELEASE_FIELDS = ("metrics", "validation_f1", "threshold_rule", "network_threshold", "network_metrics", "mlflow")


def register_text_stage(
    registry: Registry,
    source: str,
    rescoring: TextRescoring,
    version: str | None = None,
    input_margin: float | None = None,
    second_view: SecondView | None = None,
    tile_view: TileView | None = None,
    panel_view: PanelView | None = None,
    int8_calibration: Sequence[Path] = (),
    int8_float_parts: Sequence[str] = FLOAT_PARTS,
) -> str:
    """Create the new version's folder and card (its threshold is the source's until released).

    ``input_margin`` (the letterbox's grey surround, :func:`wmstudio.runtime.preprocess.letterbox`)
    ``second_view`` (:mod:`wmstudio.runtime.second_view`), ``tile_view``
    (:mod:`wmstudio.runtime.tile_view`) and ``panel_view`` (:mod:`wmstudio.runtime.panel_view`)
    change how the same network sees the photo, not its bytes; None keeps the source's.
    With ``int8_calibration`` (train photos) the network is quantized to int8 instead of copied
    (:mod:`training.quantize`), ``int8_float_parts`` (node-name prefixes) left in float: the new
    version's network alone is then the quantized one.
    """
    card = registry.card(source)
    if int8_calibration and is_quantized(registry.path(source) / "model.onnx"):
        raise ValueError(f"{source}'s network is already int8")  # before any folder is made
    version = version or registry.reserve_version()
    folder = registry.root / version
    folder.mkdir(parents=True, exist_ok=True)
    free_batch(registry.path(source) / "model.onnx", folder / "model.onnx")  # the same outputs, verified
    if int8_calibration:
        quantize_network(
            folder / "model.onnx", folder / "model.onnx", int8_calibration, int(card["imgsz"]), int8_float_parts
        )
    weights = registry.path(source) / "model.pt"
    if weights.exists():  # warm starts from the new version train the same network
        shutil.copyfile(weights, folder / "model.pt")
    new_card = {key: value for key, value in card.items() if key not in RELEASE_FIELDS}
    new_card |= {
        "version": version,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "parent": source,
        "recipe": {**card.get("recipe", {}), "text_rescoring_from": source},
        "text_rescoring": rescoring.to_card(),
        "metrics": {},
    }
    if input_margin is not None:
        new_card["input_margin"] = input_margin
    if second_view is not None:
        new_card["second_view"] = second_view.to_card()
    if tile_view is not None:
        new_card["tile_view"] = tile_view.to_card()
    if panel_view is not None:
        new_card["panel_view"] = panel_view.to_card()
    if int8_calibration:
        new_card["quantized"] = {
            "format": "int8 QDQ (onnxruntime quantize_static, weights per channel)",
            "float_parts": list(int8_float_parts),
            "calibration_photos": len(int8_calibration),
            "from": source,
        }
    registry.write_card(version, new_card)
    return version


def parsed_second_view(margins: str, lowest: str, below: str) -> SecondView:
    """``--second-view 0.04,0.08 0.1 0.7``: a ValueError names what is wrong."""
    try:
        numbers = tuple(float(m) for m in margins.split(",")), float(lowest), float(below)
    except ValueError as exc:
        raise ValueError(f"--second-view takes MARGINS LOWEST BELOW as numbers: {exc}") from exc
    return SecondView(*numbers)


def parsed_tile_view(grid: str, overlap: str, lowest: str, below: str) -> TileView:
    """``--tile-view 2 0.25 0.1 0.7``: a ValueError names what is wrong."""
    try:
        numbers = int(grid), float(overlap), float(lowest), float(below)
    except ValueError as exc:
        raise ValueError(f"--tile-view takes GRID OVERLAP LOWEST BELOW as numbers: {exc}") from exc
    return TileView(*numbers)


def parsed_panel_view(seam: str, min_share: str, below: str, lowest: float = 0.0) -> PanelView:
    """``--panel-view 0.55 0.2 0.7`` (and ``--panel-lowest``): a ValueError names what is wrong."""
    try:
        numbers = float(seam), float(min_share), float(below)
    except ValueError as exc:
        raise ValueError(f"--panel-view takes SEAM MIN_SHARE BELOW as numbers: {exc}") from exc
    return PanelView(*numbers, lowest=lowest)


@exit_on_user_error
def main() -> None:
    defaults = TextRescoring()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="registered version whose network is used")
    parser.add_argument("--version", default=None, help="name of the new version (default: the next free one)")
    for name in ("floor", "match", "boost", "damp", "min_confidence", "margin_x", "margin_y", "reread_margin_x"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=float, default=getattr(defaults, name))
    parser.add_argument("--top", type=int, default=defaults.top)
    parser.add_argument("--spot", type=float, default=None, help="spot the brand's name from this keyword score")
    parser.add_argument(
        "--cross-brand", action="store_true", help="with --spot: a candidate whose text spots the other brand takes it"
    )
    parser.add_argument(
        "--unspotted", type=float, default=None, help="with --spot: damp text spotting no brand above this"
    )
    parser.add_argument(
        "--reread-part", type=float, default=None, help="with --spot: read again wider when part of a name spots this"
    )
    parser.add_argument(
        "--faint",
        nargs=2,
        type=float,
        default=None,
        metavar=("SPOT", "BOOST"),
        help="with --spot: lift a candidate whose own brand spots from SPOT (under --spot) by BOOST",
    )
    parser.add_argument(
        "--input-margin", type=float, default=None, help="grey surround of the network's input, a share of its side"
    )
    parser.add_argument(
        "--second-view",
        nargs=3,
        default=None,
        metavar=("MARGINS", "LOWEST", "BELOW"),
        help="look again inside these surrounds (comma-separated, one view each) when the best score after "
        "reading is in [LOWEST, BELOW)",
    )
    parser.add_argument(
        "--tile-view",
        nargs=4,
        default=None,
        metavar=("GRID", "OVERLAP", "LOWEST", "BELOW"),
        help="look at GRID x GRID overlapping tiles too when the first view's best score after reading is in "
        "[LOWEST, BELOW)",
    )
    parser.add_argument(
        "--panel-view",
        nargs=3,
        default=None,
        metavar=("SEAM", "MIN_SHARE", "BELOW"),
        help="look at each panel of a composed photo (seams agreed by SEAM of the rows, panels at least "
        "MIN_SHARE of the side) when the first view's best score after reading is under BELOW",
    )
    parser.add_argument(
        "--panel-lowest",
        type=float,
        default=0.0,
        help="with --panel-view: leave a photo plain when the first view's best score is under this",
    )
    parser.add_argument(
        "--int8",
        action="store_true",
        help=f"quantize the network to int8 (ranges from {CALIBRATION_PHOTOS} train photos) instead of copying it",
    )
    parser.add_argument(
        "--int8-float",
        default=",".join(FLOAT_PARTS),
        metavar="PREFIXES",
        help="with --int8: comma-separated node-name prefixes left in float",
    )
    args = parser.parse_args()
    try:  # a bad band is named before any work
        second_view = parsed_second_view(*args.second_view) if args.second_view else None
        tile_view = parsed_tile_view(*args.tile_view) if args.tile_view else None
        panel_view = parsed_panel_view(*args.panel_view, lowest=args.panel_lowest) if args.panel_view else None
    except ValueError as exc:
        parser.error(str(exc))
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    settings = get_settings()
    registry = Registry.from_settings(settings)
    rescoring = TextRescoring(
        floor=args.floor,
        top=args.top,
        match=args.match,
        boost=args.boost,
        damp=args.damp,
        min_confidence=args.min_confidence,
        spot=args.spot,
        cross_brand=args.cross_brand,
        unspotted=args.unspotted,
        reread_part=args.reread_part,
        reread_margin_x=args.reread_margin_x,
        **({"faint_spot": args.faint[0], "faint_boost": args.faint[1]} if args.faint else {}),
        margin_x=args.margin_x,
        margin_y=args.margin_y,
    )
    data = default_data(settings.state_dir)  # missing data is named before a folder is created
    int8_photos = calibration_photos(data, CALIBRATION_PHOTOS) if args.int8 else []
    version = register_text_stage(
        registry,
        args.source,
        rescoring,
        args.version,
        args.input_margin,
        second_view,
        tile_view,
        panel_view,
        int8_calibration=int8_photos,
        int8_float_parts=[part for part in args.int8_float.split(",") if part],
    )
    card = calibrate_and_evaluate(registry, version, data)
    tracking.log_release(registry, version, settings)
    keys = ("version", "threshold", "network_threshold", "validation_f1", "metrics", "network_metrics")
    print(json.dumps({key: card.get(key) for key in keys}, indent=1))


if __name__ == "__main__":
    main()
