"""Average the weights of fine-tunes that share an ancestor ("model soup"): no training, one network.

Every version since v2 is a fine-tune of the one before it, so neighbouring versions sit in one
basin of the loss, and their weight average is a working network (Wortsman et al., ICML 2022,
"Model soups"; Izmailov et al., UAI 2018, SWA). v23 and v24 each gained on validation 99.co and
lost a little on test: a fine-tune that drifts towards its own renderings. Averaging it with
the version it started from keeps what both agree on and damps what only one learnt, which is
the kind of gain that should carry from validation to test. It costs an export and an
evaluation, no CPU hours.

    python -m experiments.soup v22 PATH/TO/best.pt            # compare on validation only
    python -m experiments.soup v22 PATH/TO/best.pt --weights 0.7 0.3
    python -m experiments.soup v22 PATH/TO/best.pt --register # release the soup as a new version
    python -m experiments.soup v38 PATH/TO/best.pt --register --reading-from v43  # with v43's reading

Sources are registered versions or Ultralytics ``.pt`` files of the same architecture. The
comparison prints, for each source and for the soup, the release's threshold rule on
validation and the figures at it; ``--register`` then releases the soup the usual way (mark
checks, threshold on validation, test figures with it frozen). Promote it only if it passes
the gate against the champion.
"""

from __future__ import annotations

import argparse
import copy
import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path

from experiments.multiscale import SizeTrial, score_on_validation
from training.export import export_onnx, register_model
from training.release import calibrate_and_evaluate, default_data, default_sets
from training.script_errors import exit_on_user_error
from wmstudio import tracking
from wmstudio.offline import apply_offline_env
from wmstudio.registry import Registry
from wmstudio.runtime import Detector
from wmstudio.settings import get_settings

log = logging.getLogger(__name__)


def resolve_source(registry: Registry, source: str) -> Path:
    """A registered version's ``model.pt``, or a path to a ``.pt`` file."""
    path = Path(source)
    if path.suffix == ".pt":
        if not path.is_file():
            raise FileNotFoundError(f"no weights file {path}")
        return path
    return registry.weights(source)  # a version bundled from git has no weights: say so, clearly


def normalised(weights: Sequence[float] | None, count: int) -> list[float]:
    """Mixing weights that sum to one (uniform when none are given)."""
    if weights is None:
        return [1.0 / count] * count
    if len(weights) != count or any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError(f"need {count} non-negative weights with a positive sum, got {list(weights)}")
    total = float(sum(weights))
    return [w / total for w in weights]


def average_checkpoints(paths: Sequence[Path], weights: Sequence[float], out_path: Path) -> Path:
    """Write an Ultralytics checkpoint whose network is the weighted average of ``paths``.

    Floating-point tensors (weights, biases, BatchNorm statistics) are averaged in float32 and
    cast back; integer buffers (BatchNorm's batch counter) are taken from the first source. The
    first checkpoint's structure and metadata are kept, without optimiser state, so it loads,
    fine-tunes and exports like any ``best.pt``.
    """
    apply_offline_env()
    import torch

    checkpoints = [torch.load(path, map_location="cpu", weights_only=False) for path in paths]
    networks = [ckpt.get("ema") or ckpt["model"] for ckpt in checkpoints]
    states = [network.state_dict() for network in networks]
    keys = set(states[0])
    for path, state in zip(paths[1:], states[1:], strict=True):
        if set(state) != keys or any(state[k].shape != states[0][k].shape for k in keys):
            raise ValueError(f"{path} is not the same architecture as {paths[0]}: weights cannot be averaged")
    averaged = {}
    for key, first in states[0].items():
        if first.is_floating_point():
            mixed = sum(w * state[key].float() for w, state in zip(weights, states, strict=True))
            averaged[key] = mixed.to(first.dtype)
        else:
            averaged[key] = first.clone()
    network = copy.deepcopy(networks[0])
    network.load_state_dict(averaged)
    soup = {**checkpoints[0], "model": network, "ema": None, "optimizer": None, "updates": None}
    soup["train_args"] = {**(checkpoints[0].get("train_args") or {}), "soup_of": [str(p) for p in paths]}
    out_path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(soup, out_path)
    return out_path


def detector_for(weights: Path, base: Detector, name: str, scratch: Path) -> Detector:
    """``weights`` exported and run with ``base``'s classes, input size and mark checks."""
    onnx = export_onnx(weights, base.imgsz, scratch / f"{name}.onnx")
    return Detector(onnx, base.classes, base.imgsz, base.threshold, name, 2, base.card)


def compare_soup(
    registry: Registry, base_version: str, sources: Sequence[str], weights: list[float], datasets_dir: Path
) -> list[tuple[str, SizeTrial]]:
    """Each source, then their soup, scored on validation by the release's threshold rule."""
    paths = [resolve_source(registry, source) for source in sources]  # a typo is named before missing data
    base = Detector.from_version_dir(registry.path(base_version))
    val_sets = default_sets(datasets_dir, "val")
    rows = []
    with tempfile.TemporaryDirectory(prefix="wmstudio-soup-") as scratch:
        for index, (source, path) in enumerate(zip(sources, paths, strict=True)):
            log.info("scoring %s on validation", source)
            detector = detector_for(path, base, f"source{index}", Path(scratch))
            rows.append((source, score_on_validation(detector, val_sets)))
        soup = average_checkpoints(paths, weights, Path(scratch) / "soup.pt")
        log.info("scoring the soup on validation")
        label = "soup " + " + ".join(f"{w:.2f}×{s}" for s, w in zip(sources, weights, strict=True))
        rows.append((label, score_on_validation(detector_for(soup, base, "soup", Path(scratch)), val_sets)))
    return rows


def soup_recipe(base_version: str, base_recipe: dict, sources: Sequence[str], weights: Sequence[float]) -> dict:
    """The card's recipe for a soup: what was averaged, not a training run.

    Copying the base version's recipe as the soup's own (as v26's card does) reads as if the soup
    had been trained with it. The architecture and input size still describe the network, so
    they stay at the top; the base's recipe is kept whole under ``base_recipe``.
    """
    return {
        "method": "soup",
        "model": base_recipe.get("model"),
        "imgsz": base_recipe.get("imgsz"),
        "soup_of": list(sources),
        "soup_weights": list(weights),
        "base_version": base_version,
        "base_recipe": dict(base_recipe),
    }


# Card fields that say how a network is run and read rather than what it is: a soup released
# "with vN's reading" takes them from vN (training.text_stage writes the same fields).
READING_FIELDS = ("text_rescoring", "input_margin", "second_view", "tile_view", "panel_view")


def with_reading(card: dict, reading_card: dict, reading_from: str) -> dict:
    """``card`` run and read as ``reading_card``'s version is; the recipe says where that came from."""
    reading = {key: reading_card[key] for key in READING_FIELDS if key in reading_card}
    network = {key: value for key, value in card.items() if key not in READING_FIELDS}
    return network | reading | {"recipe": {**card.get("recipe", {}), "text_rescoring_from": reading_from}}


def register_soup(
    registry: Registry,
    base_version: str,
    sources: Sequence[str],
    weights: list[float],
    state_dir: Path,
    reading_from: str | None = None,
) -> dict:
    """Release the soup as a new version (parent: the champion) and return its card.

    With ``reading_from``, the soup is read and looked at as that version is (its text
    rescoring, input margin and second view), so it is compared with a champion that reads.
    """
    reading_card = registry.card(reading_from) if reading_from else {}  # a typo is named before any work
    paths = [resolve_source(registry, source) for source in sources]
    card = registry.card(base_version)
    data = default_data(state_dir)
    with tempfile.TemporaryDirectory(prefix="wmstudio-soup-") as scratch:
        soup = average_checkpoints(paths, weights, Path(scratch) / "model.pt")
        recipe = soup_recipe(base_version, card["recipe"], sources, weights)
        version = register_model(
            registry,
            soup,
            card["classes"],
            int(card["imgsz"]),
            float(card["threshold"]),
            data.real.version() + "+" + data.synthetic.version(),
            recipe,
            parent=registry.champion(),
        )
    if reading_from:
        registry.write_card(version, with_reading(registry.card(version), reading_card, reading_from))
    calibrate_and_evaluate(registry, version, data)
    tracking.log_release(registry, version)  # a release like any other: a run and a registered model version
    return registry.card(version)


def print_rows(rows: list[tuple[str, SizeTrial]]) -> None:
    brands = list(rows[0][1].ap50)
    print("validation: synthetic AP50 per brand; F1 and other-agency FP at the release's threshold")
    width = max(len(name) for name, _ in rows)
    print(f"{'network':>{width}} " + " ".join(f"{b:>9}" for b in brands) + f" {'thr':>5} {'F1':>6} {'other FP':>8}")
    for name, trial in rows:
        aps = " ".join(f"{trial.ap50[b]:9.3f}" for b in brands)
        print(f"{name:>{width}} {aps} {trial.threshold:5.2f} {trial.f1:6.3f} {trial.other_fp:8.1%}")


@exit_on_user_error
def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sources", nargs="+", help="registered versions or .pt files (same architecture)")
    parser.add_argument("--weights", type=float, nargs="+", help="mixing weights (default: uniform)")
    parser.add_argument("--register", action="store_true", help="release the soup as a new version")
    parser.add_argument("--reading-from", default=None, help="with --register: read candidates as this version does")
    args = parser.parse_args(argv)
    if len(args.sources) < 2:
        parser.error("a soup needs at least two sources")
    try:
        weights = normalised(args.weights, len(args.sources))
    except ValueError as exc:
        parser.error(str(exc))
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    settings = get_settings()
    registry = Registry.from_settings(settings)
    base_version = next((s for s in args.sources if not s.endswith(".pt")), None) or registry.champion()
    if args.register:
        card = register_soup(registry, base_version, args.sources, weights, settings.state_dir, args.reading_from)
        print(f"registered {card['version']}: threshold {card['threshold']}, test metrics {card['metrics']}")
        return
    print_rows(compare_soup(registry, base_version, args.sources, weights, settings.datasets_dir))


if __name__ == "__main__":
    main()
