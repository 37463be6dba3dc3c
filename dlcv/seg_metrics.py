"""The official P3 metric: mean IoU over classes 0..5 from one 7x7 confusion matrix.

Official rule (the course's ``mean_iou_evaluate.py``, reproduced exactly)
------------------------------------------------------------------------
Over the whole evaluated set at once, for each class ``i`` in 0..5::

    P_i  = pixels predicted i   (over ALL pixels, including pixels whose truth is unknown)
    G_i  = pixels labelled i    (including pixels predicted unknown)
    TP_i = pixels predicted i AND labelled i
    IoU_i = TP_i / (P_i + G_i - TP_i)
    mIoU  = mean of the six IoU_i

Class 6 (unknown) is left out of the mean but is NOT an ignore index: predicting a real class on
an unknown pixel is a false positive of that class, and predicting unknown on a real pixel is a
false negative of the real class. In confusion-matrix form (rows = truth, cols = prediction)::

    TP_i = cm[i, i],  P_i = cm[:, i].sum(),  G_i = cm[i, :].sum()

What the official script does, line by line (so that ``miou_official`` below is the number it
prints, bit for bit)::

    mean_iou = 0
    for i in range(6):
        tp_fp = np.sum(pred == i)                       # numpy int64
        tp_fn = np.sum(labels == i)                     # numpy int64
        tp = np.sum((pred == i) * (labels == i))        # numpy int64
        iou = tp / (tp_fp + tp_fn - tp)                 # np.float64 true division
        mean_iou += iou / 6
        print('class #%d : %1.5f' % (i, iou))
    print('\\nmean_iou: %f\\n' % mean_iou)

A class absent from BOTH the prediction and the truth has ``P_i + G_i - TP_i == 0``; numpy
int64 ``0 / 0`` does not raise but returns ``nan`` with ``RuntimeWarning: invalid value encountered
in scalar divide`` (``double_scalars`` in numpy < 1.25); ``nan / 6`` is ``nan``, so the running
``mean_iou`` becomes ``nan`` and the script prints ``class #i : nan`` and ``mean_iou: nan``. It
does not crash and it does not skip the class. A class present only in the prediction (or only in
the truth) is not special: its IoU is 0 and it still counts as 1/6 of the mean.

This module reports both:

* ``miou_official``: exactly that value (``nan`` as soon as any of the six classes is absent),
  summed in the same order (``0 + iou_0/6 + ... + iou_5/6``) so it equals the script's float.
* ``miou``: the mean over the *present* classes (absent ones flagged ``absent=True`` with IoU
  ``None``), which is the useful number on a small batch or a subset; when all six classes are
  present (always the case on the real validation set) it is identical to ``miou_official``.

Other differences from the official script, all deliberate: files are paired by NAME, not by
sorted position (a missing file in the official tool silently shifts every later pair); any image
size is accepted as long as the two masks of a pair agree (the official one assumes 512x512);
colours are decoded by :func:`dlcv.data.masks.read_mask`, which reads undefined red pixels
(code 4) as unknown and warns, where the official ``np.empty`` array keeps uninitialised values.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torchmetrics import Metric

from dlcv.data.masks import CLASS_NAMES, EVAL_CLASSES, NUM_CLASSES, read_mask

MASK_SUFFIX = "_mask.png"


def _check_range(name: str, t: torch.Tensor) -> None:
    if t.numel() == 0:
        return
    lo, hi = torch.aminmax(t)
    lo, hi = int(lo), int(hi)
    if lo < 0 or hi >= NUM_CLASSES:
        bad = t[(t < 0) | (t >= NUM_CLASSES)]
        values = torch.unique(bad)[:10].tolist()
        raise ValueError(f"{name} holds values outside 0..{NUM_CLASSES - 1}: {values}"
                         f"{' ...' if torch.unique(bad).numel() > 10 else ''} ({bad.numel()} pixel(s))")


def _flat_ids(t: torch.Tensor, device) -> torch.Tensor:
    """Class ids as a flat tensor on `device`, in their own integer dtype (bool as uint8)."""
    t = t.to(device=device).reshape(-1)
    return t.to(torch.uint8) if t.dtype == torch.bool else t


class ConfusionMatrix(Metric):
    """7x7 pixel confusion matrix (rows = truth, cols = prediction), summed across DDP ranks.

    ``update(pred, target)``: integer tensors of the same shape (any shape, e.g. (N,H,W)) holding
    class ids 0..6; ``pred`` may also be scores of shape (N,7,...) with ``target`` (N,...), in which
    case the arg-max over dim 1 is taken. Values outside 0..6 raise ``ValueError``; no ignore index
    exists (unknown = 6 is an ordinary row/column, exactly like the official metric).

    ``compute()`` returns the (7,7) int64 matrix, all-reduced (sum) over processes under DDP.
    ``compute_iou()`` returns :func:`iou_from_confusion` of it.
    """

    is_differentiable = False
    higher_is_better = None
    full_state_update = False

    confmat: torch.Tensor

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("confmat", default=torch.zeros(NUM_CLASSES, NUM_CLASSES, dtype=torch.long),
                       dist_reduce_fx="sum")

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:  # type: ignore[override]
        pred = torch.as_tensor(pred)
        target = torch.as_tensor(target)
        if pred.is_floating_point() and pred.ndim == target.ndim + 1 and pred.shape[1] == NUM_CLASSES:
            pred = pred.argmax(dim=1)
        if pred.is_floating_point() or pred.is_complex() or target.is_floating_point() or target.is_complex():
            raise TypeError(f"ConfusionMatrix.update expects integer class ids, got pred {pred.dtype}, "
                            f"target {target.dtype}")
        if pred.shape != target.shape:
            raise ValueError(f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
        pred = _flat_ids(pred, self.confmat.device)
        target = _flat_ids(target, self.confmat.device)
        _check_range("pred", pred)
        _check_range("target", target)
        # In range, every code target * 7 + pred is < 49: uint8 arithmetic moves 1 byte per pixel
        # instead of 8 (int64) and bincount counts the bytes directly; about 3x faster on a CPU
        # (`dlcv bench`, miou section).
        codes = target.to(torch.uint8) * NUM_CLASSES + pred.to(torch.uint8)
        counts = torch.bincount(codes, minlength=NUM_CLASSES * NUM_CLASSES)
        self.confmat += counts.reshape(NUM_CLASSES, NUM_CLASSES)

    def compute(self) -> torch.Tensor:
        return self.confmat.clone()

    def compute_iou(self) -> dict:
        return iou_from_confusion(self.compute())


def iou_from_confusion(cm: np.ndarray | torch.Tensor, class_names: Sequence[str] = CLASS_NAMES) -> dict:
    """Per-class IoU (classes 0..5) and the mean from a 7x7 confusion matrix (rows = truth).

    Returns a dict:

    * ``per_class``: list of 6 dicts ``{"class", "name", "iou", "tp", "pred", "gt", "union",
      "absent"}`` where ``pred`` = P_i, ``gt`` = G_i, ``union`` = P_i + G_i - TP_i, and for a class
      absent from both prediction and truth (``union == 0``) ``iou`` is ``None`` and ``absent`` True.
    * ``iou``: the 6 IoUs as floats, ``nan`` for absent classes.
    * ``miou``: mean over the present classes (``nan`` if none is present); equal, bit for bit, to
      ``miou_official`` when all six are present.
    * ``miou_official``: what ``mean_iou_evaluate.py`` prints: ``sum(iou_i / 6)`` with ``0/0 -> nan``,
      hence ``nan`` whenever any class is absent (see the module docstring).
    * ``absent_classes``, ``present_classes``: lists of class ids.
    * ``confusion``: the matrix as an int64 numpy array; ``num_pixels``: its sum.
    """
    if isinstance(cm, torch.Tensor):
        cm = cm.detach().cpu().numpy()
    cm = np.asarray(cm)
    if cm.shape != (NUM_CLASSES, NUM_CLASSES):
        raise ValueError(f"confusion matrix must be {NUM_CLASSES}x{NUM_CLASSES}, got {cm.shape}")
    if np.issubdtype(cm.dtype, np.floating):
        if not np.all(np.isfinite(cm)) or not np.all(cm == np.round(cm)):
            raise ValueError("confusion matrix must hold integer counts")
    if (cm < 0).any():
        raise ValueError("confusion matrix holds negative counts")
    cm = cm.astype(np.int64)

    per_class = []
    ious: list[float] = []
    miou_official = 0  # the official script starts from the Python int 0 and adds iou / 6
    present: list[int] = []
    absent: list[int] = []
    for i in range(EVAL_CLASSES):
        tp = int(cm[i, i])
        p = int(cm[:, i].sum())
        g = int(cm[i, :].sum())
        union = p + g - tp
        if union == 0:
            iou = math.nan  # numpy: int64 0 / 0 -> nan (+ RuntimeWarning) in the official script
            absent.append(i)
        else:
            iou = tp / union  # Python float true division == np.float64(tp) / np.float64(union)
            present.append(i)
        ious.append(iou)
        miou_official = miou_official + iou / 6
        per_class.append({"class": i, "name": class_names[i], "iou": None if union == 0 else iou,
                          "tp": tp, "pred": p, "gt": g, "union": union, "absent": union == 0})

    if not present:
        miou = math.nan
    elif len(present) == EVAL_CLASSES:
        miou = float(miou_official)
    else:  # same accumulation pattern as the official script, divided by the present count
        k = len(present)
        miou = 0.0
        for i in present:
            miou += ious[i] / k
    return {
        "per_class": per_class,
        "iou": ious,
        "miou": float(miou),
        "miou_official": float(miou_official),
        "present_classes": present,
        "absent_classes": absent,
        "confusion": cm,
        "num_pixels": int(cm.sum()),
    }


def official_mean_iou(pred: np.ndarray, labels: np.ndarray) -> float:
    """The official ``mean_iou_score`` on two class-id arrays, computed via the confusion matrix."""
    pred = np.asarray(pred)
    labels = np.asarray(labels)
    if pred.shape != labels.shape:
        raise ValueError(f"pred and labels shapes differ: {pred.shape} vs {labels.shape}")
    return iou_from_confusion(confusion_numpy(pred, labels))["miou_official"]


def confusion_numpy(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """7x7 int64 confusion matrix (rows = truth) of two integer arrays of the same shape."""
    pred = np.asarray(pred)
    target = np.asarray(target)
    if pred.shape != target.shape:
        raise ValueError(f"pred and target shapes differ: {pred.shape} vs {target.shape}")
    for name, a in (("pred", pred), ("target", target)):
        if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.bool_)):
            raise TypeError(f"{name} must hold integer class ids, got dtype {a.dtype}")
        if a.size and (a.min() < 0 or a.max() >= NUM_CLASSES):
            bad = np.unique(a[(a < 0) | (a >= NUM_CLASSES)])
            raise ValueError(f"{name} holds values outside 0..{NUM_CLASSES - 1}: {bad[:10].tolist()}")
    # in range, target * 7 + pred < 49 fits a byte (see ConfusionMatrix.update)
    idx = target.astype(np.uint8).ravel() * np.uint8(NUM_CLASSES) + pred.astype(np.uint8).ravel()
    return np.bincount(idx, minlength=NUM_CLASSES * NUM_CLASSES).reshape(NUM_CLASSES, NUM_CLASSES)


def _list_masks(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise FileNotFoundError(f"not a folder: {folder}")
    return {p.name: p for p in folder.iterdir() if p.name.endswith(MASK_SUFFIX) and p.is_file()}


def _show(names: list[str], limit: int = 10) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... (+{len(names) - limit} more)" if len(names) > limit else "")


def score_folders(pred_dir: str | Path, gt_dir: str | Path, warn: bool = True) -> dict:
    """Official mIoU of the ``*_mask.png`` files in ``pred_dir`` against those in ``gt_dir``.

    Files are paired by name; if the two sets of names differ, a ``ValueError`` lists the files
    missing from the prediction folder and the extra ones in it (first 10 of each, with counts).
    Other files (e.g. ``*_sat.jpg`` beside the ground truth) are ignored. Each pair must have the
    same size. Returns :func:`iou_from_confusion` of the accumulated matrix, plus ``num_files``.
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

    cm = np.zeros(NUM_CLASSES * NUM_CLASSES, dtype=np.int64)
    for name in sorted(gts):
        gt = read_mask(gts[name], warn=warn)
        pred = read_mask(preds[name], warn=warn)
        if gt.shape != pred.shape:
            raise ValueError(f"{name}: prediction is {pred.shape[1]}x{pred.shape[0]} (WxH) but the ground truth "
                             f"is {gt.shape[1]}x{gt.shape[0]}")
        idx = gt.astype(np.intp).ravel() * NUM_CLASSES + pred.astype(np.intp).ravel()
        counts = np.bincount(idx, minlength=NUM_CLASSES * NUM_CLASSES)
        if counts.size != NUM_CLASSES * NUM_CLASSES:
            raise ValueError(f"{name}: decoded class ids outside 0..{NUM_CLASSES - 1}")
        cm += counts
    result = iou_from_confusion(cm.reshape(NUM_CLASSES, NUM_CLASSES))
    result["num_files"] = len(gts)
    return result


def format_iou_table(result: dict) -> str:
    """Plain-text table: class, name, IoU, TP, P (predicted), G (labelled); absent classes marked."""
    rows = [f"{'class':<16} {'IoU':>8} {'TP':>12} {'P (pred)':>12} {'G (truth)':>12}"]
    for c in result["per_class"]:
        iou = "absent" if c["absent"] else f"{c['iou']:.4f}"
        rows.append(f"{c['class']} {c['name']:<14} {iou:>8} {c['tp']:>12d} {c['pred']:>12d} {c['gt']:>12d}")
    rows.append("-" * len(rows[0]))
    absent = result["absent_classes"]
    n_present = len(result["present_classes"])
    miou = result["miou"]
    if absent:
        names = ", ".join(f"{c['class']} {c['name']}" for c in result["per_class"] if c["absent"])
        rows.append(f"mIoU over the {n_present} present classes: {miou:.4f}   (absent from prediction and "
                    f"truth: {names})")
        rows.append("official mean_iou_evaluate.py would print: nan (0/0 for the absent class)")
    else:
        rows.append(f"mIoU (6 classes, official): {miou:.6f}")
    if "num_files" in result:
        rows.append(f"{result['num_files']} file(s), {result['num_pixels']} pixels")
    return "\n".join(rows)


def iou_markdown(result: dict, title: str = "") -> str:
    """The per-class IoU table as Markdown (absent classes marked, both means explained)."""
    lines = [f"# {title}", ""] if title else []
    lines += ["| class | name | IoU | TP | P (pred) | G (truth) |", "|---:|---|---:|---:|---:|---:|"]
    for c in result["per_class"]:
        iou = "absent" if c["absent"] else f"{c['iou']:.4f}"
        lines.append(f"| {c['class']} | {c['name']} | {iou} | {c['tp']} | {c['pred']} | {c['gt']} |")
    lines.append("")
    if result["absent_classes"]:
        names = ", ".join(f"{c['class']} {c['name']}" for c in result["per_class"] if c["absent"])
        lines.append(f"**mIoU over the {len(result['present_classes'])} present classes: {result['miou']:.4f}** "
                     f"(absent from prediction and truth: {names}; the official mean_iou_evaluate.py would "
                     f"print nan)")
    else:
        lines.append(f"**mIoU (6 classes, official rule): {result['miou']:.4f}**")
    lines.append("")
    lines.append(f"{result['num_pixels']} pixels" + (f" in {result['num_files']} file(s)" if "num_files" in result else ""))
    return "\n".join(lines) + "\n"


def write_iou_report(out_dir: str | Path, result: dict, title: str, extra: dict | None = None) -> dict:
    """``metrics.json`` (IoUs, both means, the 7x7 confusion matrix) and ``iou.md`` in out_dir.

    JSON has no NaN: absent classes have ``"iou": null`` and a NaN mean is written as null."""
    import json

    from dlcv.io import write_text

    out_dir = Path(out_dir)

    def finite(v: float):
        return None if v is None or (isinstance(v, float) and math.isnan(v)) else v

    payload = {
        "title": title,
        "miou": finite(result["miou"]),
        "miou_official": finite(result["miou_official"]),
        "per_class": result["per_class"],
        "present_classes": result["present_classes"],
        "absent_classes": result["absent_classes"],
        "num_pixels": result["num_pixels"],
        "confusion": np.asarray(result["confusion"]).tolist(),
        "confusion_axes": "rows = ground truth class 0..6, columns = predicted class 0..6",
        "class_names": list(CLASS_NAMES),
        **({"num_files": result["num_files"]} if "num_files" in result else {}),
        **(extra or {}),
    }
    write_text(out_dir / "metrics.json", json.dumps(payload, indent=2) + "\n")
    write_text(out_dir / "iou.md", iou_markdown(result, title))
    return payload


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """Arguments of ``dlcv score-masks`` / ``python -m dlcv.seg_metrics``."""
    ap.add_argument("pred_dir", nargs="?", help="folder of predicted *_mask.png")
    ap.add_argument("gt_dir", nargs="?", help="folder of ground-truth *_mask.png")
    ap.add_argument("-p", "--pred", help="same as PRED_DIR (the official script's flag)")
    ap.add_argument("-g", "--labels", help="same as GT_DIR (the official script's flag)")
    ap.add_argument("--out", help="also write metrics.json and iou.md into this folder")


def run(args: argparse.Namespace) -> int:
    """Score a prediction folder; 0 on success, 2 (with the reason on stderr) on bad input."""
    pred = args.pred or args.pred_dir
    gt = args.labels or args.gt_dir
    if not pred or not gt:
        print("error: give the prediction and ground-truth folders (PRED_DIR GT_DIR, or -p PRED -g GT)",
              file=sys.stderr)
        return 2
    try:
        result = score_folders(pred, gt)
    except (ValueError, FileNotFoundError) as exc:  # DataError (an unreadable PNG) is a ValueError
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_iou_table(result))
    if getattr(args, "out", None):
        write_iou_report(args.out, result, f"{pred} vs {gt}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m dlcv.seg_metrics",
                                 description="Official P3 mean IoU of a prediction folder against a ground-truth folder")
    add_arguments(ap)
    return run(ap.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
