"""Problem 3 (satellite land-cover segmentation): questions 3.1-3.4 in the assignment's order
(architectures of A and B and how they differ, mIoU, masks over epochs), then curves/throughput."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from dlcv.report import configtext as ct
from dlcv.report import figures
from dlcv.report.common import (Context, architecture_blocks, curves_and_throughput, demo_callout, guarded,
                                mega, pct, ref_pct, run_list)
from dlcv.report.doc import Bullets, Columns, Figure, Image, Para, Section, Source, Table, not_available
from dlcv.report.provenance import DEMO_TAG, data_tags
from dlcv.report.references import P3, P3_MASK_IDS
from dlcv.report.runs import Run

TITLE = "Problem 3: Semantic segmentation of satellite images (7 classes)"
CLASS_NAMES = ("urban", "agriculture", "rangeland", "forest", "water", "barren")
EPOCH_DIR = re.compile(r"^epoch_(\d+)$")


def build(ctx: Context) -> Section:
    a_runs, b_runs = ctx.coll.by("p3", "A"), ctx.coll.by("p3", "B")
    runs = a_runs + b_runs
    sec = Section(TITLE, page_break=True)
    sec.blocks += demo_callout(runs)
    if runs:
        sec.add(Para(f"Model A is VGG16-FCN32s ({run_list(a_runs) or 'no run found'}); model B is DeepLabv3-ResNet50 "
                     f"({run_list(b_runs) or 'no run found'}). mIoU follows the official tool: one confusion matrix "
                     f"over the whole validation set, IoU of classes 0-5, unknown pixels excluded from the mean but "
                     f"still counted as errors when a real class is predicted on them (and vice versa).", "lead"))
    else:
        sec.add(not_available("Problem 3", "no P3 run folder was found (a folder with a config.yaml of task "
                                           "`segment`) under the given paths"))
    parts = [
        ("Network architecture of model A (VGG16-FCN32s)", "Draw the network architecture of your VGG16-FCN32s "
         "model (model A).", lambda: arch_a_section(ctx, a_runs)),
        ("Model B (DeepLabv3) and how it differs from FCN32s", "Draw the network architecture of the improved model "
         "(model B) and explain how it differs from your VGG16-FCN32s model.",
         lambda: arch_b_section(ctx, a_runs, b_runs)),
        ("Validation mIoU of A and B", "Report mIoUs of two models on the validation set.",
         lambda: miou_section(ctx, a_runs, b_runs)),
        ("Predicted masks over training (model B)", "Show the predicted segmentation masks of validation/0013_sat.jpg, "
         "0062_sat.jpg and 0104_sat.jpg during the early, middle and final stage of training of the improved model.",
         lambda: masks_section(ctx, a_runs, b_runs)),
        ("Training curves and throughput", "",
         lambda: curves_and_throughput(ctx, runs, "p3_curves", "the P3 runs", "Training curves and throughput")),
    ]
    for title, question, fn in parts:
        child = guarded(ctx, title, fn, question)
        child.title, child.question = title, child.question or question
        sec.children.append(child)
    return sec


# ------------------------------------------------------------------------------------ 3.1 / 3.2
def _distinct(runs: Sequence[Run]) -> list[Run]:
    seen, out = set(), []
    for r in runs:
        key = json.dumps(r.cfg("model"), sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out


def arch_a_section(ctx: Context, a_runs: Sequence[Run]) -> Section:
    s = Section("")
    if not a_runs:
        return s.add(not_available("Architecture of model A", "no run with `model.name: fcn32s` was found"))
    for r in _distinct(a_runs):
        arch = architecture_blocks(ctx, r, "model A (VGG16-FCN32s)")
        if arch.figure and arch.table:
            s.add(Columns([[arch.figure], [arch.table]], [2, 3]))
        else:
            s.blocks += [b for b in (arch.figure, arch.table) if b is not None]
        s.blocks += arch.notes
    s.add(Para("FCN32s: VGG16's five conv blocks (13 3×3 convolutions, each block ending in a 2×2 max-pool) reduce "
               "the image 32×; fc6 (7×7, 4096) and fc7 (1×1, 4096) are VGG's fully connected layers as "
               "convolutions, a 1×1 convolution scores the 7 classes, and a single learnable 64×64 transposed "
               "convolution with stride 32 (initialised to bilinear interpolation) brings the scores back to the "
               "input size, followed by a crop."))
    return s


STATIC = {  # architecture facts of each model family (the numbers come from the runs)
    "fcn32s": {"encoder": "VGG16 conv1-conv5 (13 plain 3×3 convolutions, 5 max-pools)",
               "context": "fc6 7×7 and fc7 1×1 convolutions on the stride-32 map; no multi-scale module",
               "decoder": "one learnable 32× transposed convolution (bilinear init), no skip connections",
               "norm": "none (no BatchNorm in VGG16)"},
    "deeplabv3_resnet50": {"encoder": "ResNet-50 whose layer3/layer4 use dilated (atrous) convolutions instead of "
                                      "striding",
                           "context": "ASPP: 1×1 conv + three 3×3 atrous convs (rates 12, 24, 36) + image-level "
                                      "pooling, concatenated and fused",
                           "decoder": "1×1 classifier, then bilinear upsampling (no learned upsampling)",
                           "norm": "BatchNorm throughout"},
}


DIFFERENCES = [
    "Resolution: FCN32s decides on a map 32× smaller than the image and recovers the full size in one "
    "step, so region boundaries come out blocky; DeepLabv3 keeps an 8× smaller map by replacing the last "
    "strides with dilated convolutions, so its scores are 4× finer in each direction before upsampling.",
    "Context: FCN32s sees context only through its receptive field; DeepLabv3's ASPP looks at several "
    "scales at once (atrous rates 12/24/36 and a global image-pooling branch), which helps tell large "
    "homogeneous regions (agriculture, rangeland, water) apart.",
    "Backbone: DeepLabv3's ResNet-50 has residual connections and BatchNorm (deeper, and easier to train) "
    "where FCN32s stacks plain convolutions; most of FCN32s's parameters sit in the 7×7 fc6 convolution.",
    "Both are encoder + upsampling networks with no skip connections from early layers (unlike FCN8s or "
    "DeepLabv3+).",
]


def score_stride(run: Run, ctx: Context) -> Optional[str]:
    """Input size / size of the first 7-channel (class-score) map, from the traced architecture."""
    from dlcv.report.architecture import cached_architecture

    arch = cached_architecture(run, ctx.cache, f"arch_{run.name}", "")
    if arch.error or not arch.input_shape:
        return None
    for row in arch.rows:
        dims = row.output.split("×")
        if len(dims) == 3 and dims[0] == "7":
            h = int(dims[1])
            return f"{arch.input_shape[1] // h} ({h}×{h} score map for {arch.input_shape[1]} px)"
    return None


def arch_b_section(ctx: Context, a_runs: Sequence[Run], b_runs: Sequence[Run]) -> Section:
    s = Section("")
    if not b_runs:
        s.add(not_available("Architecture of model B", "no run with `model.name: deeplabv3_resnet50` was found"))
    archs = [architecture_blocks(ctx, r, "model B (DeepLabv3-ResNet50)") for r in _distinct(b_runs)]
    figs = [a.figure for a in archs if a.figure is not None]
    for a in archs:
        s.blocks += [b for b in (a.table, *a.notes) if b is not None and not isinstance(b, Para)]
    both = [r for r in (a_runs[:1] + b_runs[:1]) if r.config is not None]
    bullets = list(DIFFERENCES)
    pa = next((r.summary.get("params") for r in a_runs if isinstance(r.summary.get("params"), int)), None)
    pb = next((r.summary.get("params") for r in b_runs if isinstance(r.summary.get("params"), int)), None)
    if pa and pb:
        bullets.append(f"Size: model B has {mega(pb)} parameters, {pb / pa:.2f}× model A's {mega(pa)} "
                       f"(summary.json of the runs).")
    if figs:  # the (tall, narrow) graph beside the explanation
        s.add(Columns([figs[:1], [Para("**How DeepLabv3 differs from FCN32s:**"), Bullets(bullets)]], [2, 3]))
        s.blocks += figs[1:]
    else:
        s.add(Para("**How DeepLabv3 differs from FCN32s:**"), Bullets(bullets))
    if not both:
        return s

    def fact(key):
        return lambda r: STATIC.get(str(r.cfg("model.name")), {}).get(key, "—")

    def row(label, fn):
        return [label] + [fn(r) for r in both]

    rows = [row("encoder", fact("encoder")), row("output stride", lambda r: score_stride(r, ctx) or "—"),
            row("context module", fact("context")), row("upsampling", fact("decoder")),
            row("normalisation", fact("norm")),
            row("parameters", lambda r: mega(r.summary.get("params"))),
            row("initial weights", lambda r: str(r.summary.get("pretrained", r.cfg("model.pretrained")))),
            row("loss", ct.loss), row("optimizer", ct.optimizer), row("LR schedule", ct.schedule),
            row("augmentation", ct.augment),
            row("batch size / epochs", lambda r: f"{r.cfg('data.batch_size')} / {ct.epochs_trained(r)}")]
    s.add(Table(["", *[f"{r.role.label}: `{r.name}`" for r in both]], rows,
                "FCN32s and DeepLabv3 side by side: architecture (output stride traced from the built models) and "
                "training recipe (from the resolved configs; parameters and initial weights from summary.json).",
                Source(both, ["config.yaml", "summary.json"]), data_tags(both)))
    return s


# ------------------------------------------------------------------------------------ 3.3
def _eval_metrics(run: Run) -> Optional[dict]:
    try:
        data = json.loads((run.path / "eval" / "metrics.json").read_text())
        return data if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None


def miou_of(run: Run) -> Optional[float]:
    v = run.summary.get("val_miou")
    if isinstance(v, (int, float)):
        return float(v)
    m = _eval_metrics(run)
    if m and isinstance(m.get("miou"), (int, float)):
        return float(m["miou"])
    col = run.column("val/miou")
    return max(v for _, v in col) if col else None


def per_class_iou(run: Run) -> dict[str, Optional[float]]:
    m = _eval_metrics(run)
    if m and isinstance(m.get("per_class"), list):
        return {c.get("name"): c.get("iou") for c in m["per_class"] if isinstance(c, dict)}
    if isinstance(run.summary.get("val_iou"), dict):
        return dict(run.summary["val_iou"])
    best = max(run.epochs, key=lambda r: r.get("val/miou") or -1, default=None)
    return {n: best.get(f"val/iou_{n}") for n in CLASS_NAMES} if best else {}


def miou_section(ctx: Context, a_runs: Sequence[Run], b_runs: Sequence[Run]) -> Section:
    s = Section("")
    runs = list(a_runs) + list(b_runs)
    if not runs:
        return s.add(not_available("mIoU", "no P3 run was found"))
    rows, scores = [], {}
    for r in runs:
        miou = miou_of(r)
        scores[r.name] = miou
        ious = per_class_iou(r)
        ref = P3[r.role.kind]
        rows.append([f"**{r.role.label.split(' ')[0]}**", f"`{r.name}`", pct(miou) if miou is not None else "not available",
                     *[pct(ious.get(n), 1) for n in CLASS_NAMES], str(r.summary.get("best_epoch", "—")),
                     ref_pct(ref["seed"]), ref_pct(ref["best_student"])])
    tags = data_tags(runs)
    demo = DEMO_TAG in tags
    s.add(Table(["model", "run", "mIoU (ours)", *CLASS_NAMES, "best epoch", "seed", "best student"], rows,
                "Validation mIoU and per-class IoU at the best epoch (by validation mIoU), official rule. Seed and "
                "best-student numbers are on the real data" + (": ours are DEMO numbers." if demo else "."),
                Source(runs, ["eval/metrics.json", "summary.json"]), tags, set(range(2, 12)), small=True))
    s.add(Table(["reference (real data)", "model A", "model B"],
                [["seed report", ref_pct(P3["A"]["seed"]), ref_pct(P3["B"]["seed"])],
                 ["best student", ref_pct(P3["A"]["best_student"]), ref_pct(P3["B"]["best_student"]) +
                  " (DeepLabv3-ResNet50 + focal loss)"],
                 ["course baselines", ref_pct(P3["baselines"][0]), ref_pct(P3["baselines"][1])]],
                "Reference mIoUs from the assignment and the seed report.", None, [], {1, 2}, small=True))
    absent = sorted({c for r in runs for c in (r.summary.get("absent_classes") or [])})
    if absent:
        s.add(Para(f"Classes absent from both prediction and ground truth in some run ({', '.join(absent)}) have no "
                   f"IoU and are left out of that run's mean (see eval/metrics.json).", "muted"))
    a = max((r for r in a_runs if scores.get(r.name) is not None), key=lambda r: scores[r.name], default=None)
    b = max((r for r in b_runs if scores.get(r.name) is not None), key=lambda r: scores[r.name], default=None)
    if a and b:
        d = 100 * (scores[b.name] - scores[a.name])
        worst_a = min(((n, v) for n, v in per_class_iou(a).items() if isinstance(v, (int, float))),
                      key=lambda t: t[1], default=None)
        s.add(Para(f"Model B (`{b.name}`) reaches {pct(scores[b.name])} mIoU, {abs(d):.1f} points "
                   f"{'above' if d >= 0 else 'below'} model A (`{a.name}`, {pct(scores[a.name])})"
                   + (f"; A's weakest class is {worst_a[0]} ({pct(worst_a[1], 1)})" if worst_a else "")
                   + (" (demo data)." if demo else ".")))
    return s


# ------------------------------------------------------------------------------------ 3.4
def saved_epochs(masks: Path) -> list[int]:
    return sorted(int(m.group(1)) for p in masks.iterdir() if p.is_dir() and (m := EPOCH_DIR.match(p.name)))


def _read(path: Path, decode_mask: bool = False) -> Optional[np.ndarray]:
    if not path.is_file():
        return None
    try:
        if decode_mask:
            from dlcv.data.masks import CLASS_COLORS, read_mask

            return CLASS_COLORS[read_mask(path, warn=False)]
        return figures.read_rgb(path)
    except Exception:  # noqa: BLE001 - one unreadable PNG is one "missing" cell
        return None


def masks_blocks(ctx: Context, r: Run) -> list:
    from dlcv.data.masks import CLASS_COLORS
    from dlcv.data.masks import CLASS_NAMES as ALL_NAMES

    masks = r.path / "masks"
    if not (masks / "inputs").is_dir():
        for fig in ("masks_over_epochs_overlay.png", "masks_over_epochs.png"):
            if r.has(f"figures/{fig}"):
                rel = ctx.assets.copy(r.file(f"figures/{fig}"), f"{r.name}_{Path(fig).stem}")
                return [Figure([Image(rel, "masks over epochs")], f"Predicted masks over training, `{r.name}` "
                               f"(the run's figures/{fig}; masks/ is missing).", Source([r], [f"figures/{fig}"]),
                               data_tags([r]), "wide")]
        return [not_available(f"Masks over epochs of {r.name}", "masks/ and figures/masks_over_epochs*.png are missing "
                                                                "(masks.enabled was false?)")]
    ids = sorted(p.name[:-len("_sat.png")] for p in (masks / "inputs").glob("*_sat.png"))
    epochs = saved_epochs(masks)
    if not ids or not epochs:
        return [not_available(f"Masks over epochs of {r.name}", "masks/ holds no input image or no epoch_XXX folder")]
    cols = ["image"] + [f"epoch {e}" for e in epochs] + ["ground truth"]
    legend = [(f"{i} {ALL_NAMES[i]}", CLASS_COLORS[i]) for i in range(len(ALL_NAMES))]
    blocks = []
    for kind, suffix, decode in (("overlay", "_overlay.png", False), ("mask", "_mask.png", True)):
        cells = [[_read(masks / "inputs" / f"{i}_sat.png")] +
                 [_read(masks / f"epoch_{e:03d}" / f"{i}{suffix}", decode) for e in epochs] +
                 [_read(masks / "gt" / f"{i}{suffix}", decode)] for i in ids]
        path, rel = ctx.assets.reserve(f"{r.name}_masks_{kind}", ".png")
        figures.image_grid(path, cells, [f"{i}_sat" for i in ids], cols, legend)
        blocks.append(Figure([Image(rel, f"predicted masks over epochs ({kind})")],
                             (f"Model {r.role.label}, `{r.name}`: predictions on validation images "
                              f"{', '.join(i + '_sat' for i in ids)} at epochs {', '.join(map(str, epochs))} "
                              f"(early, middle, final) beside the ground truth, "
                              + ("overlaid on the image (region outlines drawn opaque)." if kind == "overlay" else
                                 "as colour masks (legal colours only).")),
                             Source([r], ["masks/"]), data_tags([r]), "wide"))
    wanted = [i for i in P3_MASK_IDS if i not in ids]
    if wanted:
        blocks.append(Para(f"The assignment asks for images {', '.join(P3_MASK_IDS)}; this run saved "
                           f"{', '.join(ids)}" + (" (the demo validation set has its own ids)." if r.data_kind == "demo"
                                                  else " (set masks.ids in the config to choose them)."), "muted"))
    last = r.cfg("trainer.epochs")
    if epochs and (epochs[0] != 1 or epochs[-1] != last):
        blocks.append(Para(f"Note: the saved epochs {epochs} are not first…last of the {last} configured epochs "
                           f"(trained: {ct.epochs_trained(r)}).", "muted"))
    return blocks


def masks_section(ctx: Context, a_runs: Sequence[Run], b_runs: Sequence[Run]) -> Section:
    s = Section("")
    if not b_runs:
        s.add(not_available("Masks of model B", "no model B (DeepLabv3) run was found"))
    for r in b_runs:
        s.blocks += masks_blocks(ctx, r)
    return s
