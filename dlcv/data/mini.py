"""Problem 2 `mini/train/`: the unlabeled images BYOL pre-trains on (38,400 JPGs, 84x84 each).

The folder is decoded once into one uint8 (N, 3, S, S) array cached on disk (`dlcv.data.cache`;
the real set is 38,400 x 3 x 84 x 84 = 813 MB, so later runs memory-map it instead of holding a
copy in RAM). Decoding fills a preallocated array chunk by chunk, so building the cache never
needs two copies of the set in memory either.

Size: by default every image must already be S x S with S the size of the first image (84 for the
real data); a file of another size is a DataError naming it. `image_size > 0` instead resizes
every image (shorter side, then centre crop) to image_size at decode time. BYOL's random crops
are resized to `byol.image_size` later, on the training device.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from dlcv.data.cache import cached_array
from dlcv.data.images import list_images, read_many, read_rgb, resize_center_crop
from dlcv.data.sets import ImageSet

_CHUNK = 2048  # files decoded per thread-pool batch (bounded extra memory while building)


def _decode_into(files: list[Path], size: int, resize: bool) -> np.ndarray:
    out = np.empty((len(files), 3, size, size), dtype=np.uint8)
    crop = resize_center_crop(size) if resize else None

    def read(path: Path) -> np.ndarray:
        return read_rgb(path, size=None if resize else (size, size), resize=crop)

    for start in range(0, len(files), _CHUNK):
        arrays, _ = read_many(files[start:start + _CHUNK], read)
        for i, a in enumerate(arrays):
            out[start + i] = a.transpose(2, 0, 1)
    return out


def load_mini_folder(folder: str | Path, cache_dir: Optional[str | Path] = None, image_size: int = 0,
                     limit: int = 0) -> ImageSet:
    """All images of `folder` (sorted by name) as an ImageSet with labels -1 (unlabeled).

    image_size 0: keep the native size (all images must share it); > 0: resize + centre crop.
    limit > 0: only the first `limit` files (smoke tests; not cached).
    """
    folder = Path(folder)
    files = list_images(folder)
    if limit > 0:
        files = files[:limit]
    resize = image_size > 0
    size = image_size if resize else read_rgb(files[0]).shape[0]
    # the size is in the name: caches of two sizes coexist instead of replacing each other.
    # A limited set (smoke tests) is decoded directly: cheap, and it must not evict the full cache.
    images = cached_array(None if limit > 0 else cache_dir, f"mini-{folder.name}-{size}px", files,
                          {"size": size, "resize": resize, "folder": str(folder.resolve()), "v": 1},
                          lambda: _decode_into(files, size, resize))
    return ImageSet(images=images, labels=np.full(len(files), -1, dtype=np.int64),
                    names=[f.name for f in files], root=folder)


__all__ = ["load_mini_folder"]
