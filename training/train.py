"""Train the YOLO detector from scratch (or warm-start from the project's own earlier model).

No pretrained weights can be fetched on these machines, so the network starts from a model
YAML. Retraining and adding a brand warm-start from the previous version's ``.pt``: layers whose
shapes match are loaded, a head with a new class count is re-initialised, nothing is lost.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

from training.synth.compose import SynthConfig
from wmstudio import tracking
from wmstudio.offline import apply_offline_env

log = logging.getLogger(__name__)


@dataclass
class TrainRecipe:
    """Every knob of a training run; stored in the model card."""

    model: str = "yolo11n.yaml"
    imgsz: int = 320
    epochs: int = 40
    time_hours: float | None = 1.5  # wall-clock budget; Ultralytics fits the LR schedule to it
    batch: int = 16
    augmentation: str = "default"
    seed: int = 0
    patience: int = 100
    lr0: float = 0.01
    cos_lr: bool = False
    mosaic: float = 1.0  # probability of a 4-photo mosaic per training sample
    close_mosaic: int = 3
    warm_start: str | None = None  # path of an earlier best.pt
    fine_tune_lr: float = 5e-4  # AdamW learning rate used instead of lr0 when warm-starting
    synth: SynthConfig = field(default_factory=SynthConfig)  # data, not YOLO arguments: how the set was drawn
    threads: int | None = None  # torch CPU threads; None keeps Ultralytics' choice (cores - 1)
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def _use_threads(threads: int | None) -> None:
    """Override Ultralytics' CPU thread count (``cpu_count - 1``, i.e. 1 on 2 cores).

    Measured on this 2-core machine: with other work on it, 2 threads ran 3x *slower* than 1
    (OpenMP threads stall waiting for each other when one is descheduled); with the machine
    left to training, 2 threads ran about 3.0 s per batch of 16 at 384 px against 4.8 s with
    1. So the default keeps Ultralytics' choice and ``wmstudio train --threads 2`` is for an
    idle machine.
    """
    if threads is None:
        return
    import ultralytics.utils.torch_utils as torch_utils

    torch_utils.NUM_THREADS = threads


def base_model(recipe: TrainRecipe):
    """The network to train: a fresh one from the YAML, or the earlier model itself.

    A warm start loads the checkpoint directly. ``YOLO(yaml).load(pt)`` would first build the
    YAML's 80-class head and then skip the checkpoint's class layers as mismatched, silently
    re-initialising the classifier. Started from the checkpoint, every layer is kept, and
    only a head whose class count changes (a new brand) is re-initialised by the trainer.
    """
    from ultralytics import YOLO

    if recipe.warm_start:
        log.info("warm start from %s", recipe.warm_start)
        return YOLO(recipe.warm_start)
    return YOLO(recipe.model)


def fine_tune_hyperparameters(recipe: TrainRecipe) -> dict:
    """Optimiser settings for a warm start, so that it refines the weights instead of wrecking them.

    Ultralytics' ``optimizer=auto`` picks AdamW at ~1.7e-3 with three warmup epochs and a
    raised bias learning rate for runs this short: right from scratch, but a restart at full
    rate throws away part of what the earlier model learned before it can be refined. A
    third of that rate, one warmup epoch, no raised bias rate and a cosine decay keep the
    first updates small and spend the budget on refinement.
    """
    if not recipe.warm_start:
        return {}
    return {
        "optimizer": "AdamW",
        "lr0": recipe.fine_tune_lr,
        "warmup_epochs": 1.0,
        "warmup_bias_lr": 0.0,
        "cos_lr": True,
    }


def _own_tracking() -> None:
    """Turn Ultralytics' MLflow integration off: with mlflow installed it would open runs of its own
    (named after the run folder, ``mlflow.autolog()`` on, no run under pytest); ours is
    :func:`_track_epochs` logging into the ``wmstudio train`` run, the same in tests and for real."""
    from ultralytics.utils import SETTINGS

    if SETTINGS.get("mlflow") is not False:
        SETTINGS.update({"mlflow": False})


def _track_epochs(trainer) -> None:
    """Per-epoch losses, validation precision/recall/mAP and learning rates into the current MLflow run."""
    metrics = dict(getattr(trainer, "metrics", None) or {}) | dict(getattr(trainer, "lr", None) or {})
    if getattr(trainer, "tloss", None) is not None:
        metrics |= trainer.label_loss_items(trainer.tloss, prefix="train")
    tracking.log_epoch(int(trainer.epoch), {key: float(value) for key, value in metrics.items()})


def train(data_yaml: Path, run_dir: Path, recipe: TrainRecipe, resume: bool = False) -> Path:
    """Run (or resume) training; returns the path of the best checkpoint."""
    apply_offline_env()
    from ultralytics import YOLO

    from training.augment import geometric_hyperparameters, photometric_transforms

    _use_threads(recipe.threads)
    _own_tracking()
    last = run_dir / "weights" / "last.pt"
    if resume and last.exists():
        log.info("resuming from %s", last)
        overrides = {"time": recipe.time_hours} if recipe.time_hours else {}
        resumed = YOLO(str(last))
        resumed.add_callback("on_fit_epoch_end", _track_epochs)
        resumed.train(resume=True, **overrides)
        return run_dir / "weights" / "best.pt"
    model = base_model(recipe)
    model.add_callback("on_fit_epoch_end", _track_epochs)
    kwargs = {
        "data": str(data_yaml),
        "imgsz": recipe.imgsz,
        "epochs": recipe.epochs,
        "batch": recipe.batch,
        "seed": recipe.seed,
        "patience": recipe.patience,
        "lr0": recipe.lr0,
        "cos_lr": recipe.cos_lr,
        "mosaic": recipe.mosaic,
        "close_mosaic": recipe.close_mosaic,
        "device": "cpu",
        "workers": 0,
        "project": str(run_dir.parent.resolve()),
        "name": run_dir.name,
        "exist_ok": True,
        # False would make the trainer rebuild the network from its YAML and drop the weights
        # of a warm start; True keeps the loaded checkpoint (nothing is ever downloaded).
        "pretrained": bool(recipe.warm_start),
        "amp": False,
        "plots": True,
        "verbose": True,
        "augmentations": photometric_transforms(recipe.augmentation),
        **geometric_hyperparameters(recipe.augmentation),
        **fine_tune_hyperparameters(recipe),
        **recipe.extra,
    }
    if recipe.time_hours:
        kwargs["time"] = recipe.time_hours
    if recipe.warm_start:
        start_state = {name: tensor.detach().clone() for name, tensor in model.model.state_dict().items()}
        model.add_callback("on_train_start", _warm_start_check(start_state))
    model.train(**kwargs)
    return run_dir / "weights" / "best.pt"


def _warm_start_check(start_state: dict):
    """A trainer callback that logs how much of the warm start the trainer actually kept.

    Ultralytics silently rebuilds the network from its YAML when ``pretrained`` is off, and
    a "fine-tune" then starts from random weights; this makes that visible (and testable).
    """

    def check(trainer) -> None:
        import torch

        state = trainer.model.state_dict()
        same = sum(
            1
            for name, tensor in start_state.items()
            if name in state and state[name].shape == tensor.shape and torch.equal(state[name].float(), tensor.float())
        )
        share = same / max(1, len(start_state))
        log.info("warm start: %d of %d tensors carried over (%.0f%%)", same, len(start_state), 100 * share)
        if share < 0.5:
            log.warning("warm start kept under half of the earlier model: the run is close to from-scratch")

    return check
