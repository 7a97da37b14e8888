"""What do the alarms left on other agencies' marks read as, and may text nobody can read be damped?

Issue #30. At v51's threshold 1.9 % of the validation photos with another agency's mark still get
an alarm. The reading damps a candidate whose text spells no brand, but only when at least
``min_chars`` characters were read: a mark the recogniser cannot read at all keeps its score.
Two questions, on validation only:

1. ``--alarms``: every alarm on the synthetic validation photos as published, with what the
   recogniser reads in it (greedy text, confidence, each brand spotted, half a name spotted) and
   the network's own best score beside the pipeline's.
2. ``--spot N --set FIELD=VALUE``: the card's reading with fields overridden (for example
   ``min_chars=0``) against the card as it is, on N synthetic validation photos spread over every
   draw: marks found and missed, and alarms on the photos with another agency's mark.

    python -m experiments.unread_alarms [VERSION] [--alarms] [--spot 300 --set min_chars=0]
        [--variants original,corner,collage]
"""

from __future__ import annotations

import argparse
import copy
import json
from collections.abc import Sequence
from pathlib import Path

from experiments.panel_view import marks_found
from training.evaluate import carries_other_mark
from training.release import default_sets
from training.robustness import collage_partners, make_variant, predict_variant
from training.script_errors import exit_on_user_error
from wmstudio.imaging import decode_image
from wmstudio.registry import Registry
from wmstudio.runtime import Detector
from wmstudio.runtime.detector import ModelLoadError
from wmstudio.runtime.text_reading import BRAND_KEYWORDS, brand_spotting, part_spotting, reading_crop
from wmstudio.settings import get_settings


def print_alarms(detector: Detector, items: Sequence) -> None:
    """Each alarm on an other-agency photo as published, and what its best candidate reads as."""
    rescoring, reader, network = detector.text_rescoring, detector.text_reader, detector.network_only()
    print("| photo | brand | pipeline | network | text | confidence | spotted | half a name |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for item, root in items:
        if item.brand is not None or not carries_other_mark(item):
            continue
        image = decode_image(root / item.path).image.convert("RGB")
        above = detector.predict(image).above(detector.threshold)
        if not above or rescoring is None or reader is None:
            continue
        best = above[0]
        probabilities = reader.probabilities(reading_crop(image, best.box, rescoring.margin_x, rescoring.margin_y))
        text, confidence = reader.decode(probabilities)
        spotted = ", ".join(f"{b} {brand_spotting(probabilities, reader.alphabet, b):.3f}" for b in BRAND_KEYWORDS)
        alone = max(network.predict(image).brand_scores().values(), default=0.0)
        print(
            f"| {root.name}/{item.path} | {best.brand} | {best.score:.2f} | {alone:.2f} | {text!r} | {confidence:.2f} "
            f"| {spotted} | {part_spotting(probabilities, reader.alphabet):.3f} |"
        )


def overridden(onnx: Path, card: dict, fields: dict[str, object]) -> Detector:
    """The same version with its reading's ``fields`` changed."""
    changed = copy.deepcopy(card)
    changed["text_rescoring"] = changed.get("text_rescoring", {}) | fields
    return Detector.from_card(onnx, changed)


def spot_check(detectors: dict[str, Detector], items: Sequence, partners: Sequence, variants: Sequence[str]) -> None:
    """Marks found and missed, and other-agency alarms, at the card's threshold, per variant."""
    print("| variant | reading | marks found | missed | alarms |")
    print("| --- | --- | --- | --- | --- |")
    for variant in variants:
        counts = {name: [0, 0, 0, 0] for name in detectors}
        for item, root in items:
            photo = make_variant(variant, item, root, [p for p in partners if p[0].sha256 != item.sha256])
            for name, detector in detectors.items():
                above = predict_variant(detector, photo).prediction.above(detector.threshold)
                hits = marks_found(above, photo.item.boxes)
                tally = counts[name]
                tally[0], tally[1] = tally[0] + sum(hits), tally[1] + len(hits) - sum(hits)
                if item.brand is None and carries_other_mark(item):
                    tally[2], tally[3] = tally[2] + bool(above), tally[3] + 1
        for name, (found, missed, alarms, others) in counts.items():
            print(f"| {variant} | {name} | {found} | {missed} | {alarms} of {others} |")


def parsed_fields(pairs: Sequence[str]) -> dict[str, object]:
    """``FIELD=VALUE`` pairs, each value read as JSON so it keeps the card's type (0, 0.3, true)."""
    fields = {}
    for pair in pairs:
        name, _, value = pair.partition("=")
        try:
            if not name:
                raise ValueError("no field name")
            fields[name] = json.loads(value)
        except ValueError as exc:  # json.JSONDecodeError is a ValueError
            raise ValueError(f"--set takes FIELD=VALUE with a JSON value, got {pair!r}") from exc
    return fields


@exit_on_user_error
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("version", nargs="?", default=None)
    parser.add_argument("--alarms", action="store_true", help="list the alarms on validation photos as published")
    parser.add_argument("--spot", type=int, default=0, help="synthetic validation photos for the override check")
    parser.add_argument("--set", action="append", default=[], help="FIELD=VALUE of the card's text_rescoring")
    parser.add_argument("--variants", default="original,corner,collage")
    args = parser.parse_args()
    try:
        fields = parsed_fields(args.set)
    except ValueError as exc:
        parser.error(str(exc))
    settings = get_settings()
    folder = Registry.from_settings(settings).resolve(args.version)
    card = json.loads((folder / "model_card.json").read_text())
    detector = Detector.from_version_dir(folder)
    sets = default_sets(settings.state_dir / "datasets", "val")
    items = sets.get("synthetic", [])
    if args.alarms:
        print_alarms(detector, items)
    if args.spot:
        try:
            changed = overridden(folder / "model.onnx", card, fields)
        except ModelLoadError as exc:  # an unknown field is the user's mistake
            parser.error(f"--set: {exc}")
        chosen = items[:: max(1, len(items) // args.spot)][: args.spot]
        partners = collage_partners(sets.get("real", []) + items[:450])
        label = ", ".join(args.set) or "as the card"
        spot_check({"as the card": detector, label: changed}, chosen, partners, args.variants.split(","))


if __name__ == "__main__":
    main()
