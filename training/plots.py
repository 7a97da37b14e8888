"""Matplotlib figures shared by evaluation, EDA and the dashboard (PNG, Agg backend)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def plot_pr_curves(result: dict, path: Path, title: str = "") -> Path:
    fig, ax = plt.subplots(figsize=(5, 4), dpi=100)
    for brand, values in result["per_brand"].items():
        curve = values["pr_curve"]
        if values["positives"]:
            ax.plot(curve["recall"], curve["precision"], label=f"{brand} (F1 {values['f1']:.2f})")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1.02), ylim=(0, 1.02), title=f"Image-level PR {title}")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_confusion(result: dict, path: Path, title: str = "") -> Path:
    labels = result["confusion"]["labels"]
    matrix = result["confusion"]["matrix"]
    fig, ax = plt.subplots(figsize=(4.2, 3.6), dpi=100)
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set(xlabel="predicted", ylabel="truth", title=f"Confusion {title}")
    for i, row in enumerate(matrix):
        for j, value in enumerate(row):
            ax.text(j, i, str(value), ha="center", va="center", color="black")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_variant_f1(rows: list[dict], path: Path, title: str = "") -> Path:
    """F1 per variant (rows) and stage/set/brand (columns) as a heat map: where the detector breaks."""
    import numpy as np

    variants = list(dict.fromkeys(row["variant"] for row in rows))
    columns = list(dict.fromkeys(f"{row['stage']}\n{row['set']}\n{row['brand']}" for row in rows))
    grid = np.full((len(variants), len(columns)), np.nan)
    for row in rows:
        grid[variants.index(row["variant"]), columns.index(f"{row['stage']}\n{row['set']}\n{row['brand']}")] = row["f1"]
    fig, ax = plt.subplots(figsize=(1.3 * len(columns) + 2, 0.45 * len(variants) + 1.6), dpi=100)
    image = ax.imshow(grid, cmap="RdYlGn", vmin=0.5, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(columns)), columns, fontsize=7)
    ax.set_yticks(range(len(variants)), variants)
    for (i, j), value in np.ndenumerate(grid):
        if not np.isnan(value):
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7)
    fig.colorbar(image, ax=ax, label="F1")
    ax.set_title(title or "F1 per variant")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
