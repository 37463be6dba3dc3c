"""Predicted masks of chosen validation images over training (the P3 report question).

During training, :class:`MaskSnapshots` (rank 0 only) writes, for each chosen image id:

    masks/inputs/<id>_sat.png                the satellite image (as the model saw it, uint8)
    masks/gt/<id>_mask.png, <id>_overlay.png the ground truth, as a colour mask and an overlay
    masks/epoch_XXX/<id>_mask.png            the prediction at epoch XXX (legal colours only)
    masks/epoch_XXX/<id>_overlay.png         the same over the image

At the end of fit, :func:`mask_figures` builds ``figures/masks_over_epochs.png`` (colour masks)
and ``figures/masks_over_epochs_overlay.png`` (overlays) from those PNGs alone, so the report can
rebuild them from the run folder: rows are images, columns are the image, each saved epoch and
the ground truth.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import lightning.pytorch as L
import numpy as np
import torch

from dlcv.data.masks import CLASS_COLORS, CLASS_NAMES, read_mask, write_mask
from dlcv.io import atomic_path

EPOCH_DIR = re.compile(r"^epoch_(\d+)$")


def class_boundaries(classes: np.ndarray) -> np.ndarray:
    """(H,W) bool: pixels whose right or lower neighbour has another class (1-px region outlines)."""
    edge = np.zeros(classes.shape, dtype=bool)
    edge[:, :-1] |= classes[:, :-1] != classes[:, 1:]
    edge[:-1, :] |= classes[:-1, :] != classes[1:, :]
    return edge


def overlay(image: np.ndarray, classes: np.ndarray, alpha: float = 0.3) -> np.ndarray:
    """(H,W,3) uint8: the image with each class's colour filled in at `alpha` and the class
    boundaries drawn opaque in the class colour (so the regions stay readable at low alpha)."""
    if image.shape[:2] != classes.shape:
        raise ValueError(f"image {image.shape[:2]} and mask {classes.shape} sizes differ")
    colours = CLASS_COLORS[classes.astype(np.intp)].astype(np.float32)
    out = (1 - alpha) * image.astype(np.float32) + alpha * colours
    edge = class_boundaries(classes)
    out[edge] = colours[edge]
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def save_png(path: Path, rgb: np.ndarray) -> None:
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(rgb).save(tmp, format="PNG")


def read_png(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


@torch.no_grad()
def predict_classes(segmenter, images: np.ndarray, device, channels_last: bool = False) -> np.ndarray:
    """(K,H,W) uint8 class ids for uint8 (K,3,H,W) images, in eval mode, one image at a time."""
    was_training = segmenter.training
    segmenter.eval()
    out = []
    try:
        for img in images:
            x = torch.from_numpy(np.ascontiguousarray(img[None])).to(device)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            out.append(segmenter(x).argmax(1)[0].to(torch.uint8).cpu().numpy())
    finally:
        segmenter.train(was_training)
    return np.stack(out)


class MaskSnapshots(L.Callback):
    """Rank 0 writes the chosen validation images' predicted masks at the chosen epochs (after that
    epoch's validation). The few images run on rank 0 alone: no collective op is involved."""

    def __init__(self, run_dir: Path, epochs: Sequence[int], ids: Sequence[str], images: np.ndarray,
                 masks: np.ndarray, alpha: float = 0.3):
        self.dir = Path(run_dir) / "masks"
        self.epochs = set(epochs)
        self.ids = list(ids)
        self.images, self.masks, self.alpha = np.asarray(images), np.asarray(masks), alpha

    def on_fit_start(self, trainer, pl_module):
        if not trainer.is_global_zero:
            return
        for i, name in enumerate(self.ids):
            hwc = self.images[i].transpose(1, 2, 0)
            save_png(self.dir / "inputs" / f"{name}_sat.png", np.ascontiguousarray(hwc))
            write_mask(self.dir / "gt" / f"{name}_mask.png", self.masks[i])
            save_png(self.dir / "gt" / f"{name}_overlay.png", overlay(hwc, self.masks[i], self.alpha))

    def on_train_epoch_end(self, trainer, pl_module):
        epoch = trainer.current_epoch + 1
        if epoch not in self.epochs or not trainer.is_global_zero or trainer.sanity_checking:
            return
        preds = predict_classes(pl_module.segmenter, self.images, pl_module.device,
                                pl_module.cfg.trainer.channels_last)
        folder = self.dir / f"epoch_{epoch:03d}"
        for i, name in enumerate(self.ids):
            write_mask(folder / f"{name}_mask.png", preds[i])
            save_png(folder / f"{name}_overlay.png", overlay(self.images[i].transpose(1, 2, 0), preds[i], self.alpha))


def saved_epochs(masks_dir: Path) -> list[int]:
    return sorted(int(m.group(1)) for p in Path(masks_dir).iterdir() if p.is_dir() and (m := EPOCH_DIR.match(p.name)))


def saved_ids(masks_dir: Path) -> list[str]:
    return sorted(p.name[:-len("_sat.png")] for p in (Path(masks_dir) / "inputs").glob("*_sat.png"))


def mask_figures(run_dir: Path, title: str = "") -> dict[str, Path]:
    """Build both grid figures from <run>/masks/ alone; {} when nothing was saved."""
    masks_dir = Path(run_dir) / "masks"
    if not (masks_dir / "inputs").is_dir():
        return {}
    epochs, ids = saved_epochs(masks_dir), saved_ids(masks_dir)
    if not epochs or not ids:
        return {}
    out = {}
    for kind, suffix in (("masks", ""), ("overlay", "_overlay")):
        path = Path(run_dir) / "figures" / f"masks_over_epochs{suffix}.png"
        _grid(masks_dir, epochs, ids, kind, path, title)
        out[f"masks_over_epochs{suffix}"] = path
    return out


def _cell(masks_dir: Path, folder: str, name: str, kind: str) -> np.ndarray:
    if kind == "masks":  # decoded and re-encoded: the cell shows exactly the legal colours
        return CLASS_COLORS[read_mask(masks_dir / folder / f"{name}_mask.png", warn=False)]
    return read_png(masks_dir / folder / f"{name}_overlay.png")


def _grid(masks_dir: Path, epochs: list[int], ids: list[str], kind: str, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    columns = ["image"] + [f"epoch {e}" for e in epochs] + ["ground truth"]
    fig, axes = plt.subplots(len(ids), len(columns), figsize=(max(2.2 * len(columns), 8.0), 2.2 * len(ids) + 0.9),
                             dpi=120, squeeze=False)
    for r, name in enumerate(ids):
        cells = [read_png(masks_dir / "inputs" / f"{name}_sat.png")]
        cells += [_cell(masks_dir, f"epoch_{e:03d}", name, kind) for e in epochs]
        cells += [_cell(masks_dir, "gt", name, kind)]
        for c, cell in enumerate(cells):
            ax = axes[r, c]
            ax.imshow(cell, interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            if r == 0:
                ax.set_title(columns[c], fontsize=9)
            if c == 0:
                ax.set_ylabel(f"{name}_sat", fontsize=9)
    handles = [Patch(facecolor=CLASS_COLORS[i] / 255, edgecolor="0.3", label=f"{i} {CLASS_NAMES[i]}")
               for i in range(len(CLASS_NAMES))]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=7, frameon=False)
    what = "predicted masks over epochs" + ("" if kind == "masks" else " (overlaid on the image)")
    fig.suptitle(f"{title + ': ' if title else ''}{what}", fontsize=10)
    fig.tight_layout(rect=(0, 0.06, 1, 0.97))
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
