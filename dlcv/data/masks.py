"""The P3 segmentation-mask colour codec, following the official HW1 rule exactly.

Official rule (the course's ``read_masks``/``mean_iou_evaluate.py``): each RGB channel is binarised
at ``>= 128``, ``code = 4R + 2G + B``, then

====  ===========  ===============  ====
id    name         RGB              code
====  ===========  ===============  ====
0     urban        (0,255,255)      3
1     agriculture  (255,255,0)      6
2     rangeland    (255,0,255)      5
3     forest       (0,255,0)        2
4     water        (0,0,255)        1
5     barren       (255,255,255)    7
6     unknown      (0,0,0)          0
====  ===========  ===============  ====

Code 4 (pure red after binarisation) is no class in the official tools (their arrays keep whatever
was there before, i.e. garbage). This codec decides: **red is unknown (6)**, and it reports how many
pixels were red so a reader can warn once per file (:func:`read_mask` does).
"""
from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from dlcv.data.images import read_rgb
from dlcv.errors import DataError

CLASS_NAMES: tuple[str, ...] = ("urban", "agriculture", "rangeland", "forest", "water", "barren", "unknown")
CLASS_COLORS: np.ndarray = np.array(
    [
        [0, 255, 255],    # 0 urban       cyan
        [255, 255, 0],    # 1 agriculture yellow
        [255, 0, 255],    # 2 rangeland   magenta
        [0, 255, 0],      # 3 forest      green
        [0, 0, 255],      # 4 water       blue
        [255, 255, 255],  # 5 barren      white
        [0, 0, 0],        # 6 unknown     black
    ],
    dtype=np.uint8,
)
CLASS_COLORS.setflags(write=False)
UNKNOWN = 6
NUM_CLASSES = 7
EVAL_CLASSES = 6  # classes 0..5 enter the mean IoU
RED_CODE = 4

# code (4R + 2G + B) -> class id; code 4 (red) -> unknown by this product's decision
CODE_TO_CLASS: np.ndarray = np.array([6, 4, 3, 0, UNKNOWN, 2, 1, 5], dtype=np.uint8)
CODE_TO_CLASS.setflags(write=False)


def colour_codes(rgb: np.ndarray) -> np.ndarray:
    """(H,W,3) uint8 RGB -> (H,W) uint8 colour codes 4R + 2G + B, each channel binarised at >= 128."""
    bits = np.asarray(rgb) >> 7
    return (bits[..., 0] << 2) | (bits[..., 1] << 1) | bits[..., 2]


def warn_red(path: str | Path, n_red: int, stacklevel: int = 3) -> None:
    """The one warning of a mask file holding red (code 4) pixels, which are read as unknown."""
    warnings.warn(f"{path}: {int(n_red)} red pixel(s) (code 4, no class in the official tools) read as "
                  f"unknown ({UNKNOWN})", stacklevel=stacklevel)


def decode_mask(rgb: np.ndarray) -> tuple[np.ndarray, int]:
    """(H,W,3) uint8 RGB -> ((H,W) uint8 class ids 0..6, number of red (code 4) pixels)."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"decode_mask expects an (H,W,3) array, got shape {rgb.shape}")
    code = colour_codes(rgb.astype(np.uint8, copy=False))
    n_red = int(np.count_nonzero(code == RED_CODE))
    return CODE_TO_CLASS[code], n_red


def encode_mask(classes: np.ndarray) -> np.ndarray:
    """(H,W) integer class ids 0..6 -> (H,W,3) uint8 in the legal colours; other values: ValueError."""
    classes = np.asarray(classes)
    if classes.ndim != 2:
        raise ValueError(f"encode_mask expects an (H,W) array, got shape {classes.shape}")
    if not np.issubdtype(classes.dtype, np.integer):
        if np.issubdtype(classes.dtype, np.bool_):
            classes = classes.astype(np.uint8)
        else:
            raise ValueError(f"encode_mask expects integer class ids, got dtype {classes.dtype}")
    bad = (classes < 0) | (classes >= NUM_CLASSES)
    if bad.any():
        values = np.unique(classes[bad])
        shown = ", ".join(str(int(v)) for v in values[:10]) + (", ..." if len(values) > 10 else "")
        raise ValueError(f"class ids must be in 0..{NUM_CLASSES - 1}; found {shown}")
    return CLASS_COLORS[classes.astype(np.intp)]


def read_mask(path: str | Path, warn: bool = True) -> np.ndarray:
    """Read a mask PNG as (H,W) uint8 class ids; red pixels become unknown (warns once per file).

    Any PIL mode is accepted and decoded exactly as the training reader (dlcv.data.satellite)
    decodes masks, so one file never means two things: palette/grayscale -> their RGB colours,
    16-bit -> scaled to 8 bits, alpha ignored (the official tool reads only R, G, B)."""
    path = Path(path)
    try:
        rgb = read_rgb(path, alpha="ignore")
    except DataError as exc:
        raise DataError(f"mask {exc}") from None
    classes, n_red = decode_mask(rgb)
    if n_red and warn:
        warn_red(path, n_red)
    return classes


def write_mask(path: str | Path, classes: np.ndarray) -> None:
    """Write class ids as an 8-bit RGB PNG in the legal colours, atomically (temp file + os.replace)."""
    path = Path(path)
    rgb = encode_mask(classes)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            Image.fromarray(rgb).save(fh, format="PNG")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
