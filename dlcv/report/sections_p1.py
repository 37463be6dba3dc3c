"""Problem 1 (50-class image classification): questions 1.1-1.6 in the assignment's order, then
per-class results (1.7) and training curves/throughput (1.8), from each run's own files."""
from __future__ import annotations

from typing import Optional

from dlcv.report import common, figures
from dlcv.report import configtext as ct
from dlcv.report.common import Context, lacks, pct, problem, ref_pct, run_list
from dlcv.report.doc import Bullets, Figure, Para, Section, Table, not_available
from dlcv.references import P1
from dlcv.report.runs import Run
from dlcv.runfolder import METRICS, SUMMARY

TITLE = "Problem 1: Image classification (50 classes)"
PCA_PNG, TSNE_PNG, CONFUSION_PNG = "figures/pca.png", "figures/tsne.png", "eval/confusion.png"
PCA_TEXT = ("Each point is one validation image's second-last-layer output projected onto the two directions of "
            "largest variance (their share of the variance is in each title), coloured by class: classes apart along "
            "these two directions form groups of one colour; overlapping ones may still differ along other directions.")
TSNE_TEXT = ("t-SNE (same perplexity and seed at every epoch) keeps each point's nearest neighbours, not distances: "
             "same-coloured groups forming from the first to the last epoch are classes the training pulled together.")


def build(ctx: Context) -> Section:
    a, b = ctx.coll.by("p1", "A"), ctx.coll.by("p1", "B")
    intro = ([Para(f"Model A is trained from scratch ({run_list(a) or 'no run found'}); model B fine-tunes an "
                   f"ImageNet-pretrained CNN ({run_list(b) or 'no run found'}). The validation images pick the best "
                   f"epoch and are never trained on.")] if a or b else
             [not_available("Problem 1", "no P1 run folder (task `classify`, dataset `p1`) was found")])
    return problem(ctx, TITLE, intro, [
        ("Network architecture of models A and B", "Draw the network architecture of method A or B.", "P1", a + b,
         lambda: architectures(ctx, a, b)),
        ("Validation accuracy of A and B", "Report accuracy of your models (both A, B) on the validation set.",
         "P1", a + b, lambda: accuracy(a, b)),
        ("Implementation details of model A", "Report your implementation details of model A.", "model A", a,
         lambda: details(a)),
        ("Model B and how it differs from model A",
         "Report your alternative model or method in B, and describe its difference from model A.",
         "model B (`convnext_*` / `efficientnet_lite0`)", b, lambda: difference(a, b)),
        ("PCA of model A's second-last layer",
         "Visualise the learned representations of model A on the validation set with PCA on the output of the "
         "second-last layer, and briefly explain the result.", "model A", a, lambda: pca(ctx, a)),
        ("t-SNE of model A's second-last layer over training",
         "Visualise the same representations with t-SNE at three epochs including the first and the last, and "
         "briefly explain the results.", "model A", a, lambda: tsne(ctx, a)),
        ("Per-class accuracy and confusion matrices", "Additional: where the models err, class by class.", "P1",
         a + b, lambda: per_class(ctx, a + b)),
        ("Training curves and throughput", "Additional: loss and metric per epoch, epoch time and throughput.",
         "P1", a + b, lambda: common.curves_and_throughput(ctx, a + b, "p1_curves", "the P1 runs")),
    ])


def architectures(ctx: Context, a: list[Run], b: list[Run]) -> list:
    blocks = common.architectures(ctx, a + b, lambda r: f"model {r.role.label}")
    return blocks + ([] if b else [not_available("Architecture of model B", "no model B run was found")])


def val_acc(run: Run) -> Optional[float]:
    v = run.summary.get("val_acc")
    return float(v) if isinstance(v, (int, float)) else None


def accuracy(a: list[Run], b: list[Run]) -> list:
    runs = a + b
    rows = [[f"**{r.role.label}**", f"`{r.name}`", f"`{r.cfg('model.name')}`", pct(val_acc(r)),
             common.count(r.summary.get("val_images")),
             f"{r.summary.get('best_epoch', '—')} / {ct.epochs_trained(r)}",
             ref_pct(P1[r.role.kind]["seed"]), ref_pct(P1[r.role.kind]["best_student"])] for r in runs]
    blocks: list = [Table(["model", "run", "network", "val. accuracy (ours)", "val. images", "best / trained epochs",
                           "seed report", "best student"], rows,
                          f"Validation accuracy of the best epoch (picked by validation accuracy, then re-evaluated). "
                          f"The seed report's and the best students' numbers are on the real data; the course "
                          f"baselines are {' / '.join(ref_pct(v) for v in P1['baselines'])}.", runs, [SUMMARY],
                          [3, 4, 6, 7])]
    blocks += [lacks(r, SUMMARY, f"Validation accuracy of {r.name}") for r in runs if val_acc(r) is None]
    best_a = max((r for r in a if val_acc(r) is not None), key=val_acc, default=None)
    best_b = max((r for r in b if val_acc(r) is not None), key=val_acc, default=None)
    if best_a and best_b:
        blocks.append(Para(f"Best B (`{best_b.name}`, {pct(val_acc(best_b))}) minus best A (`{best_a.name}`, "
                           f"{pct(val_acc(best_a))}): {100 * (val_acc(best_b) - val_acc(best_a)):+.1f} points."))
    return blocks


def details(a: list[Run]) -> list:
    return common.recipe(a, ["network", "parameters", "initial weights", "input", "optimizer", "LR schedule", "loss",
                             "batch size / epochs", "training augmentation", "validation preprocessing",
                             "precision / devices", "seed"],
                         "Implementation details of model A, from each run's resolved config.yaml (parameter counts "
                         "from summary.json).")


def difference(a: list[Run], b: list[Run]) -> list:
    blocks = common.recipe(a + b, ["network", "initial weights", "frozen parameters", "trainable parameters", "input",
                                   "optimizer", "LR schedule", "batch size / epochs", "training augmentation"],
                           "Model B beside model A, from the resolved configs (pretrained weights and parameter "
                           "counts from summary.json).")
    return blocks + [Bullets([f"`{r.name}` starts from **{common.RECIPE['initial weights'](r)}** weights where model "
                              f"A starts from random ones, trains {common.RECIPE['trainable parameters'](r)} of its "
                              f"parameters ({ct.freeze(r).split(':')[0]}) and sees the images as "
                              f"{ct.input_pipeline(r)}." for r in b if r.config])]


def pca(ctx: Context, a: list[Run]) -> list:
    have, images, missing = common.copied(ctx, a, PCA_PNG, "PCA", "pca")
    if not have:
        return missing
    return [Figure(images, f"PCA (two components) of model A's second-last-layer outputs on the validation set at "
                           f"the last saved epoch, coloured by class ({run_list(have)}, left to right).",
                   have, [PCA_PNG]), Para(PCA_TEXT)] + missing


def tsne(ctx: Context, a: list[Run]) -> list:
    have, images, blocks = common.copied(ctx, a, TSNE_PNG, "t-SNE", "tsne")
    for r, image in zip(have, images):
        epochs, last = common.listing(r.file("features"), "epoch_*.npz"), r.cfg("trainer.epochs")
        blocks.append(Figure([image], f"t-SNE of model {r.role.label}'s second-last-layer outputs on the validation "
                                      f"set at epochs {', '.join(map(str, epochs)) or '?'} (`{r.name}`).",
                             [r], [TSNE_PNG, "features/"]))
        if epochs and (epochs[0] != 1 or epochs[-1] != last):
            blocks.append(Para(f"The saved epochs {epochs} of `{r.name}` are not the first and the last of its "
                               f"{last} configured epochs (trained: {ct.epochs_trained(r)})."))
    return blocks + ([Para(TSNE_TEXT)] if have else [])


def per_class(ctx: Context, runs: list[Run]) -> list:
    have, blocks = [], []
    for r in runs:
        metrics, missing = common.need_json(r, METRICS, f"Per-class accuracy of {r.name}")
        if metrics and isinstance(metrics.get("per_class_accuracy"), list):
            have.append((r, metrics))
        blocks += missing
    if have:
        n = max(len(m["per_class_accuracy"]) for _, m in have)
        path, rel = ctx.assets.reserve("p1_per_class", figures.CHART)
        figures.grouped_bars(path, [str(i) for i in range(n)], {
            f"{r.role.label.split(' ')[0]} {r.name}": (m["per_class_accuracy"] + [None] * n)[:n] for r, m in have},
            "accuracy")
        used = [r for r, _ in have]
        blocks.append(Figure([rel], "Validation accuracy per class (class id on the x axis).", used, [METRICS]))
        rows = []
        for r, m in have:
            ranked = sorted((a, i) for i, a in enumerate(m["per_class_accuracy"]) if a is not None)
            rows.append([f"`{r.name}`", pct(m.get("accuracy")), *(", ".join(f"{i} ({100 * a:.0f}%)" for a, i in part)
                                                                  for part in (ranked[:5], ranked[::-1][:5]))])
        blocks.append(Table(["run", "accuracy", "5 hardest classes", "5 easiest classes"], rows,
                            "Hardest and easiest classes (validation accuracy per class).", used, [METRICS], [1]))
    have_cm, images, missing = common.copied(ctx, runs, CONFUSION_PNG, "Confusion matrix", "confusion")
    if have_cm:
        blocks.append(Figure(images, f"Confusion matrices (rows: true class, normalised per row) of "
                                     f"{run_list(have_cm)}, left to right.", have_cm, [CONFUSION_PNG]))
    return blocks + missing
