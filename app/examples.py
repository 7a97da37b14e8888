"""Example photos for the demo: real listing photos when the provided data is present,
otherwise synthetic marks on procedural scenes generated on first use (offline)."""

from __future__ import annotations

from pathlib import Path

from wmstudio.settings import get_settings

EXAMPLE_COUNT = 4


def example_photos() -> list[Path]:
    settings = get_settings()
    listings = settings.data_dir / "listings" / "images"
    labels = settings.data_dir / "listings" / "labels.csv"
    if labels.exists():
        rows = [line.split(",") for line in labels.read_text().splitlines()[1:]]
        positives = [listings.parent / r[0] for r in rows if len(r) > 1 and r[1] == "1"][:2]
        negatives = [listings.parent / r[0] for r in rows if len(r) > 1 and r[1] == "0"][:2]
        found = [p for p in positives + negatives if p.exists()]
        if found:
            return found
    return synthetic_examples(settings.state_dir / "examples")


def synthetic_examples(folder: Path) -> list[Path]:
    """Four photos: Rumah123, 99.co, another agency's mark, clean (seeded, cached on disk)."""
    from training.synth.compose import SyntheticGenerator
    from training.synth.procedural import write_scenes

    wanted = [folder / f"example_{name}.jpg" for name in ("rumah123", "99co", "other", "clean")]
    if all(p.exists() for p in wanted):
        return wanted
    scenes = write_scenes(folder / "scenes", 8, seed=7)
    generator = SyntheticGenerator("test", seed=7)
    found: dict[str, bytes] = {}
    index = 0
    while len(found) < 4 and index < 200:
        drawn = generator.generate(scenes[index % len(scenes)])
        index += 1
        label = drawn.boxes[0].label if drawn.boxes else ("other" if drawn.other_marks else "clean")
        found.setdefault(label, drawn.image_bytes)
    for path in wanted:
        label = path.stem.removeprefix("example_")
        if label in found:
            path.write_bytes(found[label])
    return [p for p in wanted if p.exists()]
