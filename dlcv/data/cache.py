"""Decode-once caches: a folder of image files becomes one uint8 .npy array on disk.

The first run decodes every file (in parallel threads) and writes `<cache_dir>/<name>-<key>.npy`;
later runs memory-map that file, so epochs never re-read PNG/JPEG files and a big set (Office,
mini, satellite) costs no RAM until it is touched. The key hashes the file names, sizes and
modification times and the decoding parameters, so a changed file or setting rebuilds the cache.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from dlcv.io import atomic_path

# Arrays smaller than this are read fully into RAM (faster fancy indexing); larger ones are mapped.
MMAP_THRESHOLD_BYTES = 512 * 2**20


def cache_dir(cfg) -> str:
    """Where a run's decode-once caches live: data.cache_dir, else <data.root>/.dlcv_cache (beside
    the data, so every run on the same folder shares them)."""
    return cfg.data.cache_dir or str(Path(cfg.data.root) / ".dlcv_cache")


def fingerprint(files: Sequence[Path], params: dict) -> str:
    h = hashlib.sha1(json.dumps(params, sort_keys=True, default=str).encode())
    for f in files:
        st = f.stat()
        h.update(f"{f.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def cached_array(cache_dir: str | Path | None, name: str, files: Sequence[Path], params: dict,
                 build: Callable[[], np.ndarray]) -> np.ndarray:
    """Return build() (an array), from the cache when its key matches, else built and stored.

    cache_dir None or "" disables the cache (build every time).
    """
    if not cache_dir:
        return build()
    cache_dir = Path(cache_dir)
    path = cache_dir / f"{name}-{fingerprint(files, params)}.npy"
    if path.is_file():
        try:
            return _load(path)
        except (ValueError, OSError):  # a damaged cache file is rebuilt, never trusted
            path.unlink(missing_ok=True)
    array = build()
    try:
        for stale in cache_dir.glob(f"{name}-*.npy"):  # one version per set keeps the disk tidy
            stale.unlink(missing_ok=True)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, array)
    except OSError:
        pass  # a read-only data folder just means no cache: the array is still returned
    return array


def _load(path: Path) -> np.ndarray:
    if path.stat().st_size > MMAP_THRESHOLD_BYTES:
        return np.load(path, mmap_mode="r")
    return np.load(path)
