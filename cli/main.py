"""``wmstudio``: the command line of Watermark Studio.

Heavy imports (torch, ultralytics) happen inside the commands that need them, so
``wmstudio predict`` and ``wmstudio serve`` start fast on a torch-free serving image.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from wmstudio.offline import apply_offline_env
from wmstudio.settings import get_settings

app = typer.Typer(help="Find Rumah123 and 99.co watermarks in listing photos.", no_args_is_help=True)
models_app = typer.Typer(help="List, promote, reject and roll back model versions.", no_args_is_help=True)
app.add_typer(models_app, name="models")
console = Console(stderr=True)


def _setup() -> None:
    settings = get_settings()
    apply_offline_env(settings.state_dir)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _fail(message: str, code: int = 2) -> None:
    console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code)


@app.command()
def ingest(
    source: Annotated[Path, typer.Argument(help="Folder or label file to ingest.")],
    name: Annotated[
        str | None,
        typer.Option(
            help="Dataset name (folder under the state dir; default: the dataset of this source, else 'default')."
        ),
    ] = None,
    extend: Annotated[
        bool, typer.Option("--extend", help="Add to the named dataset even though it holds other sources.")
    ] = False,
    fmt: Annotated[str | None, typer.Option("--format", help="folders|csv|coco|yolo|labelstudio")] = None,
    default_brand: Annotated[str, typer.Option(help="Brand for a plain 'watermark/' folder.")] = "rumah123",
    as_json: Annotated[bool, typer.Option("--json", help="Print the ingest report as JSON.")] = False,
) -> None:
    """Ingest photos and labels into a canonical dataset manifest (idempotent)."""
    _setup()
    from dataclasses import asdict

    from wmstudio.data.identity import DatasetIdentityError, dataset_for_source
    from wmstudio.data.ingest import IngestError
    from wmstudio.data.ingest import ingest as run_ingest

    settings = get_settings()
    try:
        name = dataset_for_source(
            settings.datasets_dir, source, name, "default", extend, hint="--name NEW (or --extend)"
        )
        manifest, report = run_ingest(
            source, settings.datasets_dir / name, fmt, name, settings.max_image_pixels, default_brand=default_brand
        )
    except (IngestError, DatasetIdentityError) as exc:
        _fail(str(exc))
    if as_json:
        print(json.dumps(asdict(report), indent=1))
        return
    console.print(
        f"[bold]{name}[/bold]: {report.added} added, {report.already_present} already present, "
        f"{len(report.skipped)} skipped, {len(report.normalised)} normalised, "
        f"{len(report.box_issues)} box issues, {report.exact_copies} byte-identical copies (paths kept), "
        f"{len(report.label_conflicts)} label conflicts; {len(manifest.items)} images in total"
    )
    for skipped in report.skipped:
        console.print(f"  skipped {skipped['file']}: {skipped['code']} ({skipped['reason']})")
    for conflict in report.label_conflicts:
        labels = ", ".join(f"{f['file']}={f['label']}" for f in conflict["files"])
        console.print(
            f"  [yellow]label conflict[/yellow] (all labels kept; `wmstudio curate duplicates` flags it): {labels}"
        )


@app.command()
def eda(
    name: Annotated[str, typer.Option(help="Dataset name.")] = "default",
    out: Annotated[Path | None, typer.Option(help="Output folder for eda.json and PNGs.")] = None,
) -> None:
    """Class balance, sizes, box statistics and duplicates: JSON plus PNG plots."""
    _setup()
    from training.eda import run_eda
    from wmstudio.data.manifest import Manifest

    settings = get_settings()
    folder = settings.datasets_dir / name
    if not (folder / "manifest.json").exists():
        _fail(f"no dataset {name!r}: run `wmstudio ingest PATH --name {name}` first")
    summary = run_eda(Manifest.load(folder), folder, out or folder / "eda")
    print(json.dumps({k: v for k, v in summary.items() if k != "plots"}, indent=1))


@app.command()
def synth(
    out: Annotated[Path, typer.Option(help="Output dataset folder.")] = Path(".wmstudio/datasets/synthetic"),
    backgrounds: Annotated[Path | None, typer.Option(help="Clean photos (default: data_dir/houses).")] = None,
    real: Annotated[str | None, typer.Option(help="Ingested real dataset for the template.")] = "listings",
    train_count: int = 1000,
    val_count: int = 150,
    test_count: int = 300,
    seed: int = 0,
) -> None:
    """Composite Rumah123/99.co marks and hard negatives onto clean photos, with exact boxes."""
    _setup()
    from training.build import build_synthetic
    from wmstudio.data.manifest import Manifest

    settings = get_settings()
    houses = backgrounds or settings.data_dir / "houses"
    real_dir = settings.datasets_dir / real if real else None
    real_manifest = Manifest.load(real_dir) if real_dir and (real_dir / "manifest.json").exists() else None
    if not houses.is_dir() and real_manifest is None:
        _fail(f"no backgrounds: {houses} does not exist and no real dataset was given")
    manifest = build_synthetic(
        out,
        houses if houses.is_dir() else None,
        real_manifest,
        real_dir,
        {"train": train_count, "val": val_count, "test": test_count},
        seed,
    )
    console.print(f"wrote {len(manifest.items)} synthetic images to {out}")


@app.command()
def train(
    hours: Annotated[float, typer.Option(help="Wall-clock budget in hours (0: use --epochs).")] = 1.5,
    epochs: int = 40,
    imgsz: int = 320,
    model: Annotated[str, typer.Option(help="Ultralytics model YAML (from scratch).")] = "yolo11n.yaml",
    augmentation: Annotated[str, typer.Option(help="light|default|strong")] = "default",
    warm_start: Annotated[str | None, typer.Option(help="'champion' or a .pt path to start from.")] = None,
    synth_train: int = 1100,
    seed: int = 0,
    glyph_variation: Annotated[
        bool, typer.Option(help="Vary train marks' stroke weight, slant and width (off: the ablation).")
    ] = True,
    lookalike_negatives: Annotated[
        bool,
        typer.Option(help="Keep train hard negatives that end like the long brand wordmarks (off: the ablation)."),
    ] = True,
    mosaic: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Probability of a 4-photo mosaic per training sample.")
    ] = 1.0,
    real_positive_repeats: Annotated[
        int, typer.Option(min=1, help="Times each real train photo with a mark appears per epoch.")
    ] = 6,
    run_name: Annotated[str | None, typer.Option(help="Run folder name (reuse with --resume).")] = None,
    resume: Annotated[bool, typer.Option(help="Resume an interrupted run.")] = False,
    register: Annotated[bool, typer.Option(help="Export, evaluate and register the result.")] = True,
    threads: Annotated[
        int | None,
        typer.Option(help="Torch CPU threads (default: Ultralytics' cores - 1); all cores only on an idle machine."),
    ] = None,
) -> None:
    """Build the default data, train the detector, then export, evaluate and register it."""
    _setup()
    from training.build import DEFAULT_SYNTH_COUNTS
    from training.pipeline import prepare_default_data
    from training.release import release_model
    from training.synth.compose import SynthConfig
    from training.train import TrainRecipe
    from training.train import train as run_train
    from training.warm_start import start_weights
    from wmstudio import tracking
    from wmstudio.registry import Registry, RegistryError

    settings = get_settings()
    registry = Registry.from_settings(settings)
    start, start_version = None, None
    if warm_start == "champion":
        start_version = registry.champion()
        if start_version is None:
            _fail("--warm-start champion: the registry has no champion yet (train without --warm-start first)")
    elif warm_start:
        if not Path(warm_start).is_file():
            _fail(f"--warm-start {warm_start}: no such weights file (give 'champion' or a .pt path)")
        start = warm_start
    counts = {**DEFAULT_SYNTH_COUNTS, "train": synth_train}  # val and test stay fixed: comparable across runs
    synth = SynthConfig(vary_glyphs=glyph_variation, lookalike_negatives=lookalike_negatives)
    data = prepare_default_data(settings.data_dir, settings.state_dir, counts, seed, synth, real_positive_repeats)
    if start_version is not None:
        try:  # its model.pt, its MLflow copy, or rebuilt from the bundled ONNX file
            start = str(start_weights(registry, start_version, data, settings))
        except (RegistryError, ValueError) as exc:
            _fail(str(exc))
    recipe = TrainRecipe(
        model=model,
        imgsz=imgsz,
        epochs=epochs,
        time_hours=hours or None,
        augmentation=augmentation,
        seed=seed,
        warm_start=start,
        synth=synth,
        mosaic=mosaic,
        threads=threads,
    )
    run_dir = settings.runs_dir / (run_name or f"train-s{seed}")
    recorded = recipe.to_dict() | {"real_positive_repeats": real_positive_repeats}
    data_version = data.real.version() + "+" + data.synthetic.version()
    with tracking.run(run_dir.name, "train", settings, {"data_version": data_version}):
        tracking.log_params(recorded | {"data_version": data_version, "resume": resume})
        best = run_train(data.data_yaml, run_dir, recipe, resume=resume)
        tracking.log_training(run_dir)
        if register:
            version = release_model(registry, best, data, recorded, parent=registry.champion() if start else None)
            console.print(f"registered {version}; promote it with `wmstudio models promote {version}`")


@app.command()
def evaluate(
    version: Annotated[str | None, typer.Option(help="Model version (default: champion).")] = None,
    split: Annotated[str, typer.Option(help="val (for choices) or test (reported once per release).")] = "test",
    out: Annotated[Path | None, typer.Option(help="Folder for JSON, Markdown and plots.")] = None,
    variants: Annotated[
        list[str] | None, typer.Option("--variant", help="Only these robustness variants (repeatable).")
    ] = None,
) -> None:
    """Score a version on every robustness variant of the real and synthetic split at its threshold."""
    _setup()
    from training.release import evaluate_version
    from training.robustness import VARIANTS
    from training.robustness_eval import format_table
    from wmstudio import tracking
    from wmstudio.registry import Registry, RegistryError

    settings = get_settings()
    registry = Registry.from_settings(settings)
    version = version or registry.champion()
    if version is None:
        _fail("no model in the registry")
    unknown = sorted(set(variants or ()) - set(VARIANTS))
    if unknown:
        _fail(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    if split not in ("train", "val", "test"):
        _fail(f"unknown split {split!r}; choose from train, val, test")
    chosen = tuple(v for v in VARIANTS if not variants or v in variants)
    try:
        report = evaluate_version(registry, version, settings.state_dir, split, out, variants=chosen)
    except (RegistryError, FileNotFoundError) as exc:
        _fail(str(exc))
    tracking.log_evaluation(version, report, out or registry.path(version) / "evaluation", settings)
    Console().print(format_table(report))
    Console().print_json(data={k: v for k, v in report["metrics"].items()})


@app.command()
def predict(
    paths: Annotated[list[Path], typer.Argument(help="Images to check.")],
    min_score: Annotated[float | None, typer.Option(help="Score cut-off (default: the model's threshold).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    version: Annotated[str | None, typer.Option(help="Model version (default: champion).")] = None,
) -> None:
    """Detect watermarks in images; boxes are in original image pixels."""
    from wmstudio.imaging import ImageError, decode_image
    from wmstudio.predict import prediction_record
    from wmstudio.registry import Registry, RegistryError
    from wmstudio.runtime import Detector

    settings = get_settings()
    try:
        detector = Detector.from_registry(Registry.from_settings(settings), version, settings.inference_threads)
    except RegistryError as exc:
        _fail(str(exc))
    failures = 0
    for path in paths:
        try:
            decoded = decode_image(path, settings.max_image_pixels)
        except ImageError as exc:
            failures += 1
            record = {"file": str(path), "error": {"code": exc.code, "message": exc.message}}
        else:
            record = {"file": str(path), **prediction_record(detector, decoded, min_score)}
        if as_json:
            print(json.dumps(record))
        elif "error" in record:
            console.print(f"{path}: [red]{record['error']['message']}[/red]")
        else:
            found = ", ".join(f"{d['brand']} {d['score']:.2f} at {d['box']}" for d in record["detections"])
            print(f"{path}: {'WATERMARKED ' + found if record['watermarked'] else 'clean'}")
    if failures:
        raise typer.Exit(1)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address.")] = None,
    port: Annotated[int | None, typer.Option(help="Port.")] = None,
) -> None:
    """Start the detection API (uvicorn); beyond loopback it refuses to run without API keys."""
    import uvicorn

    from api.main import create_app
    from wmstudio.exposure import InsecureDeployment

    settings = get_settings()
    apply_offline_env(settings.state_dir)
    bind = host or settings.api_host
    try:  # the app is built for the address really bound, so the exposure check sees it
        api = create_app(settings.model_copy(update={"api_host": bind}))
    except InsecureDeployment as exc:
        _fail(str(exc))
    uvicorn.run(api, host=bind, port=port or settings.api_port, log_level="info")


@models_app.command("list")
def models_list() -> None:
    """Versions with their threshold and headline metrics, and the data those were measured on.

    Synthetic evaluation photos are drawn with the machine's fonts, so figures compare only
    between rows measured on the same data (the gate re-measures otherwise).
    """
    from wmstudio.gate import EVALUATION_DATA
    from wmstudio.registry import Registry

    registry = Registry.from_settings(get_settings())
    champion = registry.champion()
    table = Table(
        "version", "champion", "threshold", "trained on", "measured on", "validation F1", "test F1",
        caption="figures compare only between rows measured on the same data",
    )  # fmt: skip
    for version in registry.versions():
        card = registry.card(version)
        metrics = card.get("metrics", {})
        table.add_row(
            version,
            "*" if version == champion else "",
            str(card.get("threshold")),
            str(card.get("data_version")),
            str(card.get(EVALUATION_DATA, "unrecorded")),
            str(metrics.get("val_f1", "")),
            str(metrics.get("test_f1", "")),
        )
    Console(width=200).print(table)


@models_app.command("promote")
def models_promote(
    version: str,
    reason: str = "manual promotion",
    force: Annotated[bool, typer.Option(help="Promote even if the validation gate fails (recorded).")] = False,
) -> None:
    """Make a version the champion (the API hot-reloads it) if it passes the validation gate."""
    from training.release import champion_on_challenger_data
    from wmstudio.gate import GateConfig, GateFailed, gated_promote
    from wmstudio.mlflow_registry import tracked_registry
    from wmstudio.registry import RegistryError

    settings = get_settings()
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # a re-measure says so, with progress
    try:
        registry = tracked_registry(settings)
        out_dir = settings.state_dir / "gate" / f"{registry.champion()}-for-{version}"
        champion_metrics = champion_on_challenger_data(registry, version, settings.state_dir, out_dir)
        config = GateConfig.from_settings(settings)
        gated_promote(registry, version, reason, config, force, champion_metrics)
    except GateFailed as exc:
        _fail(f"{exc}. Pass --force to promote it anyway.")
    except RegistryError as exc:
        _fail(str(exc))
    console.print(f"{version} is now the champion")


def _move_version(action: str, version: str, reason: str) -> Path:
    """Reject or restore: both move a version between the registry and ``<state dir>/rejected``."""
    from wmstudio.mlflow_registry import tracked_registry
    from wmstudio.registry import RegistryError

    settings = get_settings()
    try:
        return getattr(tracked_registry(settings), action)(version, settings.state_dir / "rejected", reason)
    except RegistryError as exc:
        _fail(str(exc))


@models_app.command("reject")
def models_reject(
    version: str,
    reason: Annotated[str, typer.Option(help="Why it lost (kept in the registry history).")] = "rejected",
) -> None:
    """Move a losing challenger out of the registry (to the state dir); its number is never reused."""
    console.print(f"{version} moved to {_move_version('reject', version, reason)}")


@models_app.command("restore")
def models_restore(
    version: str,
    reason: Annotated[str, typer.Option(help="Why it deserves a new hearing (kept in the history).")] = "restored",
) -> None:
    """Bring a rejected version back into the registry (not as champion); it keeps its number."""
    console.print(f"{version} restored to {_move_version('restore', version, reason)}")


@models_app.command("rollback")
def models_rollback(reason: str = "manual rollback") -> None:
    """Return to the previous champion."""
    from wmstudio.mlflow_registry import tracked_registry
    from wmstudio.registry import RegistryError

    try:
        version = tracked_registry(get_settings()).rollback(reason)
    except RegistryError as exc:
        _fail(str(exc))
    console.print(f"rolled back to {version}")


@models_app.command("history")
def models_history() -> None:
    """Every version ever registered: figures and the last decision (models/history.json + registry)."""
    from wmstudio.model_history import build_history, read_history
    from wmstudio.registry import HISTORY_FILE, Registry

    settings = get_settings()
    registry = Registry.from_settings(settings)
    bundled = settings.bundled_models_dir / HISTORY_FILE
    entries = build_history(registry, read_history(bundled if bundled.exists() else registry.root / HISTORY_FILE))
    table = Table("version", "created", "parent", "threshold", "val F1", "decision", "reason")
    for entry in entries:
        metrics = entry.get("metrics") or {}
        table.add_row(
            entry["version"] + (" *" if entry.get("champion") else ""),
            str(entry.get("created", ""))[:10],
            str(entry.get("parent") or ""),
            str(entry.get("threshold", "")),
            str(entry.get("validation_f1", metrics.get("val_f1", ""))),
            str(entry.get("decision", "")),
            str(entry.get("reason", ""))[:80],
        )
    Console().print(table)


@models_app.command("bundle")
def models_bundle(
    to: Annotated[Path | None, typer.Option(help="Folder to write (default: bundled_models_dir, models/).")] = None,
) -> None:
    """Ship the champion: copy it (ONNX, card, evaluation; no .pt) into models/, drop the other versions
    there and merge every version's figures into models/history.json. Commit the result."""
    from wmstudio.model_history import bundle
    from wmstudio.registry import Registry, RegistryError

    settings = get_settings()
    target = to or settings.bundled_models_dir
    try:
        champion = bundle(Registry.from_settings(settings), target)
    except RegistryError as exc:
        _fail(str(exc))
    console.print(f"{target} now holds {champion} (served files only) and history.json")


@models_app.command("sync-mlflow")
def models_sync_mlflow() -> None:
    """Backfill MLflow: register versions it lacks, one run per history.json entry, the champion alias."""
    _setup()
    from wmstudio.mlflow_registry import sync
    from wmstudio.registry import RegistryError

    settings = get_settings()
    try:
        summary = sync(settings)
    except RegistryError as exc:
        _fail(str(exc))
    print(json.dumps(summary | {"tracking_uri": settings.resolved_mlflow_tracking_uri}, indent=1))


# Command groups that live beside their code: each module exposes a light ``app`` (typer)
# whose heavy imports happen inside its commands. Missing modules are simply not offered.
PLUGIN_GROUPS = {
    "curate": "curation.cli",  # wmstudio curate duplicates|labels|decide
    "queue": "curation.queue_cli",  # wmstudio queue build|push|pull
    "store": "wmstudio.store.cli",  # wmstudio store upgrade|status
}
PLUGIN_COMMANDS = {
    "scan": ("wmstudio.scan", "scan_command"),  # wmstudio scan MANIFEST --shard i/n
    "scan-merge": ("wmstudio.scan", "merge_command"),
    "loop": ("pipelines.loop", "loop_command"),
}


def _import_optional(module_name: str):
    """The module, or None when it (not one of its own imports) is absent."""
    import importlib

    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            return None
        raise


def _register_plugins() -> None:
    for name, module_name in PLUGIN_GROUPS.items():
        if (module := _import_optional(module_name)) is not None:
            app.add_typer(module.app, name=name)
    for name, (module_name, attribute) in PLUGIN_COMMANDS.items():
        if (module := _import_optional(module_name)) is not None:
            app.command(name)(getattr(module, attribute))


_register_plugins()


def main() -> None:  # pragma: no cover - console entry point
    app(sys.argv[1:])


if __name__ == "__main__":  # pragma: no cover
    main()
