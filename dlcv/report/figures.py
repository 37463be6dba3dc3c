"""The charts the report draws itself from run-folder numbers (training curves, per-class bars), at
print resolution; every other figure is a run's own file, copied. Object-oriented matplotlib (no
pyplot state), SVG (sharp in print, text stays text), atomic writes."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from dlcv.io import atomic_path

CHART = ".svg"
COLORS = ["#1f5fa8", "#d1495b", "#2a9d8f", "#e9a03b", "#7b4fa0", "#5c6f82", "#8c564b", "#17becf"]


@dataclass
class Line:
    label: str
    points: Sequence[tuple[float, float]]
    color: Optional[str] = None
    dashed: bool = False


@dataclass
class Panel:
    title: str
    ylabel: str
    lines: list[Line] = field(default_factory=list)
    percent: bool = False  # values in [0, 1] shown as %


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def _save(fig, axes, path: Path) -> Path:
    import matplotlib

    for ax in axes:
        ax.grid(alpha=0.3, lw=0.6)
        ax.spines[["top", "right"]].set_visible(False)
        ax.tick_params(labelsize=8)
        ax.legend(fontsize=6.5, frameon=False)
    fig.tight_layout()
    # svg text stays text (selectable and searchable in the PDF); a fixed hash salt keeps rebuilds identical
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "dlcv"}), atomic_path(path) as tmp:
        fig.savefig(tmp, format="svg")
    return path


def panels(path: Path, items: Sequence[Panel], columns: int = 3, width: float = 7.4) -> Path:
    """A grid of line plots (one per Panel with data), each with its own legend."""
    items = [p for p in items if any(line.points for line in p.lines)]
    if not items:
        raise ValueError("nothing to plot")
    cols = min(columns, len(items))
    rows = (len(items) + cols - 1) // cols
    fig = _figure(width, 2.6 * rows)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax, panel in zip(axes, items):
        for i, line in enumerate(p for p in panel.lines if p.points):
            x, y = zip(*line.points)
            ax.plot(x, np.asarray(y) * (100 if panel.percent else 1), ls="--" if line.dashed else "-", lw=1.4,
                    color=line.color or COLORS[i % len(COLORS)], marker="o" if len(x) <= 30 else None, ms=3,
                    label=line.label)
        ax.set_title(panel.title, fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        ax.set_ylabel(panel.ylabel + (" (%)" if panel.percent else ""), fontsize=8)
    for ax in axes[len(items):]:
        ax.set_visible(False)
    return _save(fig, axes[:len(items)], path)


def grouped_bars(path: Path, categories: Sequence[str], series: dict[str, Sequence[Optional[float]]],
                 ylabel: str) -> Path:
    """Bars in percent per category, one colour per series; None = no bar."""
    fig = _figure(7.4, 2.9)
    ax = fig.subplots()
    n, x = max(1, len(series)), np.arange(len(categories))
    for i, (name, values) in enumerate(series.items()):
        vals = [np.nan if v is None else 100 * v for v in values]
        ax.bar(x + (i - (n - 1) / 2) * 0.8 / n, vals, 0.76 / n, label=name, color=COLORS[i % len(COLORS)])
    ax.set_xticks(x)
    ax.set_xticklabels(categories, fontsize=7, rotation=90 if len(categories) > 20 else 0)
    ax.set_ylabel(f"{ylabel} (%)", fontsize=8)
    ax.set_ylim(0, 105)
    ax.set_xlim(-0.6, len(categories) - 0.4)
    return _save(fig, [ax], path)
