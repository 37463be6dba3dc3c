"""The P3 metric of the training task: a torchmetrics ``ConfusionMatrix`` (summed across DDP ranks).

The official rule (``mean_iou_evaluate.py`` reproduced exactly: unknown pixels are not ignored,
absent classes, ``miou_official``) and everything computed from the matrix live in
:mod:`dlcv.seg_iou` (NumPy only); folder scoring and ``dlcv score-masks`` in
:mod:`dlcv.score_masks` (NumPy + Pillow, no torch). This module adds the torch Metric, counting with
the same kernel (:func:`dlcv.seg_iou.pair_histogram_torch`): the metric only.
"""
from __future__ import annotations

from typing import Any

import torch
from torchmetrics import Metric

from dlcv.data.masks import NUM_CLASSES
from dlcv.seg_iou import iou_from_confusion, pair_histogram_torch


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
        # the product's one counting kernel (uint8 target * 7 + pred, bincount), see dlcv.seg_iou
        self.confmat += pair_histogram_torch(target, pred, NUM_CLASSES)

    def compute(self) -> torch.Tensor:
        return self.confmat.clone()

    def compute_iou(self) -> dict:
        return iou_from_confusion(self.compute())

