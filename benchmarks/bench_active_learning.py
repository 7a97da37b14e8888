"""Simulated active learning: uncertainty queue vs random sampling on the same label budget.

Annotations come from held-out ground truth (the synthetic set's exact labels plus the real
listings' labels): "labelling" an image reveals its label. Both strategies start from the same
seed set and receive the same number of labels per round; the learner is refit after each round
and scored on the fixed test split.

The learner, and why it is not YOLO: retraining the detector per round and per strategy and per
repeat is hours of CPU on the 2 shared cores this runs on. The simulation therefore keeps the
detector *frozen* (the registry's champion) and refits a cheap learner on top of its outputs: a
multinomial logistic regression (none / rumah123 / 99co) on per-image features:

* the detector's per-brand image scores on the photo and on its two TTA views (6),
* geometry of the top candidate (centre x/y, width, height, relative to the image) (4),
* the number of candidates above 0.1 (1).

Image descriptors (a grey thumbnail of the centre band, edge and white-pixel grids) were part of
the first version; with the v2 detector they cost the learner 0.10 of final F1 (0.617 against
0.716 at 130 random labels: 99 features for 130 labels is mostly noise), so they were dropped.

This is the "calibrator on top of the detector" that a real loop also improves between YOLO
retrains, and it exercises the same queue logic: the uncertainty strategy ranks the unlabelled
pool with ``curation.uncertainty.combine`` (near-threshold + brand margin + TTA disagreement,
here on the learner's probabilities and on its predictions for the TTA views' features),
``rank_diverse`` (dHash near-copy demotion) and ``diverse_batches`` (one pick per k-means
cluster of the best-ranked photos, on the same per-image features), as ``wmstudio queue build``
does.

    .venv/bin/python benchmarks/bench_active_learning.py [--repeats 20 --rounds 12 --batch 10 --seed-size 10]
        [--pool fresh|train] [--pool-seed 101]

The pool holds photos the detector never trained on (``--pool fresh``, see ``fresh_pool``);
``--pool train`` reproduces the first measurement, which wrongly pooled its training images.

Prints the learning curves, the share of labels uncertainty needs to reach random's final F1,
and saves ``docs/active_learning.png``. Features are cached in ``state_dir/bench``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CLASSES = ("none", "rumah123", "99co")
FEATURES = "f3"  # bump when the feature set changes (cache key)


def extract_features(detector, items: list, cache: Path) -> dict:
    """Detector outputs and simple image features per item (cached by model version + item list)."""
    from curation.uncertainty import augmented_views, dhash
    from wmstudio.imaging import decode_image

    # Items are named by their image's sha256 and labels can be corrected: ids plus boxes cover both.
    content = "".join(f"{i.sha256}:{[b.box for b in i.boxes]};" for i, _ in items)
    fingerprint = hashlib.sha256(content.encode()).hexdigest()[:10]
    key = f"{FEATURES}-{detector.version}-{len(items)}-{fingerprint}"
    path = cache / f"al_features_{key}.npz"
    if path.exists():
        data = np.load(path)
        return {k: data[k] for k in data.files}
    base, views, geometry, counts, hashes, labels = [], [], [], [], [], []
    start = time.perf_counter()
    for index, (item, root) in enumerate(items):
        image = decode_image(root / item.path, draft_size=detector.decode_size).image
        prediction = detector.predict(image)
        scores = prediction.brand_scores()
        base.append([scores.get(b, 0.0) for b in CLASSES[1:]])
        view_scores = []
        for view in augmented_views(image):
            found = detector.predict(view).brand_scores()
            view_scores.append([found.get(b, 0.0) for b in CLASSES[1:]])
        views.append(view_scores)
        top = max(prediction.candidates, key=lambda d: d.score, default=None)
        if top is None:
            geometry.append([0.0, 0.0, 0.0, 0.0])
        else:
            x0, y0, x1, y1 = top.box
            w, h = prediction.width, prediction.height
            geometry.append([(x0 + x1) / 2 / w, (y0 + y1) / 2 / h, (x1 - x0) / w, (y1 - y0) / h])
        counts.append(sum(d.score >= 0.1 for d in prediction.candidates))
        hashes.append(dhash(image))
        labels.append(CLASSES.index(item.brand or "none"))
        if index % 200 == 0:
            print(f"  features {index}/{len(items)} ({time.perf_counter() - start:.0f}s)", flush=True)
    data = {
        "base": np.array(base),
        "views": np.array(views),
        "geometry": np.array(geometry),
        "counts": np.array(counts, dtype=float),
        "hashes": np.array(hashes, dtype=np.uint64),
        "labels": np.array(labels),
    }
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, **data)
    return data


def design(data: dict, scores: np.ndarray | None = None) -> np.ndarray:
    """Feature matrix; ``scores`` swaps the base-view detector scores (to predict a TTA view)."""
    views = data["views"].reshape(len(data["labels"]), -1)
    base = data["base"] if scores is None else scores
    return np.hstack([base, views, data["geometry"], data["counts"][:, None] / 10.0])


def fit(x: np.ndarray, y: np.ndarray):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000)).fit(x, y)


def micro_f1(truth: np.ndarray, predicted: np.ndarray) -> float:
    """Image-level micro F1 over the brands (as ``training.evaluate.image_f1_at``)."""
    tp = sum(int(((truth == c) & (predicted == c)).sum()) for c in (1, 2))
    fp = sum(int(((truth != c) & (predicted == c)).sum()) for c in (1, 2))
    fn = sum(int(((truth == c) & (predicted != c)).sum()) for c in (1, 2))
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def probabilities(model, x: np.ndarray) -> np.ndarray:
    """Probabilities for all three classes even when a class is missing from the labels so far."""
    out = np.zeros((len(x), len(CLASSES)))
    out[:, model.classes_] = model.predict_proba(x)
    return out


def uncertainty_order(model, pool: dict, candidates: np.ndarray, labelled: np.ndarray, batch: int) -> np.ndarray:
    """Rank candidates with the project's documented score and diversity ranking (as ``queue build``)."""
    from curation.uncertainty import combine, diverse_batches, rank_diverse
    from wmstudio.runtime import Detection, Prediction

    def as_prediction(p: np.ndarray) -> Prediction:
        return Prediction(1, 1, tuple(Detection(b, float(p[i + 1]), (0, 0, 1, 1)) for i, b in enumerate(CLASSES[1:])))

    x = design(pool)[candidates]
    base = probabilities(model, x)
    views = [probabilities(model, design(pool, pool["views"][:, v])[candidates]) for v in range(pool["views"].shape[1])]
    entries = []
    for row, index in enumerate(candidates):
        u = combine(as_prediction(base[row]), [as_prediction(v[row]) for v in views], list(CLASSES[1:]), 0.5)
        entries.append((str(index), u, int(pool["hashes"][index])))
    known = [(str(i), int(pool["hashes"][i])) for i in labelled]
    features = {str(index): row for index, row in zip(candidates, x, strict=True)}
    ranked = diverse_batches(rank_diverse(entries, 10, known), features, batch, batches=1)
    return np.array([int(r.key) for r in ranked])


def simulate(pool: dict, test: dict, strategy: str, seed: int, seed_size: int, batch: int, rounds: int) -> list:
    rng = np.random.default_rng(seed)
    y = pool["labels"]
    # Same seed set for both strategies: one of each class, then random.
    first = [int(rng.choice(np.flatnonzero(y == c))) for c in range(len(CLASSES))]
    rest = [i for i in rng.permutation(len(y)) if i not in first]
    labelled = np.array(first + rest[: seed_size - len(first)])
    x_pool, x_test = design(pool), design(test)
    strategy_rng = np.random.default_rng(seed + 1000)
    curve = []
    for round_index in range(rounds + 1):
        model = fit(x_pool[labelled], y[labelled])
        curve.append((len(labelled), micro_f1(test["labels"], model.predict(x_test))))
        if round_index == rounds:
            break
        candidates = np.setdiff1d(np.arange(len(y)), labelled)
        if strategy == "random":
            chosen = strategy_rng.choice(candidates, batch, replace=False)
        else:
            chosen = uncertainty_order(model, pool, candidates, labelled, batch)[:batch]
        labelled = np.concatenate([labelled, chosen])
    return curve


def fresh_pool(settings, count: int, seed: int) -> list:
    """Unlabelled-pool stand-ins the frozen detector never trained on.

    A real queue scores *new* uploads. The detector's own training images are the wrong pool:
    its scores there are in-sample (confident and clean), while the test photos get
    out-of-sample scores, so a learner fitted on pool features meets a different distribution
    at test time, and "uncertain" in-sample photos are merely odd ones. The fresh pool is the
    training generator re-run with a seed no release of the champion's lineage trained on (new
    marks, placements and opacities on the training houses) plus the real validation photos,
    which no model was fitted on.
    """
    from training.build import build_synthetic
    from wmstudio.data.manifest import Manifest

    listings = settings.datasets_dir / "listings"
    real = Manifest.load(listings) if (listings / "manifest.json").exists() else None
    folder = settings.datasets_dir / f"al-pool-s{seed}"
    houses = settings.data_dir / "houses"
    manifest = build_synthetic(folder, houses, real, listings if real else None, {"train": count}, seed=seed)
    # Sorted like a loaded manifest, so a freshly built pool and a reloaded one give the same order.
    return [(manifest.items[key], folder) for key in sorted(manifest.items)]


def lineage_seeds(registry, version: str) -> set[int]:
    """Synthetic-data seeds that ``version`` and its warm-start ancestors were trained on."""
    seeds: set[int] = set()
    while version:
        card = registry.card(version)
        seeds.add(int(card.get("recipe", {}).get("seed", 0)))
        version = card.get("parent")
    return seeds


def labels_to_reach(curve: np.ndarray, target: float) -> float | None:
    reached = [n for n, f1 in curve if f1 >= target - 1e-9]
    return float(reached[0]) if reached else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--seed-size", type=int, default=10)
    parser.add_argument("--plot", type=Path, default=ROOT / "docs" / "active_learning.png")
    parser.add_argument("--json", type=Path, default=None, help="Also write the curves as JSON here.")
    parser.add_argument(
        "--pool",
        choices=("fresh", "train"),
        default="fresh",
        help="fresh: photos the detector never trained on (default); train: its own training images",
    )
    parser.add_argument("--pool-size", type=int, default=1100, help="fresh synthetic photos in the pool")
    parser.add_argument(
        "--pool-seed", type=int, default=101, help="generator seed of the fresh pool (must differ from training seeds)"
    )
    args = parser.parse_args()

    from wmstudio.data.manifest import Manifest
    from wmstudio.offline import apply_offline_env
    from wmstudio.registry import Registry
    from wmstudio.runtime import Detector
    from wmstudio.settings import get_settings

    settings = get_settings()
    apply_offline_env(settings.state_dir)
    registry = Registry.from_settings(settings)
    detector = Detector.from_version_dir(registry.champion_path(), settings.inference_threads)
    if args.pool == "fresh" and args.pool_seed in (trained := lineage_seeds(registry, detector.version)):
        sys.exit(f"--pool-seed {args.pool_seed} is in-sample: {detector.version}'s lineage trained on seeds {trained}")
    sets: dict[str, list] = {"pool": [], "test": []}
    for name in ("synthetic-s0", "listings"):
        folder = settings.datasets_dir / name
        if not (folder / "manifest.json").exists():
            continue
        manifest = Manifest.load(folder)
        pool_split = "train" if args.pool == "train" else ("val" if name == "listings" else None)
        sets["pool"] += [(i, folder) for i in manifest.items.values() if i.split == pool_split]
        sets["test"] += [(i, folder) for i in manifest.items.values() if i.split == "test"]
    if args.pool == "fresh":
        sets["pool"] += fresh_pool(settings, args.pool_size, args.pool_seed)
    if not sets["pool"] or not sets["test"]:
        sys.exit("no datasets: run `wmstudio train` (or `wmstudio synth` and `wmstudio ingest`) first")
    print(f"model {detector.version}; pool {len(sets['pool'])} images, test {len(sets['test'])} images")
    cache = settings.state_dir / "bench"
    pool = extract_features(detector, sets["pool"], cache)
    test = extract_features(detector, sets["test"], cache)
    if not pool["base"].any():
        print(
            f"WARNING: model {detector.version} finds no candidate on any pool photo, so the detector features are "
            "all zero and only the weak image features remain; the curves below say nothing about active learning. "
            "Re-run with a trained champion."
        )

    curves = {}
    for strategy in ("random", "uncertainty"):
        runs = [
            simulate(pool, test, strategy, seed, args.seed_size, args.batch, args.rounds)
            for seed in range(args.repeats)
        ]
        labels = np.array([n for n, _ in runs[0]])
        f1 = np.array([[f for _, f in run] for run in runs])
        curves[strategy] = {"labels": labels, "mean": f1.mean(0), "std": f1.std(0)}

    print(f"\n{'labels':>7} {'random F1':>12} {'uncertainty F1':>15}")
    for i, n in enumerate(curves["random"]["labels"]):
        r, u = curves["random"], curves["uncertainty"]
        print(f"{n:>7} {r['mean'][i]:>6.3f}±{r['std'][i]:.3f} {u['mean'][i]:>9.3f}±{u['std'][i]:.3f}")
    target = float(curves["random"]["mean"][-1])
    budget = int(curves["random"]["labels"][-1])
    needed = labels_to_reach(np.column_stack([curves["uncertainty"]["labels"], curves["uncertainty"]["mean"]]), target)
    share = needed / budget if needed else None
    print(f"\nrandom's final F1 {target:.3f} at {budget} labels")
    if needed:
        verdict = "meets" if share <= 0.6 else "misses"
        print(
            f"uncertainty reaches it with {needed:.0f} labels = {share:.0%} of the budget ({verdict} the ≤60% target)"
        )
    else:
        print("uncertainty does not reach it within the budget")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4.5))
    for strategy, colour in (("random", "tab:gray"), ("uncertainty", "tab:blue")):
        c = curves[strategy]
        axis.plot(c["labels"], c["mean"], marker="o", color=colour, label=strategy)
        axis.fill_between(c["labels"], c["mean"] - c["std"], c["mean"] + c["std"], color=colour, alpha=0.15)
    axis.axhline(target, color="tab:gray", linestyle="--", linewidth=0.8, label="random's final F1")
    if needed:
        axis.axvline(needed, color="tab:blue", linestyle=":", linewidth=0.8)
    axis.set_xlabel("human labels")
    axis.set_ylabel("test F1 (image level, micro over brands)")
    axis.set_title(f"Active learning simulation ({args.repeats} repeats, model {detector.version})")
    axis.legend(loc="lower right")
    axis.grid(alpha=0.3)
    args.plot.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(args.plot, dpi=120)
    print(f"plot: {args.plot}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {k: {kk: np.asarray(vv).tolist() for kk, vv in v.items()} for k, v in curves.items()}
                | {"target": target, "needed": needed, "budget": budget, "model": detector.version},
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
