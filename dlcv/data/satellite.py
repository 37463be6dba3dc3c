"""Problem 3 folders: `xxxx_sat.jpg` satellite images and their `xxxx_mask.png` colour masks.

Training/validation splits (`p3_data/train`, `p3_data/validation`) are read as pairs: every sat
image needs its mask and every mask its image (an unpaired file is an error naming its id), all
pairs of a split have one size (an error names the first file that differs), and masks are decoded
with the official colour rule (:mod:`dlcv.data.masks`; red, code 4, is read as unknown with a
warning naming the file and its number of red pixels).

Decode once: the images become one (N, 3, H, W) uint8 array and the masks one (N, H, W) uint8
array of class ids, cached as .npy under the cache folder (:func:`dlcv.data.cache.cached_array`)
and memory-mapped when big (the real training split is 2000 x 3 x 512 x 512 = 1.5 GB of images +
0.5 GB of masks), so epochs never decode a JPEG or PNG again. The red-pixel counts are cached
beside them, so a run that reads the cache still reports which masks held red pixels.

Test folders (the graded `hw1_3.sh`) are read differently, see :func:`list_sat_images` and
:func:`iter_image_batches`: any number of sizes, unreadable files collected rather than fatal, and
decoding in background threads while the model runs.
"""
from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator, Optional, Sequence

import numpy as np

from dlcv.data.cache import cached_array
from dlcv.data.images import read_rgb
from dlcv.data.masks import decode_mask
from dlcv.data.masks import warn_red as warn_red_file  # (this module's warn_red: per folder)
from dlcv.data.sets import ImageSet
from dlcv.errors import DataError

SAT_SUFFIX = "_sat"
MASK_SUFFIX = "_mask"
SAT_EXTENSIONS = (".jpg", ".jpeg", ".png")
_SAT_NAME = re.compile(r"^(.+)_sat\.(jpg|jpeg|png)$", re.IGNORECASE)
_MASK_NAME = re.compile(r"^(.+)_mask\.png$", re.IGNORECASE)
CACHE_VERSION = 2  # 2: RGBA masks decode with alpha ignored (was: composited on black)


def _threads() -> int:
    return min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def list_pairs(folder: str | Path) -> list[tuple[str, Path, Path]]:
    """[(id, sat path, mask path)] sorted by id; unpaired files are a DataError naming the ids.

    Other files (hidden files, notes, a cache folder) are ignored.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: {'not a folder' if folder.exists() else 'folder not found'}")
    sats: dict[str, Path] = {}
    masks: dict[str, Path] = {}
    for p in folder.iterdir():
        if p.name.startswith(".") or not p.is_file():
            continue
        m = _SAT_NAME.match(p.name)
        if m:
            if m.group(1) in sats:
                raise DataError(f"{folder}: id {m.group(1)} has two satellite images: {sats[m.group(1)].name}, {p.name}")
            sats[m.group(1)] = p
            continue
        m = _MASK_NAME.match(p.name)
        if m:
            masks[m.group(1)] = p
    no_mask = sorted(set(sats) - set(masks))
    no_sat = sorted(set(masks) - set(sats))
    if no_mask or no_sat:
        lines = [f"{folder}: satellite images and masks do not pair up:"]
        if no_mask:
            lines.append(f"  {len(no_mask)} image(s) without a mask: {_show([sats[i].name for i in no_mask])}")
        if no_sat:
            lines.append(f"  {len(no_sat)} mask(s) without an image: {_show([masks[i].name for i in no_sat])}")
        raise DataError("\n".join(lines))
    if not sats:
        raise DataError(f"{folder}: no xxxx_sat.jpg + xxxx_mask.png pairs in this folder")
    return [(i, sats[i], masks[i]) for i in sorted(sats)]


def _show(names: Sequence[str], limit: int = 10) -> str:
    return ", ".join(names[:limit]) + (f", ... (+{len(names) - limit} more)" if len(names) > limit else "")


def _image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image file without decoding its pixels."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            return img.size
    except (OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{path}: not a readable image ({exc.__class__.__name__}: {exc})") from None


def _fill(paths: Sequence[Path], out: np.ndarray, decode) -> list:
    """out[i] = decode(paths[i]) for all i, in threads (PIL releases the GIL); returns decode's extras."""
    def one(i: int):
        out[i], extra = decode(paths[i])
        return extra

    if len(paths) < 16:
        return [one(i) for i in range(len(paths))]
    with ThreadPoolExecutor(_threads()) as pool:
        return list(pool.map(one, range(len(paths)), chunksize=16))


def _decode_images(sat_files: Sequence[Path], size: tuple[int, int]) -> np.ndarray:
    """(N, 3, H, W) uint8, filled in place (no list of N arrays: the real split is 1.5 GB)."""
    w, h = size
    out = np.empty((len(sat_files), 3, h, w), dtype=np.uint8)
    _fill(sat_files, out, lambda p: (read_rgb(p, size=size).transpose(2, 0, 1), None))
    return out


def _decode_masks(mask_files: Sequence[Path], size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """((N, H, W) uint8 class ids, (N,) red-pixel counts); a mask of another size is a DataError."""
    w, h = size
    out = np.empty((len(mask_files), h, w), dtype=np.uint8)

    def decode(p: Path):
        # palette/grayscale/16-bit masks become plain 8-bit RGB first; alpha is ignored, as by
        # read_mask and the official tool (one mask file must decode the same everywhere)
        rgb = read_rgb(p, alpha="ignore")
        if rgb.shape[:2] != (h, w):
            raise DataError(f"{p}: mask is {rgb.shape[1]}x{rgb.shape[0]} pixels but the split's images are {w}x{h}")
        classes, n_red = decode_mask(rgb)
        return classes, n_red

    red = np.asarray(_fill(mask_files, out, decode), dtype=np.int64)
    return out, red


def warn_red(names: Sequence[str], red: np.ndarray, folder: Path) -> None:
    """One warning per mask file holding red (code 4) pixels, which are read as unknown."""
    for name, n in zip(names, red):
        if n:
            warn_red_file(folder / name, n, stacklevel=4)


def load_satellite_split(folder: str | Path, cache_dir: Optional[str | Path] = None) -> ImageSet:
    """Decode a P3 train/validation folder into an ImageSet.

    images: (N, 3, H, W) uint8; masks: (N, H, W) uint8 class ids 0..6; names: the ids ("0013");
    labels: -1 (unused); meta: {"red_pixels": {id: count} of the masks with red pixels,
    "sat_files", "mask_files": the file names}. With a cache_dir the arrays are decoded once
    and memory-mapped from then on when big (see the module docstring).
    """
    folder = Path(folder)
    pairs = list_pairs(folder)
    ids = [p[0] for p in pairs]
    sat_files = [p[1] for p in pairs]
    mask_files = [p[2] for p in pairs]
    size = _image_size(sat_files[0])  # the split's size; every other file must match it
    files = sat_files + mask_files
    params = {"size": size, "v": CACHE_VERSION}
    key = f"p3-{folder.name}"
    decoded: dict[str, np.ndarray] = {}

    def masks_and_red() -> tuple[np.ndarray, np.ndarray]:
        if "masks" not in decoded:
            decoded["masks"], decoded["red"] = _decode_masks(mask_files, size)
        return decoded["masks"], decoded["red"]

    images = cached_array(cache_dir, f"{key}-images", files, params, lambda: _decode_images(sat_files, size))
    masks = cached_array(cache_dir, f"{key}-masks", files, params, lambda: masks_and_red()[0])
    red = cached_array(cache_dir, f"{key}-red", files, params, lambda: masks_and_red()[1])
    if len(images) != len(ids) or len(masks) != len(ids) or images.shape[2:] != masks.shape[1:]:
        raise DataError(f"{folder}: cached arrays do not match the folder; delete {cache_dir} and retry")
    warn_red([m.name for m in mask_files], red, folder)
    return ImageSet(images=images, labels=np.full(len(ids), -1, dtype=np.int64), names=ids, root=folder,
                    masks=masks, meta={"red_pixels": {i: int(n) for i, n in zip(ids, red) if n},
                                       "sat_files": [p.name for p in sat_files],
                                       "mask_files": [p.name for p in mask_files]})


# -------------------------------------------------------------------------------------------
# test folders (prediction)
# -------------------------------------------------------------------------------------------

def mask_name(sat_name: str) -> str:
    """`0013_sat.jpg` -> `0013_mask.png` (the graded output name)."""
    m = _SAT_NAME.match(sat_name)
    if not m:
        raise ValueError(f"{sat_name}: not an xxxx_sat.jpg name")
    return f"{m.group(1)}{MASK_SUFFIX}.png"


def list_sat_images(folder: str | Path) -> list[Path]:
    """The `*_sat.jpg` (or .jpeg/.png) files of a folder, sorted; none is a DataError."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: {'not a folder' if folder.exists() else 'folder not found'}")
    files = sorted(p for p in folder.iterdir() if _SAT_NAME.match(p.name) and not p.name.startswith(".")
                   and p.is_file())
    if not files:
        raise DataError(f"{folder}: no xxxx_sat.jpg images in this folder")
    return files


def iter_image_batches(paths: Sequence[Path], batch_size: int, threads: int = 0,
                       prefetch_batches: int = 2) -> Iterator[tuple[list[Path], Optional[np.ndarray], list[str]]]:
    """Yield (paths, (B, 3, H, W) uint8 batch or None, error messages), in file order.

    Decoding runs in a thread pool ahead of the consumer (up to `prefetch_batches` batches), so
    the model computes while the next JPEGs are decoded. A batch holds consecutive images of one
    size (a size change closes it early), so any mix of sizes works. Unreadable files are left out
    of the batches and reported in the error list of the batch they would have been in.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    threads = threads or _threads()

    def read(p: Path):
        try:
            return read_rgb(p), None
        except DataError as exc:
            return None, str(exc)

    with ThreadPoolExecutor(threads) as pool:
        window = batch_size * (prefetch_batches + 1)
        futures = [pool.submit(read, p) for p in paths[:window]]
        submitted = len(futures)
        group: list[tuple[Path, np.ndarray]] = []
        errors: list[str] = []
        i = 0
        while i < len(paths):
            array, error = futures[i].result()
            futures[i] = None  # drop the decoded array as soon as it is batched
            if submitted < len(paths):
                futures.append(pool.submit(read, paths[submitted]))
                submitted += 1
            if error is not None:
                errors.append(error)
            else:
                if group and group[0][1].shape != array.shape:
                    yield _batch(group, errors)
                    group, errors = [], []
                group.append((paths[i], array))
                if len(group) == batch_size:
                    yield _batch(group, errors)
                    group, errors = [], []
            i += 1
        if group or errors:
            yield _batch(group, errors)


def _batch(group: list[tuple[Path, np.ndarray]], errors: list[str]):
    if not group:
        return [], None, errors
    batch = np.stack([a for _, a in group]).transpose(0, 3, 1, 2)
    return [p for p, _ in group], np.ascontiguousarray(batch), errors


__all__ = ["list_pairs", "load_satellite_split", "warn_red", "mask_name", "list_sat_images",
           "iter_image_batches"]
