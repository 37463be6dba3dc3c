"""Problem 1 folders: `{label}_{id}.png` (train_50, val_50) or arbitrary names (the hidden test)."""
from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Optional

import numpy as np

from dlcv.data.cache import cached_array
from dlcv.data.images import list_images, read_many, read_rgb, resize_center_crop
from dlcv.data.sets import ImageSet, stack_chw
from dlcv.errors import DataError

NUM_CLASSES = 50
IMAGE_SIZE = 32
_LABELLED_NAME = re.compile(r"^(\d+)_(\d+)\.png$", re.IGNORECASE)


def parse_label(path: Path, num_classes: int = NUM_CLASSES) -> int:
    m = _LABELLED_NAME.match(path.name)
    if not m:
        raise DataError(f"{path}: file name must be {{label}}_{{id}}.png (e.g. 7_123.png)")
    label = int(m.group(1))
    if not 0 <= label < num_classes:
        raise DataError(f"{path}: label {label} is outside 0..{num_classes - 1}")
    return label


def load_p1_folder(folder: str | Path, labelled: bool = True, cache_dir: Optional[str | Path] = None,
                   num_classes: int = NUM_CLASSES, size: int = IMAGE_SIZE,
                   on_error: str = "raise") -> ImageSet:
    """Decode a P1 folder into an ImageSet of (N, 3, size, size) uint8.

    labelled=True: names must be `{label}_{id}.png` and every image exactly size x size (training
    data with another size is a mistake worth stopping for). labelled=False (a test folder): any
    name, any PNG/JPG, other sizes are resized + center-cropped with a note on stderr.
    on_error="collect" (prediction): unreadable files are skipped and listed in `meta["errors"]`.
    """
    folder = Path(folder)
    files = list_images(folder, (".png",) if labelled else (".png", ".jpg", ".jpeg"))
    labels = np.array([parse_label(f, num_classes) for f in files] if labelled else [-1] * len(files),
                      dtype=np.int64)
    resized: list[str] = []

    def read(path: Path) -> np.ndarray:
        if labelled:
            return read_rgb(path, size=(size, size))
        arr = read_rgb(path)
        if arr.shape[:2] != (size, size):
            resized.append(path.name)
            arr = read_rgb(path, resize=resize_center_crop(size))
        return arr

    errors: list[str] = []

    def build() -> np.ndarray:
        arrays, errs = read_many(files, read, on_error=on_error)
        errors.extend(errs)
        good = [a for a in arrays if a is not None]
        if not good:
            raise DataError(f"{folder}: none of the {len(files)} images could be read")
        if errs:  # keep rows aligned with names: drop the unreadable ones
            return stack_chw(good), np.array([a is not None for a in arrays])
        return stack_chw(good)

    if on_error == "collect":  # prediction: never cached, errors must be seen every time
        result = build()
    else:
        result = cached_array(cache_dir, f"p1-{folder.name}", files,
                              {"labelled": labelled, "size": size, "v": 1}, build)
    keep = None
    if isinstance(result, tuple):
        result, keep = result
    names = [f.name for f in files]
    if keep is not None:
        names = [n for n, k in zip(names, keep) if k]
        labels = labels[keep]
    if resized:
        print(f"note: {len(resized)} image(s) in {folder} were not {size}x{size} and were resized "
              f"(e.g. {resized[0]})", file=sys.stderr)
    return ImageSet(images=result, labels=labels, names=names, root=folder, meta={"errors": errors})
