"""Problem 3 (satellite land-cover segmentation): questions 3.1-3.4 in the assignment's order
(architectures of A and B and how they differ, mIoU, masks over epochs), then curves/throughput."""
from __future__ import annotations

from typing import Optional

from dlcv.report import common
from dlcv.report import configtext as ct
from dlcv.report.common import Context, lacks, mega, pct, problem, ref_pct, run_list
from dlcv.report.doc import Bullets, Figure, Para, Section, Table, not_available
from dlcv.references import P3, P3_MASK_IDS
from dlcv.report.runs import Run
from dlcv.runfolder import SUMMARY

TITLE = "Problem 3: Semantic segmentation of satellite images (7 classes)"
CLASS_NAMES = ("urban", "agriculture", "rangeland", "forest", "water", "barren")
MASKS_PNG, OVERLAY_PNG = "figures/masks_over_epochs.png", "figures/masks_over_epochs_overlay.png"
FCN32S = ("FCN32s: VGG16's five conv blocks (13 3×3 convolutions, each block ending in a 2×2 max-pool) reduce the "
          "image 32×; fc6 (7×7, 4096) and fc7 (1×1, 4096) are VGG's fully connected layers as convolutions, a 1×1 "
          "convolution scores the 7 classes, and one learnable 64×64 transposed convolution with stride 32 "
          "(initialised to bilinear interpolation) brings the scores back to the input size, followed by a crop.")
DIFFERENCES = [
    "Resolution: FCN32s decides on a map 32× smaller than the image and recovers the full size in one step; "
    "DeepLabv3 replaces the last strides with dilated convolutions and decides on an 8× smaller map, 4× finer in "
    "each direction before upsampling.",
    "Context: FCN32s sees context only through its receptive field; DeepLabv3's ASPP looks at several scales at once "
    "(atrous rates 12/24/36 and a global image-pooling branch).",
    "Backbone: DeepLabv3's ResNet-50 has residual connections and BatchNorm where FCN32s stacks plain convolutions; "
    "most of FCN32s's parameters sit in the 7×7 fc6 convolution.",
    "Both are encoder + upsampling networks without skip connections from early layers (unlike FCN8s or DeepLabv3+).",
]


def build(ctx: Context) -> Section:
    a, b = ctx.coll.by("p3", "A"), ctx.coll.by("p3", "B")
    intro = ([Para(f"Model A is VGG16-FCN32s ({run_list(a) or 'no run found'}); model B is DeepLabv3-ResNet50 "
                   f"({run_list(b) or 'no run found'}). mIoU follows the official tool: one confusion matrix over the "
                   f"whole validation set, IoU of classes 0-5, unknown pixels left out of the mean but counted as "
                   f"errors where a real class is predicted on them (and vice versa).")] if a or b else
             [not_available("Problem 3", "no P3 run folder (task `segment`) was found")])
    return problem(ctx, TITLE, intro, [
        ("Network architecture of model A (VGG16-FCN32s)", "Draw the network architecture of your VGG16-FCN32s "
         "model (model A).", "model A (`model.name: fcn32s`)", a, lambda: arch_a(ctx, a)),
        ("Model B (DeepLabv3) and how it differs from FCN32s", "Draw the network architecture of the improved model "
         "(model B) and explain how it differs from your VGG16-FCN32s model.", "model B (`model.name: deeplabv3_*`)",
         b, lambda: arch_b(ctx, a, b)),
        ("Validation mIoU of A and B", "Report mIoUs of two models on the validation set.", "P3", a + b,
         lambda: miou(a, b)),
        ("Predicted masks over training (model B)", "Show the predicted segmentation masks of validation/0013_sat.jpg, "
         "0062_sat.jpg and 0104_sat.jpg during the early, middle and final stage of training of the improved model.",
         "model B", b, lambda: masks(ctx, b)),
        ("Training curves and throughput", "Additional: loss and metric per epoch, epoch time and throughput.", "P3",
         a + b, lambda: common.curves_and_throughput(ctx, a + b, "p3_curves", "the P3 runs")),
    ])


def arch_a(ctx: Context, a: list[Run]) -> list:
    return common.architectures(ctx, a, lambda r: "model A (VGG16-FCN32s)") + [Para(FCN32S)]


def arch_b(ctx: Context, a: list[Run], b: list[Run]) -> list:
    blocks = common.architectures(ctx, b, lambda r: "model B (DeepLabv3-ResNet50)")
    bullets = list(DIFFERENCES)
    pa, pb = (next((r.summary["params"] for r in runs if isinstance(r.summary.get("params"), int)), None)
              for runs in (a, b))
    if pa and pb:
        bullets.append(f"Size: model B has {mega(pb)} parameters, {pb / pa:.2f}× model A's {mega(pa)} (summary.json).")
    blocks += [Para("**How DeepLabv3 differs from FCN32s:**"), Bullets(bullets)]
    if a[:1] + b[:1]:
        blocks += common.recipe(a[:1] + b[:1], ["parameters", "initial weights", "loss", "optimizer", "LR schedule",
                                                "training augmentation", "batch size / epochs"],
                                "FCN32s and DeepLabv3 side by side: the training recipes from the resolved configs "
                                "(parameters and initial weights from summary.json).")
    return blocks


def miou_of(run: Run) -> Optional[float]:
    v = run.summary.get("val_miou")
    return float(v) if isinstance(v, (int, float)) else None


def miou(a: list[Run], b: list[Run]) -> list:
    runs = a + b
    rows = []
    for r in runs:
        ious, ref = r.summary.get("val_iou") or {}, P3[r.role.kind]
        rows.append([f"**{r.role.label.split(' ')[0]}**", f"`{r.name}`", pct(miou_of(r)),
                     *[pct(ious.get(n), 1) for n in CLASS_NAMES], str(r.summary.get("best_epoch", "—")),
                     ref_pct(ref["seed"]), ref_pct(ref["best_student"])])
    blocks: list = [Table(["model", "run", "mIoU (ours)", *CLASS_NAMES, "best epoch", "seed", "best student"], rows,
                          f"Validation mIoU and per-class IoU at the best epoch (by validation mIoU), official rule. "
                          f"The seed report's and the best students' numbers are on the real data; the course "
                          f"baselines are {ref_pct(P3['baselines'][0])} (A) and {ref_pct(P3['baselines'][1])} (B).",
                          runs, [SUMMARY], range(2, 12))]
    blocks += [lacks(r, SUMMARY, f"mIoU of {r.name}") for r in runs if miou_of(r) is None]
    if absent := sorted({c for r in runs for c in (r.summary.get("absent_classes") or [])}):
        blocks.append(Para(f"Classes absent from both prediction and ground truth in some run ({', '.join(absent)}) "
                           f"have no IoU and are left out of that run's mean."))
    best_a = max((r for r in a if miou_of(r) is not None), key=miou_of, default=None)
    best_b = max((r for r in b if miou_of(r) is not None), key=miou_of, default=None)
    if best_a and best_b:
        blocks.append(Para(f"B (`{best_b.name}`, {pct(miou_of(best_b))}) minus A (`{best_a.name}`, "
                           f"{pct(miou_of(best_a))}): {100 * (miou_of(best_b) - miou_of(best_a)):+.1f} points mIoU."))
    return blocks


def masks(ctx: Context, b: list[Run]) -> list:
    blocks: list = []
    for r in b:
        have, images, missing = common.copied(ctx, [r], MASKS_PNG, "Masks over epochs", "masks")
        if not have:
            blocks += missing
            continue
        ids = sorted(p.name[:-len("_sat.png")] for p in r.file("masks/inputs").glob("*_sat.png"))
        epochs, last = common.listing(r.file("masks"), "epoch_*"), r.cfg("trainer.epochs")
        blocks.append(Figure(images, f"Model {r.role.label}, `{r.name}`: predicted masks of validation images "
                                     f"{', '.join(i + '_sat' for i in ids) or '?'} at epochs "
                                     f"{', '.join(map(str, epochs)) or '?'} (early, middle, final) beside the ground "
                                     f"truth (legal colours only).", [r], [MASKS_PNG, "masks/"]))
        have, images, missing = common.copied(ctx, [r], OVERLAY_PNG, "Masks over the images", "masks_overlay")
        blocks += [Figure(images, f"The same predictions of `{r.name}` over the images (region outlines opaque).",
                          [r], [OVERLAY_PNG])] if have else missing
        if ids and set(ids) != set(P3_MASK_IDS):
            blocks.append(Para(f"The assignment asks for images {', '.join(P3_MASK_IDS)}; `{r.name}` saved "
                               f"{', '.join(ids)}" + (" (the demo validation set has its own ids)." if
                                                      r.data_kind == "demo" else " (`masks.ids` chooses them).")))
        if epochs and (epochs[0] != 1 or epochs[-1] != last):
            blocks.append(Para(f"The saved epochs {epochs} of `{r.name}` are not the first and the last of its {last} "
                               f"configured epochs (trained: {ct.epochs_trained(r)})."))
    return blocks
