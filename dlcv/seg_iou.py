"""The official P3 metric: mean IoU over classes 0..5 from one 7x7 confusion matrix.

NumPy only (no torch at import): ``dlcv score-masks`` (:mod:`dlcv.score_masks`) starts in a fraction
of a second because of that; the torchmetrics Metric of the training task is
:class:`dlcv.seg_metrics.ConfusionMatrix`, which counts with :func:`pair_histogram_torch` below.

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
colours are decoded by the rule of :mod:`dlcv.data.masks` (``read_mask``), which reads undefined red
pixels (code 4) as unknown and warns, where the official ``np.empty`` array keeps uninitialised values.

The counting kernel (one formula, two array libraries)
------------------------------------------------------
Every confusion matrix of the product is ``bincount(target * k + pred, minlength=k*k)`` on uint8 codes
(:func:`pair_histogram_numpy`, :func:`pair_histogram_torch`; tests check that the two agree):

* validation (:class:`dlcv.seg_metrics.ConfusionMatrix`) and :func:`confusion_numpy`: class ids,
  ``k = 7``;
* ``dlcv score-masks``: the 3-bit colour codes ``4R + 2G + B`` of the two PNGs, ``k = 8``, folded into
  the 7x7 class matrix by :func:`fold_code_histogram` through ``dlcv.data.masks.CODE_TO_CLASS`` (exact:
  the class of a pixel is a function of its code, so summing the code pairs of each class pair gives
  that class pair's count; the red code 4 lands in the unknown row/column, as ``read_mask`` decides).

In range, ``target * k + pred < 64`` fits a byte: uint8 arithmetic moves 1 byte per pixel instead of 8
(int64) and bincount counts the bytes directly; about 3x faster on a CPU (`dlcv bench`, miou section).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np

from dlcv.data.masks import CLASS_NAMES, CODE_TO_CLASS, EVAL_CLASSES, NUM_CLASSES
from dlcv.io import write_text

NUM_CODES = 8  # 3-bit colour codes 4R + 2G + B (dlcv.data.masks)


# -- the counting kernel ------------------------------------------------------------------------

def pair_histogram_numpy(target: np.ndarray, pred: np.ndarray, k: int) -> np.ndarray:
    """(k, k) int64 counts of (target, pred) pairs (rows = target) of two arrays of values in 0..k-1.

    The kernel: ``bincount(target * k + pred)`` in uint8 (k <= 16). No range check here (callers
    check or build the values themselves): a value >= k would land in another pair's bin."""
    if not 1 <= k <= 16:
        raise ValueError(f"k must be in 1..16 so that target * k + pred fits a byte, got {k}")
    codes = np.asarray(target).astype(np.uint8, copy=False).reshape(-1) * np.uint8(k)
    codes += np.asarray(pred).astype(np.uint8, copy=False).reshape(-1)
    return np.bincount(codes, minlength=k * k).reshape(k, k).astype(np.int64, copy=False)


def pair_histogram_torch(target, pred, k: int):
    """:func:`pair_histogram_numpy` on torch tensors, on their device: the same formula, line for line
    (tensor methods only, so this module never imports torch). Returns a (k, k) int64 tensor."""
    if not 1 <= k <= 16:
        raise ValueError(f"k must be in 1..16 so that target * k + pred fits a byte, got {k}")
    codes = target.reshape(-1).byte() * k
    codes += pred.reshape(-1).byte()
    return codes.bincount(minlength=k * k).reshape(k, k)


_FOLD = np.zeros((NUM_CODES, NUM_CLASSES), dtype=np.int64)  # code -> one-hot class
_FOLD[np.arange(NUM_CODES), CODE_TO_CLASS] = 1
_FOLD.setflags(write=False)


def fold_code_histogram(codes_cm: np.ndarray) -> np.ndarray:
    """8x8 counts of colour-code pairs (rows = truth) -> the 7x7 class confusion matrix, through
    ``dlcv.data.masks.CODE_TO_CLASS`` (red, code 4, is unknown): ``F.T @ H @ F`` with F one-hot."""
    codes_cm = np.asarray(codes_cm, dtype=np.int64)
    if codes_cm.shape != (NUM_CODES, NUM_CODES):
        raise ValueError(f"colour-code histogram must be {NUM_CODES}x{NUM_CODES}, got {codes_cm.shape}")
    return _FOLD.T @ codes_cm @ _FOLD


def check_class_ids(name: str, a: np.ndarray) -> None:
    """TypeError unless integer/bool class ids; ValueError naming the values outside 0..6."""
    if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.bool_)):
        raise TypeError(f"{name} must hold integer class ids, got dtype {a.dtype}")
    if a.size and (a.min() < 0 or a.max() >= NUM_CLASSES):
        bad = np.unique(a[(a < 0) | (a >= NUM_CLASSES)])
        raise ValueError(f"{name} holds values outside 0..{NUM_CLASSES - 1}: {bad[:10].tolist()}")


def confusion_numpy(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """7x7 int64 confusion matrix (rows = truth) of two integer arrays of the same shape."""
    pred = np.asarray(pred)
    target = np.asarray(target)
    if pred.shape != target.shape:
        raise ValueError(f"pred and target shapes differ: {pred.shape} vs {target.shape}")
    check_class_ids("pred", pred)
    check_class_ids("target", target)
    return pair_histogram_numpy(target, pred, NUM_CLASSES)


# -- IoU from the matrix ------------------------------------------------------------------------

def _checked_counts(cm) -> np.ndarray:
    """The 7x7 confusion matrix as int64 counts; ValueError for a wrong shape, non-integer or
    negative counts (a float matrix is accepted only when it holds whole numbers)."""
    if hasattr(cm, "detach"):  # a torch tensor (torch is not imported here)
        cm = cm.detach().cpu().numpy()
    cm = np.asarray(cm)
    if cm.shape != (NUM_CLASSES, NUM_CLASSES):
        raise ValueError(f"confusion matrix must be {NUM_CLASSES}x{NUM_CLASSES}, got {cm.shape}")
    if np.issubdtype(cm.dtype, np.floating):
        if not np.all(np.isfinite(cm)) or not np.all(cm == np.round(cm)):
            raise ValueError("confusion matrix must hold integer counts")
    if (cm < 0).any():
        raise ValueError("confusion matrix holds negative counts")
    return cm.astype(np.int64)


def _mean_over_present(ious: list[float], present: list[int], miou_official: float) -> float:
    """The mean IoU over the present classes (``nan`` if none is present)."""
    if not present:
        return float(math.nan)
    if len(present) == EVAL_CLASSES:
        # all six present: reuse the official sum so the two numbers agree bit for bit
        return float(miou_official)
    # same accumulation pattern as the official script, divided by the present count
    k = len(present)
    miou = 0.0
    for i in present:
        miou += ious[i] / k
    return float(miou)


def iou_from_confusion(cm, class_names: Sequence[str] = CLASS_NAMES) -> dict:
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
    cm = _checked_counts(cm)
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

    return {
        "per_class": per_class,
        "iou": ious,
        "miou": _mean_over_present(ious, present, miou_official),
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


# -- renderers ---------------------------------------------------------------------------------

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
    from dlcv.runfolder import markdown_table

    lines = [f"# {title}", ""] if title else []
    rows = [[c["class"], c["name"], "absent" if c["absent"] else f"{c['iou']:.4f}", c["tp"], c["pred"], c["gt"]]
            for c in result["per_class"]]
    lines.append(markdown_table(["class", "name", "IoU", "TP", "P (pred)", "G (truth)"], rows, numeric=(0, 2, 3, 4, 5)))
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
    from dlcv.runfolder import finite_or_none, write_json

    out_dir = Path(out_dir)
    payload = finite_or_none({
        "title": title,
        "miou": result["miou"],
        "miou_official": result["miou_official"],
        "per_class": result["per_class"],
        "present_classes": result["present_classes"],
        "absent_classes": result["absent_classes"],
        "num_pixels": result["num_pixels"],
        "confusion": np.asarray(result["confusion"]).tolist(),
        "confusion_axes": "rows = ground truth class 0..6, columns = predicted class 0..6",
        "class_names": list(CLASS_NAMES),
        **({"num_files": result["num_files"]} if "num_files" in result else {}),
        **(extra or {}),
    })
    write_json(out_dir / "metrics.json", payload)
    write_text(out_dir / "iou.md", iou_markdown(result, title))
    return payload
