"""Numbers behind the PCA / t-SNE figures, so their explanation is computed, not written by hand.

t-SNE keeps neighbourhoods, so the honest one-number summary of "how well do classes separate" is
the k-nearest-neighbour label agreement of the features themselves (leave-one-out): the share of
points whose k nearest neighbours mostly carry their own label.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np


def load_dumps(run_dir: Path) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """[(epoch, features, labels)] from <run>/features/epoch_XXX.npz (the FeatureDump format), sorted.

    Read here with numpy alone: dlcv.analysis.features imports Lightning, seconds the report need not pay."""
    dumps = []
    for f in sorted((Path(run_dir) / "features").glob("epoch_*.npz")):
        with np.load(f) as z:
            dumps.append((int(z["epoch"]), np.asarray(z["features"], dtype=np.float32), np.asarray(z["labels"])))
    return sorted(dumps, key=lambda d: d[0])


def pca_2d(features: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """As dlcv.analysis.features.pca_2d (the figure the run wrote), without importing Lightning."""
    from sklearn.decomposition import PCA

    pca = PCA(n_components=2, random_state=seed)
    return pca.fit_transform(features), pca.explained_variance_ratio_


def knn_agreement(points: np.ndarray, labels: np.ndarray, k: int = 5) -> Optional[float]:
    """Leave-one-out k-NN majority-vote accuracy (ties: the nearest neighbour's label wins)."""
    from sklearn.neighbors import NearestNeighbors

    n = len(points)
    if n <= k + 1:
        return None
    nn = NearestNeighbors(n_neighbors=k + 1).fit(points)
    _, idx = nn.kneighbors(points)
    neigh = labels[idx[:, 1:]]  # drop the point itself
    correct = 0
    for i in range(n):
        values, counts = np.unique(neigh[i], return_counts=True)
        best = values[counts == counts.max()]
        vote = neigh[i][np.isin(neigh[i], best)][0]  # nearest among the tied
        correct += int(vote == labels[i])
    return correct / n


def pca_summary(features: np.ndarray, labels: np.ndarray, seed: int = 0) -> dict:
    points, ratio = pca_2d(features, seed)
    return {"explained": [float(r) for r in ratio], "knn_2d": knn_agreement(points, labels),
            "knn_full": knn_agreement(features, labels), "points": points}


def chance(labels: np.ndarray) -> float:
    _, counts = np.unique(labels, return_counts=True)
    return float(counts.max() / counts.sum())
