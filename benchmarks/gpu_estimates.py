"""GPU time estimates from FLOPs, for recipes and for hw1_3.sh with each test-time augmentation.

    .venv/bin/python benchmarks/gpu_estimates.py                  # P3: hw1_3.sh x TTA, the P3 recipes
    .venv/bin/python benchmarks/gpu_estimates.py configs/p1/*.yaml configs/p2/*.yaml   # any recipe
    .venv/bin/python benchmarks/gpu_estimates.py --json out.json  # the numbers as JSON too

FLOPs are counted, not guessed: torch.utils.flop_counter.FlopCounterMode (convolutions and matrix
products, 2 FLOPs per multiply-add, forward + backward for training) on the meta device (nothing
is computed, so it takes seconds on any CPU), for the product's own models and TTA function
(dlcv.graded.models.segment_scores). Time = FLOPs / (peak x utilisation) of each device below:
an ESTIMATE, to be replaced by `bash benchmarks/gpu.sh` measurements where a GPU is at hand.
The utilisation figures are the assumptions; "pessimistic" uses the lower one.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ.setdefault("DLCV_OFFLINE", "1")  # models are built with random init: never fetch weights


@dataclass(frozen=True)
class Device:
    name: str
    peak: float  # FLOP/s, dense, of the precision named
    util: float  # realistic share of the peak for these conv nets (the estimate)
    low: float  # pessimistic share (the bound the 10-minute decision uses)
    why: str


DEVICES = {
    "2080ti_fp32": Device("RTX 2080 Ti fp32", 13.4e12, 0.35, 0.25,
                          "13.4 TFLOPS at the 1545 MHz boost; 30-40% is usual for conv nets in fp32 "
                          "(ResNet-50 training benchmarks reach ~50% with Winograd, dilated convs less)"),
    "2080ti_fp16": Device("RTX 2080 Ti fp16 AMP", 53.8e12, 0.20, 0.12,
                          "tensor cores with fp32 accumulation (GeForce: half the 107.6 TFLOPS of fp16 "
                          "accumulation); ResNet-50 fp16 training reaches ~21%"),
    "h100_fp32": Device("H100 SXM fp32", 67e12, 0.35, 0.25,
                        "CUDA-core fp32 without TF32 (PyTorch lets cuDNN use TF32 by default: faster)"),
    "h100_bf16": Device("H100 SXM bf16 AMP", 990e12, 0.08, 0.05,
                        "990 TFLOPS dense; conv nets use little of it (ResNet-50 training ~3,500 img/s "
                        "= ~9%): BatchNorm, activations and memory traffic dominate"),
}
HIDDEN_TEST = 313  # P3 hidden test images (dlcv/check/hidden.py)
LIMIT_S = 600.0
# hw1_3.sh beside the GPU work: interpreter + imports ~4 s, CUDA context and cuDNN set-up ~5-10 s,
# reading a 0.2-0.6 GB model.pt ~2-5 s, first batch warm-up: 25 s in all; JPEG decoding (3 ms)
# and PNG writing (17 ms, 2 threads) overlap the GPU: ~9 ms per image when the GPU is faster
STARTUP_S = 25.0
CPU_S_PER_IMAGE = 0.009
DATASETS = {  # (training images, validation images) of each data set a recipe trains on
    "p1": (22_500, 2_500), "office": (3_951, 406), "mini": (38_400, 0), "p3": (2_000, 257)}
TTA_MODES = ("none", "flip", "flip_multiscale")


def count(build, forward, train: bool) -> float:
    from dlcv.bench.measure import count_flops

    return count_flops(build, forward, train)


# ----------------------------------------------------------------------------------- P3 inference
def segmenter_builder(model_cfg):
    from dlcv.models.segmentation import build_segmenter

    def build():
        return build_segmenter(model_cfg["name"], 7, "none", aux_loss=model_cfg.get("aux_loss_weight", 0) > 0,
                               dropout=model_cfg.get("dropout", 0.5))
    return build


def tta_flops(model_cfg, mode: str, scales, size: int = 512) -> float:
    """FLOPs per image of hw1_3.sh's prediction with `mode` (all of its passes, at their sizes)."""
    import torch

    from dlcv.graded.models import segment_scores

    def forward(m):
        return segment_scores(m, torch.empty(1, 3, size, size, dtype=torch.uint8), mode, scales)
    return count(segmenter_builder(model_cfg), forward, False)


def hw1_3_seconds(flops_per_image: float, dev: Device, pessimistic: bool = False, n: int = HIDDEN_TEST) -> float:
    gpu = n * flops_per_image / (dev.peak * (dev.low if pessimistic else dev.util))
    return STARTUP_S + max(gpu, n * CPU_S_PER_IMAGE)


def inference_rows(scales=(0.75, 1.0, 1.25)) -> list[dict]:
    models = {"FCN32s (A)": {"name": "fcn32s"}, "DeepLabv3-R50 (B)": {"name": "deeplabv3_resnet50"}}
    rows = []
    for title, model_cfg in models.items():
        for mode in TTA_MODES:
            f = tta_flops(model_cfg, mode, scales)
            row = {"model": title, "tta": mode, "gflop_per_image": f / 1e9}
            for key in ("2080ti_fp32", "2080ti_fp16", "h100_bf16"):
                row[key] = hw1_3_seconds(f, DEVICES[key])
                row[key + "_pessimistic"] = hw1_3_seconds(f, DEVICES[key], True)
            rows.append(row)
    return rows


# ----------------------------------------------------------------------------------- training
def _segment_counts(cfg) -> tuple[float, float, float]:
    """(train FLOPs/img at the crop, plain inference FLOPs/img at 512, TTA inference FLOPs/img)."""
    import torch
    import torch.nn.functional as F

    from dlcv.config import to_dict

    model_cfg, crop = to_dict(cfg)["model"], cfg.data.crop or 512
    aux = model_cfg.get("aux_loss_weight", 0) > 0

    def train_forward(m):
        x, y = torch.empty(2, 3, crop, crop), torch.zeros(2, crop, crop, dtype=torch.long)
        if aux:
            out, aux_out = m(x, with_aux=True)
            return F.cross_entropy(out, y) + F.cross_entropy(aux_out, y)
        return F.cross_entropy(m(x), y)
    train = count(segmenter_builder(model_cfg), train_forward, True) / 2
    plain = tta_flops(model_cfg, "none", (1.0,))
    tta = tta_flops(model_cfg, cfg.eval.tta, cfg.eval.tta_scales) if cfg.eval.tta != "none" else 0.0
    return train, plain, tta


def _classify_counts(cfg) -> tuple[float, float, float]:
    import torch
    import torch.nn.functional as F

    from dlcv.models.classifiers import build_classifier

    size = 32 if cfg.dataset == "p1" else 128

    def forward(m):
        return F.cross_entropy(m(torch.empty(2, 3, size, size, dtype=torch.uint8)), torch.zeros(2, dtype=torch.long))
    return (count(lambda: build_classifier(cfg.model), forward, True) / 2,
            count(lambda: build_classifier(cfg.model), forward, False) / 2, 0.0)


def _byol_counts(cfg) -> tuple[float, float, float]:
    import torch

    from dlcv.config import to_dict
    from dlcv.tasks.byol import ByolTask

    s = cfg.byol.image_size

    def forward(m):
        v = torch.empty(2, 3, s, s)
        return m(v, v)["loss"] if m.training else m.backbone(v)
    build = lambda: ByolTask(to_dict(cfg), None).byol  # noqa: E731
    return count(build, forward, True) / 2, count(build, forward, False) / 2, 0.0


def recipe_row(path: str) -> dict:
    """FLOPs x images of a whole recipe (training epochs, per-epoch validation, final evaluation)."""
    from dlcv.config import load_config

    cfg = load_config(path)
    if cfg.task in ("segment", "classify"):  # FLOPs do not depend on the weights: random init, no file read
        cfg = load_config(path, ["model.pretrained=none"])
    if cfg.task == "segment":
        data, (train, infer, tta) = "p3", _segment_counts(cfg)
    elif cfg.task == "classify":
        data, (train, infer, tta) = cfg.dataset, _classify_counts(cfg)
    else:
        data, (train, infer, tta) = "mini", _byol_counts(cfg)
    n_train, n_val = DATASETS[data]
    if cfg.task == "byol":  # kNN monitor: the backbone over Office train + val every knn_every epochs
        n_val = sum(DATASETS["office"]) / max(1, cfg.byol.knn_every) if cfg.byol.knn_every > 0 else 0
    steps = n_train // cfg.data.batch_size  # drop_last
    epochs = cfg.trainer.epochs
    total = epochs * (steps * cfg.data.batch_size * train + n_val * infer / max(1, cfg.trainer.val_every))
    total += n_val * (infer + tta)  # the final evaluation (and its TTA)
    row = {"config": str(Path(path).as_posix()).split("configs/")[-1], "task": cfg.task, "epochs": epochs,
           "batch": cfg.data.batch_size, "steps": steps * epochs, "train_gflop_per_image": train / 1e9,
           "total_pflop": total / 1e15}
    for key in ("2080ti_fp16", "2080ti_fp32", "h100_bf16"):
        dev = DEVICES[key]
        row[key + "_h"] = total / (dev.peak * dev.util) / 3600
        row[key + "_h_pessimistic"] = total / (dev.peak * dev.low) / 3600
    return row


# ----------------------------------------------------------------------------------- output
def _t(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def _h(hours: float) -> str:
    return f"{hours * 60:.0f} min" if hours < 1 else f"{hours:.1f} h"


def assumptions_table() -> str:
    lines = ["| device, precision | peak TFLOPS | utilisation (pessimistic) | why |", "|---|---:|---:|---|"]
    lines += [f"| {d.name} | {d.peak / 1e12:g} | {d.util:.0%} ({d.low:.0%}) | {d.why} |" for d in DEVICES.values()]
    return "\n".join(lines)


def inference_table(rows: list[dict]) -> str:
    lines = [f"hw1_3.sh on {HIDDEN_TEST} images of 512x512: start-up {STARTUP_S:.0f} s + GPU time (CPU work "
             f"overlaps it); estimate (pessimistic); the limit is {LIMIT_S / 60:.0f} min.", "",
             "| model | TTA | GFLOP/img | 2080 Ti fp32 | 2080 Ti fp16 | H100 bf16 | fits 10 min on a 2080 Ti in fp32 |",
             "|---|---|---:|---:|---:|---:|---|"]
    for r in rows:
        cells = [f"{_t(r[k])} ({_t(r[k + '_pessimistic'])})" for k in ("2080ti_fp32", "2080ti_fp16", "h100_bf16")]
        worst = r["2080ti_fp32_pessimistic"]
        fits = f"yes ({worst / LIMIT_S:.0%} of the limit, pessimistic)" if worst <= LIMIT_S else "NO"
        lines.append(f"| {r['model']} | {r['tta']} | {r['gflop_per_image']:.0f} | {' | '.join(cells)} | {fits} |")
    return "\n".join(lines)


def recipe_table(rows: list[dict]) -> str:
    lines = ["Whole recipe: epochs x (training images x forward+backward FLOPs + validation forwards) + the "
             "final evaluation (with its TTA); estimate (pessimistic). FLOP-bound: small models (P1 at 32 px) are "
             "bound by per-step overheads and data instead, so theirs is a lower bound.", "",
             "| config | epochs | batch | steps | GFLOP/img train | PFLOP in all | 2080 Ti fp16 AMP | 2080 Ti fp32 "
             "| H100 bf16 |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        cells = [f"{_h(r[k + '_h'])} ({_h(r[k + '_h_pessimistic'])})"
                 for k in ("2080ti_fp16", "2080ti_fp32", "h100_bf16")]
        lines.append(f"| {r['config']} | {r['epochs']} | {r['batch']} | {r['steps']:,} | "
                     f"{r['train_gflop_per_image']:,.1f} | {r['total_pflop']:,.1f} | {' | '.join(cells)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("configs", nargs="*", help="recipes to estimate (default: configs/p3/*.yaml)")
    parser.add_argument("--no-inference", action="store_true", help="skip the hw1_3.sh x TTA table")
    parser.add_argument("--json", help="also write the numbers to this JSON file")
    args = parser.parse_args(argv)
    configs = args.configs or sorted(glob.glob(str(REPO / "configs" / "p3" / "*.yaml")))
    out: dict = {"devices": {k: vars(d) for k, d in DEVICES.items()}, "startup_s": STARTUP_S}
    print("## Assumptions\n\n" + assumptions_table() + "\n")
    if not args.no_inference:
        out["hw1_3"] = inference_rows()
        print("## hw1_3.sh with each TTA\n\n" + inference_table(out["hw1_3"]) + "\n")
    if configs:
        out["recipes"] = [recipe_row(c) for c in configs]
        print("## Recipes\n\n" + recipe_table(out["recipes"]))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, default=lambda v: None if v != v else v) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
