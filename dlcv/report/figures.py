"""Figures the report draws itself from run-folder numbers (curves, bars, image grids), at print
resolution. Object-oriented matplotlib (no pyplot state), atomic writes."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from dlcv.io import atomic_path

DPI = 200  # >= 150 dpi at the printed size: figures are at most ~7 in wide
CHART = ".svg"  # line and bar charts: vector (sharp in print, faster to write than 200 dpi PNG)
COLORS = ["#1f5fa8", "#d1495b", "#2a9d8f", "#e9a03b", "#7b4fa0", "#5c6f82", "#8c564b", "#17becf"]


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def save(fig, path: Path) -> Path:
    import matplotlib

    path = Path(path)
    # svg text stays text (selectable, searchable in the PDF, rendered with the page's fonts); no
    # bbox_inches="tight": it draws every figure twice, and tight_layout already trims the margins
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "dlcv"}), atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=DPI)
    return path


def _style(ax) -> None:
    ax.grid(alpha=0.3, lw=0.6)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.tick_params(labelsize=8)


@dataclass
class Line:
    label: str
    points: Sequence[tuple[float, float]]
    color: Optional[str] = None
    dashed: bool = False
    marker: bool = True


@dataclass
class Panel:
    title: str
    ylabel: str
    lines: list[Line] = field(default_factory=list)
    xlabel: str = "epoch"
    percent: bool = False  # values in [0, 1] shown as %
    hline: Optional[tuple[float, str]] = None  # (y, label): a reference level
    logy: bool = False


def panels(path: Path, items: Sequence[Panel], columns: int = 2, width: float = 7.2,
           row_height: float = 2.6, title: str = "") -> Path:
    """A grid of line plots (one per Panel), each with its own legend."""
    items = [p for p in items if any(line.points for line in p.lines)]
    if not items:
        raise ValueError("nothing to plot")
    cols = min(columns, len(items))
    rows = (len(items) + cols - 1) // cols
    fig = _figure(width, row_height * rows + (0.3 if title else 0))
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax, panel in zip(axes, items):
        for i, line in enumerate(panel.lines):
            if not line.points:
                continue
            x, y = zip(*line.points)
            y = np.asarray(y, dtype=float) * (100 if panel.percent else 1)
            ax.plot(x, y, ls="--" if line.dashed else "-", lw=1.4, color=line.color or COLORS[i % len(COLORS)],
                    marker="o" if line.marker and len(x) <= 30 else None, ms=3, label=line.label)
        if panel.hline is not None:
            yv = panel.hline[0] * (100 if panel.percent else 1)
            ax.axhline(yv, color="0.35", lw=0.9, ls=":", label=panel.hline[1])
        if panel.logy:
            ax.set_yscale("log")
        ax.set_title(panel.title, fontsize=9)
        ax.set_xlabel(panel.xlabel, fontsize=8)
        ax.set_ylabel(panel.ylabel + (" (%)" if panel.percent else ""), fontsize=8)
        _style(ax)
        ax.legend(fontsize=6.5, frameon=False)
    for ax in axes[len(items):]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save(fig, path)


def grouped_bars(path: Path, categories: Sequence[str], series: dict[str, Sequence[Optional[float]]],
                 ylabel: str, title: str = "", percent: bool = True, width: float = 7.2, height: float = 2.8,
                 rotate: bool = False, annotate: bool = False) -> Path:
    """Bars per category, one colour per series; None = no bar."""
    fig = _figure(width, height)
    ax = fig.subplots()
    n = max(1, len(series))
    w = 0.8 / n
    x = np.arange(len(categories))
    for i, (name, values) in enumerate(series.items()):
        vals = np.array([np.nan if v is None else v * (100 if percent else 1) for v in values], dtype=float)
        bars = ax.bar(x + (i - (n - 1) / 2) * w, vals, w * 0.95, label=name, color=COLORS[i % len(COLORS)])
        if annotate:
            for b, v in zip(bars, vals):
                if np.isfinite(v):
                    ax.annotate(f"{v:.1f}", (b.get_x() + b.get_width() / 2, v), ha="center", va="bottom",
                                fontsize=6, xytext=(0, 1), textcoords="offset points")
    ax.set_xticks(x)
    ax.set_xticklabels(categories, fontsize=7 if len(categories) > 12 else 8, rotation=90 if rotate else 0)
    ax.set_ylabel(ylabel + (" (%)" if percent else ""), fontsize=8)
    if percent:
        ax.set_ylim(0, 105)
    ax.set_xlim(-0.6, len(categories) - 0.4)
    if title:
        ax.set_title(title, fontsize=9)
    _style(ax)
    ax.legend(fontsize=7, frameon=False, ncol=min(4, n))
    fig.tight_layout()
    return save(fig, path)


def image_grid(path: Path, cells: Sequence[Sequence[np.ndarray]], row_labels: Sequence[str],
               col_labels: Sequence[str], legend: Sequence[tuple[str, np.ndarray]] = (), title: str = "",
               cell_inches: float = 1.55) -> Path:
    """Rows x columns of RGB images (uint8 HxWx3), labelled, with an optional colour legend."""
    rows, cols = len(cells), max(len(r) for r in cells)
    fig = _figure(cell_inches * cols + 0.4, cell_inches * rows + (0.55 if legend else 0.15) + (0.3 if title else 0))
    axes = np.atleast_2d(fig.subplots(rows, cols, squeeze=False))
    for r, row in enumerate(cells):
        for c in range(cols):
            ax = axes[r, c]
            ax.set_xticks([]), ax.set_yticks([])
            for s in ax.spines.values():
                s.set_linewidth(0.4)
            if c < len(row) and row[c] is not None:
                ax.imshow(row[c], interpolation="nearest")
            else:
                ax.text(0.5, 0.5, "missing", ha="center", va="center", fontsize=7, color="0.4",
                        transform=ax.transAxes)
            if r == 0:
                ax.set_title(col_labels[c], fontsize=8)
            if c == 0:
                ax.set_ylabel(row_labels[r], fontsize=8)
    if legend:
        from matplotlib.patches import Patch

        handles = [Patch(facecolor=np.asarray(rgb) / 255, edgecolor="0.3", label=name) for name, rgb in legend]
        fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 7), fontsize=7, frameon=False)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0.07 if legend else 0, 1, 0.96 if title else 1))
    return save(fig, path)


def side_by_side(path: Path, images: Sequence[np.ndarray], labels: Sequence[str], title: str = "",
                 cell_inches: float = 3.4) -> Path:
    """Images in one row (e.g. saved per-epoch t-SNE PNGs), each with a label."""
    fig = _figure(cell_inches * len(images), cell_inches * 0.95 + (0.3 if title else 0))
    axes = np.atleast_1d(fig.subplots(1, len(images), squeeze=False)).ravel()
    for ax, img, label in zip(axes, images, labels):
        ax.imshow(img)
        ax.set_axis_off()
        ax.set_title(label, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save(fig, path)


def read_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))
