"""The P1 part of `dlcv demo`: models A (seed, strong) and B, then hw1_1.sh's job on the test stand-in."""
from __future__ import annotations

import csv
from pathlib import Path

from dlcv.demo.stage import Stage, train_demo_config


def score_test(data_root: Path, runs: Path, out: Path) -> dict:
    """hw1_1.sh's job on the demo's hidden-test stand-in, scored against its ground truth."""
    from dlcv.graded.p1 import predict

    model = runs / "p1_strong_a" / "model.pt"
    pred_csv = out / "predictions" / "p1_test_pred.csv"
    pred_csv.parent.mkdir(parents=True, exist_ok=True)
    predict(model, data_root / "p1_data" / "test", pred_csv)
    with open(pred_csv) as fh:
        pred = {r["filename"]: int(r["label"]) for r in csv.DictReader(fh)}
    with open(data_root / "p1_data" / "test_gt.csv") as fh:
        truth = {r["filename"]: int(r["label"]) for r in csv.DictReader(fh)}
    acc = sum(pred.get(k) == v for k, v in truth.items()) / len(truth)
    print(f"    hidden-test stand-in: {acc:.2%} of {len(truth)} images ({model})")
    return {"p1_test_accuracy": acc, "model": str(model), "predictions": str(pred_csv)}


def stages(data_root: Path, runs: Path, out: Path, fresh: bool) -> list[Stage]:
    def train(stem):
        return lambda: train_demo_config(stem, data_root, runs, fresh)

    return [
        Stage("P1 model A, the seed's CNN", train("p1_seed_a")),
        Stage("P1 model A, the strong from-scratch recipe", train("p1_strong_a")),
        Stage("P1 model B, ImageNet EfficientNet-Lite0 fine-tuned", train("p1_b")),
        Stage("P1 graded predictions (hw1_1.sh) on the test stand-in", lambda: score_test(data_root, runs, out)),
    ]
