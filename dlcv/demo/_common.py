"""Shared helpers of the demo-data generator: per-item seeding, file writing, the process pool."""
from __future__ import annotations

import csv
import io
import multiprocessing as mp
import os
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
from PIL import Image

# stream ids mixed into every seed so each problem/split/item has its own independent generator
STREAMS = {"p1": 1, "p2": 2, "p3": 3}
SPLITS = {"train": 1, "val": 2, "test": 3, "mini": 4, "plan": 9}


def item_rng(seed: int, problem: str, split: str, index: int) -> np.random.Generator:
    """The generator of one item; independent of worker count and of the other items."""
    return np.random.default_rng([int(seed), STREAMS[problem], SPLITS[split], int(index)])


def save_png(path: Path, rgb: np.ndarray) -> None:
    Image.fromarray(rgb).save(path, format="PNG")


def save_jpg(path: Path, rgb: np.ndarray, quality: int = 90) -> None:
    # fixed encoder settings: identical pixels give identical bytes
    Image.fromarray(rgb).save(path, format="JPEG", quality=int(quality), subsampling=2, optimize=False)


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence]) -> None:
    """Write a CSV atomically (temp file beside it, then os.replace); '\\n' line ends."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    write_text_atomic(path, buf.getvalue())


def write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


Job = tuple[Callable, tuple]


def _run_chunk(job: Job) -> int:
    fn, args = job
    return fn(*args)


def run_jobs(jobs: list[Job], workers: int | None) -> None:
    """Run picklable (function, args) jobs, in a process pool when that pays off.

    Each job renders and writes its own files, so only small specs cross process boundaries.
    workers: None -> all CPUs (at most 8); 0 or 1 -> in this process.
    """
    if workers is None:
        workers = min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    if workers <= 1 or len(jobs) <= 1 or mp.current_process().daemon:  # daemons may not have children
        for job in jobs:
            _run_chunk(job)
        return
    methods = mp.get_all_start_methods()
    # fork: workers need no re-import of the caller's __main__ (scripts without a main guard work);
    # they only use numpy and PIL, never a lock another thread of the parent might hold.
    ctx = mp.get_context("fork" if "fork" in methods else None)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*fork.*", category=DeprecationWarning)
        with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=ctx) as pool:
            for _ in pool.map(_run_chunk, jobs):
                pass


def chunked(items: list, size: int) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), size)]
