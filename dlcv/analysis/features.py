"""Learned representations: penultimate-layer outputs dumped at chosen epochs, then PCA and t-SNE
scatter plots coloured by class (the P1 report questions)."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Optional, Sequence

import lightning.pytorch as L
import numpy as np
import torch

from dlcv.io import atomic_path

FEATURE_FILE = re.compile(r"epoch_(\d+)\.npz$")


@torch.no_grad()
def extract_features(model, images: np.ndarray, batch_size: int = 256, device="cpu",
                     channels_last: bool = False) -> np.ndarray:
    """model.features over uint8 (N,3,H,W) images, in eval mode, as float32 (N, D)."""
    was_training = model.training
    model.eval()
    out = []
    for i in range(0, len(images), batch_size):
        x = torch.from_numpy(np.ascontiguousarray(images[i:i + batch_size])).to(device)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        out.append(model.features(x).float().cpu())
    model.train(was_training)
    return torch.cat(out).numpy()


def save_features(path: Path, features: np.ndarray, labels: np.ndarray, epoch: int) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, features=features.astype(np.float32), labels=labels, epoch=epoch)


def load_feature_dumps(folder: Path) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """[(epoch, features, labels)] sorted by epoch, from <run>/features/epoch_XXX.npz."""
    dumps = []
    for f in sorted(Path(folder).glob("epoch_*.npz")):
        if FEATURE_FILE.search(f.name):
            with np.load(f) as z:
                dumps.append((int(z["epoch"]), z["features"], z["labels"]))
    return sorted(dumps, key=lambda d: d[0])


class FeatureDump(L.Callback):
    """After validation at the chosen epochs, rank 0 writes the validation set's penultimate-layer
    outputs (model.features) to features/epoch_XXX.npz. Rank 0 alone runs the whole set, so no
    sample is missing or doubled under DDP."""

    def __init__(self, run_dir: Path, epochs: Sequence[int], images: np.ndarray, labels: np.ndarray,
                 max_points: int = 0, seed: int = 0):
        self.dir = Path(run_dir) / "features"
        self.epochs = set(epochs)
        if max_points and len(images) > max_points:  # a fixed, class-mixed subset
            keep = np.sort(np.random.default_rng(seed).choice(len(images), max_points, replace=False))
            images, labels = images[keep], labels[keep]
        self.images, self.labels = images, labels

    def on_train_epoch_end(self, trainer, pl_module):
        epoch = trainer.current_epoch + 1
        if epoch not in self.epochs or not trainer.is_global_zero or trainer.sanity_checking:
            return
        feats = extract_features(pl_module.model, self.images, device=pl_module.device,
                                 channels_last=pl_module.cfg.trainer.channels_last)
        save_features(self.dir / f"epoch_{epoch:03d}.npz", feats, self.labels, epoch)


def pca_2d(features: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """2-D PCA projection and the explained-variance ratio of the two components."""
    from sklearn.decomposition import PCA

    pca = PCA(n_components=2, random_state=seed)
    return pca.fit_transform(features), pca.explained_variance_ratio_


def tsne_2d(features: np.ndarray, perplexity: float = 30.0, seed: int = 0) -> np.ndarray:
    """t-SNE (scikit-learn, Barnes-Hut, PCA initialisation) with a fixed seed and perplexity, so
    the epochs differ only by their features."""
    from sklearn.manifold import TSNE

    perplexity = min(perplexity, max(2.0, (len(features) - 1) / 3))  # sklearn needs perplexity < n
    return TSNE(n_components=2, perplexity=perplexity, init="pca", learning_rate="auto",
                random_state=seed).fit_transform(features.astype(np.float32))


def scatter(points: np.ndarray, labels: np.ndarray, title: str, path: Path, num_classes: Optional[int] = None,
            ax=None) -> None:
    """A class-coloured scatter; with many classes a colour bar names the class ids."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = num_classes or int(labels.max()) + 1
    own = ax is None
    if own:
        fig, ax = plt.subplots(figsize=(6, 5.2), dpi=150)
    cmap = plt.get_cmap("tab10" if n <= 10 else "nipy_spectral", n)
    sc = ax.scatter(points[:, 0], points[:, 1], c=labels, cmap=cmap, vmin=-0.5, vmax=n - 0.5, s=6,
                    linewidths=0, alpha=0.85)
    ax.set_title(title, fontsize=10)
    ax.set_xticks([]), ax.set_yticks([])
    if own:
        fig.colorbar(sc, ax=ax, label="class", ticks=range(0, n, max(1, n // 10)))
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=path.suffix.lstrip("."))
        plt.close(fig)


def feature_figures(run_dir: Path, perplexity: float = 30.0, seed: int = 0,
                    num_classes: Optional[int] = None) -> dict[str, Path]:
    """figures/pca.png (last saved epoch) and figures/tsne_epoch_XXX.png (every saved epoch, plus a
    side-by-side figures/tsne.png). Returns the written paths by name."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    dumps = load_feature_dumps(run_dir / "features")
    if not dumps:
        return {}
    fig_dir = run_dir / "figures"
    written: dict[str, Path] = {}
    epoch, feats, labels = dumps[-1]
    points, ratio = pca_2d(feats, seed)
    path = fig_dir / "pca.png"
    scatter(points, labels, f"PCA of penultimate features, epoch {epoch} "
                            f"(explained variance {ratio[0]:.0%} + {ratio[1]:.0%})", path, num_classes)
    written["pca"] = path
    embeddings = [(e, tsne_2d(f, perplexity, seed), lab) for e, f, lab in dumps]
    for e, pts, lab in embeddings:
        path = fig_dir / f"tsne_epoch_{e:03d}.png"
        scatter(pts, lab, f"t-SNE, epoch {e} (perplexity {perplexity:g})", path, num_classes)
        written[f"tsne_epoch_{e:03d}"] = path
    fig, axes = plt.subplots(1, len(embeddings), figsize=(4.2 * len(embeddings), 4.2), dpi=150, squeeze=False)
    for ax, (e, pts, lab) in zip(axes[0], embeddings):
        scatter(pts, lab, f"epoch {e}", fig_dir / "unused", num_classes, ax=ax)
    fig.suptitle(f"t-SNE of penultimate features (perplexity {perplexity:g}, seed {seed})", fontsize=11)
    fig.tight_layout()
    path = fig_dir / "tsne.png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    written["tsne"] = path
    return written
