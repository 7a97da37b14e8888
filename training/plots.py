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
