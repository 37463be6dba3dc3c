"""Classification results from a confusion matrix: accuracy, per-class accuracy, the figure."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np

from dlcv.io import atomic_path, write_text


def summarise(confusion: np.ndarray) -> dict:
    """confusion[i, j] = images of class i predicted j."""
    confusion = np.asarray(confusion, dtype=np.int64)
    support = confusion.sum(1)
    correct = np.diag(confusion)
    per_class = [float(c / s) if s else None for c, s in zip(correct, support)]  # None: no images
    return {"accuracy": float(correct.sum() / max(1, confusion.sum())), "images": int(confusion.sum()),
            "per_class_accuracy": per_class, "support": support.tolist()}


def write_evaluation(out_dir: Path, confusion: np.ndarray, title: str) -> dict:
    """eval/metrics.json, eval/per_class.csv, eval/confusion.png."""
    out_dir = Path(out_dir)
    summary = summarise(confusion)
    write_text(out_dir / "metrics.json", json.dumps({**summary, "confusion": np.asarray(confusion).tolist()}) + "\n")
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["class", "images", "accuracy"])
    for c, (acc, n) in enumerate(zip(summary["per_class_accuracy"], summary["support"])):
        w.writerow([c, n, "" if acc is None else f"{acc:.4f}"])
    write_text(out_dir / "per_class.csv", buf.getvalue())
    plot_confusion(confusion, f"{title}: accuracy {summary['accuracy']:.2%}", out_dir / "confusion.png")
    return summary


def plot_confusion(confusion: np.ndarray, title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    confusion = np.asarray(confusion, dtype=np.float64)
    rows = confusion / np.maximum(confusion.sum(1, keepdims=True), 1)  # recall per true class
    n = len(confusion)
    fig, ax = plt.subplots(figsize=(7, 6), dpi=150)
    im = ax.imshow(rows, cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ticks = range(0, n, max(1, n // 10))
    ax.set_xticks(list(ticks)), ax.set_yticks(list(ticks))
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, label="fraction of the true class")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
