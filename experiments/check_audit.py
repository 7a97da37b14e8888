"""Where a version's template checks fire, per set and kind of photo (validation by default).

A fired check decides the photo (``wmstudio.runtime.mark_check.DECISIVE_SCORE``), so its
specificity is what matters: this counts the photos each check fires on, grouped by what they
hold (the brand, another agency's mark, nothing), with the highest and lowest correlation, so
the margin under the threshold on photos the check was never calibrated on can be read off.

    python -m experiments.check_audit [VERSION] [--split val|test]
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable

from PIL import Image
from tqdm import tqdm

from training.evaluate import carries_other_mark
from training.release import default_sets
from training.script_errors import exit_on_user_error
from wmstudio.data.manifest import Item
from wmstudio.imaging import decode_image
from wmstudio.registry import Registry
from wmstudio.runtime import Detector
from wmstudio.runtime.mark_check import MarkCheck
from wmstudio.settings import get_settings


def photo_group(set_name: str, item: Item) -> str:
    """``"<set> <brand | other mark | clean>"``: the kinds of photo a check must tell apart."""
    kind = item.brand or ("other mark" if carries_other_mark(item) else "clean")
    return f"{set_name} {kind}"


def fire_table(check: MarkCheck, photos: Iterable[tuple[str, Image.Image]]) -> dict[str, dict]:
    """Per group: photos, how many the check fires on, and the highest and lowest correlation."""
    table: dict[str, dict] = {}
    for group, image in photos:
        correlation, _ = check.correlation(image)
        row = table.setdefault(group, {"photos": 0, "fired": 0, "max": -1.0, "min": 1.0})
        row["photos"] += 1
        row["fired"] += correlation >= check.threshold
        row["max"], row["min"] = max(row["max"], correlation), min(row["min"], correlation)
    return table


@exit_on_user_error
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("version", nargs="?", default=None, help="model version (default: the champion)")
    parser.add_argument("--split", default="val", choices=("val", "test"))
    args = parser.parse_args()
    settings = get_settings()
    detector = Detector.from_version_dir(Registry(settings.registry_dir).resolve(args.version))
    sets = default_sets(settings.datasets_dir, args.split)
    items = [(name, entry) for name, entries in sets.items() for entry in entries]
    photos = [
        (photo_group(name, item), decode_image(root / item.path, draft_size=detector.decode_size).image)
        for name, (item, root) in tqdm(items, desc=f"decode {args.split}", unit="img")
    ]
    for check in detector.mark_checks:
        print(f"model {detector.version}, {check.brand} check, threshold {check.threshold:.3f}, {args.split} split")
        print(f"{'photos':<22} {'n':>4} {'fired':>6} {'max corr':>9} {'min corr':>9}")
        for group, row in sorted(fire_table(check, photos).items()):
            print(f"{group:<22} {row['photos']:>4} {row['fired']:>6} {row['max']:>9.3f} {row['min']:>9.3f}")


if __name__ == "__main__":
    main()
