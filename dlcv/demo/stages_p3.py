"""The P3 part of `dlcv demo`: models A (FCN32s) and B (DeepLabv3) at 128 px, then hw1_3.sh's job
on the test stand-in, scored with the official rule against its ground truth."""
from __future__ import annotations

import json
from pathlib import Path

from dlcv.demo.stage import Stage, train_demo_config

RUNS = ("p3_a_fcn32s", "p3_b_deeplabv3")


def score_test(data_root: Path, runs: Path, out: Path) -> dict:
    """hw1_3.sh's job (dlcv.graded.p3.predict) with the model of higher validation mIoU, on the demo's
    hidden-test stand-in, scored against p3_data/test_gt by score_folders (pairs by name)."""
    from dlcv.graded.p3 import predict
    from dlcv.score_masks import score_folders
    from dlcv.seg_iou import format_iou_table, write_iou_report

    summaries = {name: json.loads((runs / name / "summary.json").read_text()) for name in RUNS}
    name = max(RUNS, key=lambda n: summaries[n]["val_miou"] or 0.0)
    model = runs / name / "model.pt"
    pred_dir = out / "predictions" / "p3_test_masks"
    code = predict(model, data_root / "p3_data" / "test", pred_dir)
    if code:
        raise RuntimeError(f"P3 prediction on the test stand-in exited with {code}")
    result = score_folders(pred_dir, data_root / "p3_data" / "test_gt")
    write_iou_report(out / "predictions" / "p3_test_eval", result, f"{name} on the P3 test stand-in")
    print("\n".join("    " + line for line in format_iou_table(result).splitlines()))
    return {"p3_test_miou": result["miou"], "model": str(model), "predictions": str(pred_dir),
            "val_miou": {n: summaries[n]["val_miou"] for n in RUNS}}


def stages(data_root: Path, runs: Path, out: Path, fresh: bool) -> list[Stage]:
    def train(stem):
        return lambda: train_demo_config(stem, data_root, runs, fresh)

    return [
        Stage("P3 model A, VGG16-FCN32s (random init: no ImageNet weights offline)", train("p3_a_fcn32s")),
        Stage("P3 model B, DeepLabv3-ResNet50 + focal loss (random init)", train("p3_b_deeplabv3")),
        Stage("P3 graded predictions (hw1_3.sh) on the test stand-in", lambda: score_test(data_root, runs, out)),
    ]
