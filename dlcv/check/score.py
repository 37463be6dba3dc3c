"""Scores against the course's baselines: accuracy (P1, P2 setting C) and the official mIoU (P3)."""
from __future__ import annotations

import math

from dlcv.check.hidden import SPECS, HiddenSet
from dlcv.check.rows import FAIL, PASS, WARN, Row

DEMO_NOTE = "demo data: the course's baselines are for the real hw1_data (shown for reference)"


def accuracy(hidden: HiddenSet, predictions: dict) -> tuple[float, str, str]:
    """(accuracy, figure, note); an image without a valid prediction counts as wrong."""
    correct = sum(predictions.get(name) == label for name, label in hidden.truth.items())
    n = len(hidden.truth)
    return correct / n, f"{correct / n:.4f} ({correct}/{n})", ""


def mean_iou(hidden: HiddenSet) -> tuple[float, str, str]:
    """(mIoU, figure, note) by dlcv.score_masks.score_folders (the official rule)."""
    from dlcv.score_masks import score_folders

    result = score_folders(hidden.output, hidden.truth, warn=False)
    note = ""
    if result.get("absent_classes"):
        note = (f"class(es) {result['absent_classes']} absent from prediction and truth: mean over the present "
                f"ones (the official script would print nan)")
    return result["miou"], f"{result['miou']:.4f} ({result['num_files']} masks)", note


def judge(value: float, baselines: tuple[float, float]) -> tuple[str, str]:
    simple, strong = baselines
    if math.isnan(value) or value < simple:
        return FAIL, f"below the simple baseline {simple:.2f}"
    if value < strong:
        return WARN, f"passes the simple baseline {simple:.2f}, not the strong one {strong:.2f}"
    return PASS, "passes both baselines"


def score_row(hidden: HiddenSet, predictions: dict, demo: bool) -> Row:
    spec = SPECS[hidden.problem]
    check = f"{hidden.problem.upper()} {spec.metric}"
    limit = f">= {spec.baselines[0]:.2f} / {spec.baselines[1]:.2f}"
    value, figure, note = mean_iou(hidden) if hidden.problem == "p3" else accuracy(hidden, predictions)
    result, verdict = judge(value, spec.baselines)
    if demo and result != PASS:
        result, verdict = WARN, f"{DEMO_NOTE}; {verdict}"
    return Row(check, result, figure, limit, "; ".join(filter(None, [verdict, note])))
