"""In-memory image sets and the Dataset that serves whole batches from them."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset


@dataclass
class ImageSet:
    """Decoded images (N, 3, H, W) uint8, their integer targets (-1 = unknown) and file names."""

    images: np.ndarray
    labels: np.ndarray
    names: list[str]
    root: Optional[Path] = None
    masks: Optional[np.ndarray] = None  # (N, H, W) uint8 class ids, segmentation sets only
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.names)

    def subset(self, n: int) -> "ImageSet":
        """The first n items (a smoke-test knob); n <= 0 keeps everything."""
        if n <= 0 or n >= len(self):
            return self
        return ImageSet(self.images[:n], self.labels[:n], self.names[:n], self.root,
                        None if self.masks is None else self.masks[:n], dict(self.meta))


def stack_chw(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """List of HxWx3 uint8 arrays (same size) -> one contiguous (N, 3, H, W) uint8 array."""
    out = np.empty((len(arrays), 3, *arrays[0].shape[:2]), dtype=np.uint8)
    for i, a in enumerate(arrays):
        out[i] = a.transpose(2, 0, 1)
    return out


class BatchDataset(Dataset):
    """Serves (images uint8, targets) straight from arrays: int64 labels or uint8 masks.

    `__getitems__` lets the DataLoader fetch a whole batch with one fancy-index instead of
    N item lookups and a collate; augmentation happens later, batched, on the training device.
    """

    def __init__(self, images: np.ndarray, targets: np.ndarray):
        if len(images) != len(targets):
            raise ValueError(f"{len(images)} images but {len(targets)} targets")
        self.images, self.targets = images, targets

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return self.__getitems__([i])

    def __getitems__(self, indices: list[int]):
        idx = np.asarray(indices)
        order = np.argsort(idx, kind="stable")  # sorted reads are sequential on a memory map
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        images = np.ascontiguousarray(self.images[idx[order]])[inverse]
        targets = np.ascontiguousarray(self.targets[idx[order]])[inverse]
        if targets.ndim == 1:  # class labels; masks stay uint8 until they reach the device
            targets = targets.astype(np.int64)
        return torch.from_numpy(images), torch.from_numpy(targets)


def passthrough_collate(batch):
    """The dataset already returns a collated batch."""
    return batch
