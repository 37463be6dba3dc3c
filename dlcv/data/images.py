"""Decoding one image file into an RGB uint8 array, with errors that name the file.

PIL is used (not torchvision.io) because it handles every mode the HW1 folders may hold:
grayscale, RGBA, palette, 16-bit PNGs and CMYK JPEGs all become 8-bit RGB here.
"""
from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
from PIL import Image

from dlcv.errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")




def _to_rgb(img: Image.Image, alpha: str = "composite") -> Image.Image:
    """8-bit RGB of any PIL mode. alpha="composite": transparent pixels become black (images);
    alpha="ignore": the colour channels as stored, alpha dropped (masks: the official
    mean_iou_evaluate.py reads only R, G, B, so a mask must decode the same way here)."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16/32-bit grayscale: PIL's convert("RGB") would clip at 255; scale to 8 bits instead.
        arr = np.asarray(img, dtype=np.uint32)
        peak = 65535 if img.mode.startswith("I;16") or arr.max() > 255 else 255
        arr8 = (arr * 255 // peak).astype(np.uint8)
        return Image.fromarray(arr8, "L").convert("RGB")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        # composite on black, the colour of padding everywhere else in the pipeline
        img = img.convert("RGBA")
        if alpha == "ignore":
            return img.convert("RGB")
        background = Image.new("RGBA", img.size, (0, 0, 0, 255))
        return Image.alpha_composite(background, img).convert("RGB")
    return img.convert("RGB")


def read_rgb(path: str | Path, size: Optional[tuple[int, int]] = None,
             resize: Optional[Callable[[Image.Image], Image.Image]] = None, alpha: str = "composite") -> np.ndarray:
    """Read `path` as an HxWx3 uint8 RGB array.

    size: if given, the image must be exactly (width, height), else DataError.
    resize: optional PIL -> PIL function applied after conversion (e.g. resize + center crop).
    alpha: "composite" (on black; images) or "ignore" (masks), see _to_rgb.
    """
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img.load()
                rgb = _to_rgb(img, alpha)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombWarning) as exc:
        if path.exists() and path.stat().st_size == 0:
            raise DataError(f"{path}: empty file (0 bytes)") from None
        raise DataError(f"{path}: not a readable image ({exc.__class__.__name__}: {exc})") from None
    if size is not None and rgb.size != tuple(size):
        raise DataError(f"{path}: expected {size[0]}x{size[1]} pixels, found {rgb.size[0]}x{rgb.size[1]}")
    if resize is not None:
        rgb = resize(rgb)
    return np.asarray(rgb, dtype=np.uint8)


def resize_center_crop(side: int) -> Callable[[Image.Image], Image.Image]:
    """torchvision's Resize(side) + CenterCrop(side) on a PIL image (shorter side to `side`)."""

    def apply(img: Image.Image) -> Image.Image:
        w, h = img.size
        if (w, h) != (side, side):
            scale = side / min(w, h)
            nw, nh = max(side, round(w * scale)), max(side, round(h * scale))
            img = img.resize((nw, nh), Image.BILINEAR, reducing_gap=None)
            left, top = (nw - side) // 2, (nh - side) // 2
            img = img.crop((left, top, left + side, top + side))
        return img

    return apply


def read_many(paths: Sequence[Path], reader: Callable[[Path], np.ndarray], threads: int = 0,
              on_error: str = "raise") -> tuple[list[Optional[np.ndarray]], list[str]]:
    """Decode many files with a thread pool (PIL releases the GIL while decoding).

    on_error="raise": the first bad file raises its DataError; "collect": bad files give None and
    their messages are returned, so a caller can still handle every readable file.
    """
    import os

    threads = threads or min(8, os.cpu_count() or 1)
    errors: list[str] = []

    def one(p: Path) -> Optional[np.ndarray]:
        try:
            return reader(p)
        except DataError as exc:
            if on_error == "raise":
                raise
            errors.append(str(exc))
            return None

    if threads == 1 or len(paths) < 64:
        arrays = [one(p) for p in paths]
    else:
        with ThreadPoolExecutor(threads) as pool:
            arrays = list(pool.map(one, paths, chunksize=64))
    return arrays, errors


def list_images(folder: str | Path, suffixes: Sequence[str] = IMAGE_EXTENSIONS) -> list[Path]:
    """Sorted image files of a folder; a missing or empty folder is a DataError."""
    folder = Path(folder)
    if not folder.exists():
        raise DataError(f"{folder}: folder not found")
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in suffixes
                   and not p.name.startswith("."))
    if not files:
        raise DataError(f"{folder}: no images ({', '.join(suffixes)}) in this folder")
    return files
