"""``dlcv score-masks``: the official mIoU of a folder of predicted masks against the ground truth.

Start-up matters here (a student runs it after every prediction), so this path imports NumPy and
Pillow only, never torch (tests check it): the whole process on 257 masks of 512x512 takes about
1 s on 2 CPU cores, where the course's ``mean_iou_evaluate.py`` takes 8-10 s (``dlcv bench --jobs
cli`` measures both on the same files).

How: each pair of PNGs is decoded on a pool of threads (Pillow releases the GIL while it inflates a
PNG and in ``point``/``convert``), each image becomes its uint8 colour codes ``4R + 2G + B`` (each
channel binarised at ``>= 128``, the rule of :mod:`dlcv.data.masks`), the pair is counted by the
product's one kernel (:func:`dlcv.seg_iou.pair_histogram_numpy`, 8x8 colour-code pairs) and the
summed counts are folded into the 7x7 class matrix (:func:`dlcv.seg_iou.fold_code_histogram`; red,
code 4, is unknown and warned about per file, as :func:`dlcv.data.masks.read_mask` does).
8-bit RGB PNGs (what every tool writes) take the fast path; any other mode (palette, grayscale,
16-bit, alpha) and any unreadable file go through :func:`dlcv.data.images.read_rgb`, exactly as
``read_mask`` reads them, so one file never means two things.

The metric itself (official rule, absent classes, ``miou_official``) is :mod:`dlcv.seg_iou`.
"""
from __future__ import annotations

import argparse
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from dlcv.data.images import read_rgb
from dlcv.data.masks import RED_CODE, colour_codes, warn_red
from dlcv.errors import DataError
from dlcv.seg_iou import NUM_CODES, fold_code_histogram, format_iou_table, iou_from_confusion, pair_histogram_numpy

MASK_SUFFIX = "_mask.png"

# Pillow's per-band lookup table (R, G, B bands of 256 entries each): a channel >= 128 becomes its
# bit of the code (4, 2, 1); the "L" conversion with matrix (1, 1, 1, 0) then sums the three bands
# (small integers: exact), giving code = 4R + 2G + B in one uint8 plane, all in C without the GIL.
_BIT_LUT = [0] * 128 + [4] * 128 + [0] * 128 + [2] * 128 + [0] * 128 + [1] * 128
_SUM_BANDS = (1.0, 1.0, 1.0, 0.0)


def read_codes(path: str | Path) -> np.ndarray:
    """A mask PNG as (H,W) uint8 colour codes 0..7 (class = ``dlcv.data.masks.CODE_TO_CLASS[code]``).

    8-bit RGB: decoded and coded by Pillow (fast path). Anything else, or a file Pillow cannot read:
    ``read_rgb(path, alpha="ignore")``, as :func:`dlcv.data.masks.read_mask` reads it, with its
    ``DataError`` (prefixed "mask ", as read_mask's) naming the file."""
    try:
        with Image.open(path) as img:
            limit = Image.MAX_IMAGE_PIXELS  # beyond it read_rgb refuses the file: let it say so
            if img.mode == "RGB" and (limit is None or img.width * img.height <= limit):
                img.load()
                return np.asarray(img.point(_BIT_LUT).convert("L", _SUM_BANDS))
    except Exception:  # noqa: BLE001, S110 -- every failure is reported by the reader below, naming the file
        pass
    try:
        rgb = read_rgb(path, alpha="ignore")
    except DataError as exc:
        raise DataError(f"mask {exc}") from None
    return colour_codes(rgb)


def _list_masks(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise FileNotFoundError(f"not a folder: {folder}")
    with os.scandir(folder) as entries:
        return {e.name: Path(e.path) for e in entries if e.name.endswith(MASK_SUFFIX) and e.is_file()}


def _show(names: list[str], limit: int = 10) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... (+{len(names) - limit} more)" if len(names) > limit else "")


def default_threads() -> int:
    """Decoding threads: the usable CPUs plus one (a thread waiting on the GIL or the disk leaves a
    core idle otherwise), at most 8."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(8, usable + 1))


def _count_pair(pred_path: Path, gt_path: Path) -> np.ndarray:
    """8x8 int64 counts of (truth code, predicted code) of one pair of files."""
    gt = read_codes(gt_path)
    pred = read_codes(pred_path)
    if gt.shape != pred.shape:
        raise ValueError(f"{gt_path.name}: prediction is {pred.shape[1]}x{pred.shape[0]} (WxH) but the ground truth "
                         f"is {gt.shape[1]}x{gt.shape[0]}")
    return pair_histogram_numpy(gt, pred, NUM_CODES)


def score_folders(pred_dir: str | Path, gt_dir: str | Path, warn: bool = True, threads: int = 0) -> dict:
    """Official mIoU of the ``*_mask.png`` files in ``pred_dir`` against those in ``gt_dir``.

    Files are paired by name; if the two sets of names differ, a ``ValueError`` lists the files
    missing from the prediction folder and the extra ones in it (first 10 of each, with counts).
    Other files (e.g. ``*_sat.jpg`` beside the ground truth) are ignored. Each pair must have the
    same size (else ``ValueError`` naming the file; an unreadable PNG is a ``DataError``, the first
    in name order is raised). Red pixels (code 4) count as unknown, with one warning per file when
    ``warn``. ``threads``: decoding threads (0: :func:`default_threads`; 1: in this thread).
    Returns :func:`dlcv.seg_iou.iou_from_confusion` of the accumulated matrix, plus ``num_files``.
    """
    pred_dir, gt_dir = Path(pred_dir), Path(gt_dir)
    preds, gts = _list_masks(pred_dir), _list_masks(gt_dir)
    if not gts:
        raise ValueError(f"no *{MASK_SUFFIX} files in the ground-truth folder {gt_dir}")
    missing = sorted(set(gts) - set(preds))
    extra = sorted(set(preds) - set(gts))
    if missing or extra:
        lines = [f"prediction folder {pred_dir} does not match ground-truth folder {gt_dir} "
                 f"({len(preds)} vs {len(gts)} *{MASK_SUFFIX} files):"]
        if missing:
            lines.append(f"  missing {len(missing)} (in ground truth, not predicted): {_show(missing)}")
        if extra:
            lines.append(f"  extra {len(extra)} (predicted, no ground truth): {_show(extra)}")
        raise ValueError("\n".join(lines))

    names = sorted(gts)
    threads = threads or default_threads()
    if threads <= 1 or len(names) < 4:
        counts = [_count_pair(preds[n], gts[n]) for n in names]
    else:
        pool = ThreadPoolExecutor(min(threads, len(names)), thread_name_prefix="score-masks")
        try:
            counts = list(pool.map(_count_pair, [preds[n] for n in names], [gts[n] for n in names]))
        finally:
            pool.shutdown(wait=True, cancel_futures=True)  # on an error, the files not started are skipped

    total = np.zeros((NUM_CODES, NUM_CODES), dtype=np.int64)
    for name, h in zip(names, counts):
        total += h
        if warn:  # in name order, truth before prediction, as read_mask would warn
            for path, n_red in ((gts[name], int(h[RED_CODE, :].sum())), (preds[name], int(h[:, RED_CODE].sum()))):
                if n_red:
                    warn_red(path, n_red)
    result = iou_from_confusion(fold_code_histogram(total))
    result["num_files"] = len(names)
    return result


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """Arguments of ``dlcv score-masks`` / ``python -m dlcv.score_masks``."""
    ap.add_argument("pred_dir", nargs="?", help="folder of predicted *_mask.png")
    ap.add_argument("gt_dir", nargs="?", help="folder of ground-truth *_mask.png")
    ap.add_argument("-p", "--pred", help="same as PRED_DIR (the official script's flag)")
    ap.add_argument("-g", "--labels", help="same as GT_DIR (the official script's flag)")
    ap.add_argument("--out", help="also write metrics.json and iou.md into this folder")
    ap.add_argument("--threads", type=int, default=0,
                    help="decoding threads (default: usable CPUs + 1, at most 8; 1 = no pool)")


def run(args: argparse.Namespace) -> int:
    """Score a prediction folder; 0 on success, 2 (with the reason on stderr) on bad input."""
    pred = args.pred or args.pred_dir
    gt = args.labels or args.gt_dir
    if not pred or not gt:
        print("error: give the prediction and ground-truth folders (PRED_DIR GT_DIR, or -p PRED -g GT)",
              file=sys.stderr)
        return 2
    try:
        result = score_folders(pred, gt, threads=getattr(args, "threads", 0) or 0)
    except (ValueError, FileNotFoundError) as exc:  # DataError (an unreadable PNG) is a ValueError
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_iou_table(result))
    if getattr(args, "out", None):
        from dlcv.seg_iou import write_iou_report

        write_iou_report(args.out, result, f"{pred} vs {gt}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m dlcv.score_masks",
                                 description="Official P3 mean IoU of a prediction folder against a ground-truth folder")
    add_arguments(ap)
    return run(ap.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
