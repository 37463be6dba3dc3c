"""Problem 1 (50-class image classification): the report's questions 1.1-1.6 in the assignment's
order, then per-class results and training curves/throughput. The sections of 1.5 and 1.6 (PCA and
t-SNE of model A's features) are in :mod:`dlcv.report.sections_p1_features`."""
from __future__ import annotations

import json
from typing import Optional, Sequence

from dlcv.report import configtext as ct
from dlcv.report import figures
from dlcv.report.common import (Context, architecture_blocks, count, curves_and_throughput, demo_callout, guarded,
                                mega, pct, ref_pct, run_list)
from dlcv.report.doc import Bullets, Columns, Figure, Image, Para, Section, Source, Table, not_available
from dlcv.report.provenance import data_tags
from dlcv.report.references import P1
from dlcv.report.runs import Run
from dlcv.report.sections_p1_features import pca_section, tsne_section

TITLE = "Problem 1: Image classification (50 classes)"


def build(ctx: Context) -> Section:
    a_runs, b_runs = ctx.coll.by("p1", "A"), ctx.coll.by("p1", "B")
    runs = a_runs + b_runs
    sec = Section(TITLE, page_break=True)
    sec.blocks += demo_callout(runs)
    if runs:
        sec.add(Para(f"Model A is trained from scratch ({run_list(a_runs) or 'no run found'}); model B fine-tunes "
                     f"an ImageNet-pretrained CNN ({run_list(b_runs) or 'no run found'}). Validation images are "
                     f"never used for training; they pick the best epoch and are reported below.", "lead"))
    else:
        sec.add(not_available("Problem 1", "no P1 run folder was found (a folder with a config.yaml of task "
                                           "`classify` and dataset `p1`) under the given paths"))
    parts = [
        ("Network architecture of models A and B", "Draw the network architecture of method A or B.",
         lambda: architecture_section(ctx, a_runs, b_runs)),
        ("Validation accuracy of A and B", "Report accuracy of your models (both A, B) on the validation set.",
         lambda: accuracy_section(a_runs, b_runs)),
        ("Implementation details of model A", "Report your implementation details of model A.",
         lambda: details_section(a_runs)),
        ("Model B and how it differs from model A",
         "Report your alternative model or method in B, and describe its difference from model A.",
         lambda: difference_section(a_runs, b_runs)),
        ("PCA of model A's second-last layer",
         "Visualise the learned representations of model A on the validation set with PCA on the output of "
         "the second-last layer, and briefly explain the result.", lambda: pca_section(ctx, a_runs)),
        ("t-SNE of model A's second-last layer over training",
         "Visualise the same representations with t-SNE at three epochs including the first and the last, and "
         "briefly explain the results.", lambda: tsne_section(ctx, a_runs)),
        ("Per-class accuracy and confusion matrices", "Additional: where the models err, class by class.",
         lambda: per_class_section(ctx, runs)),
        ("Training curves and throughput", "",
         lambda: curves_and_throughput(ctx, runs, "p1_curves", "the P1 runs", "Training curves and throughput")),
    ]
    for title, question, fn in parts:
        child = guarded(ctx, title, fn, question)
        child.title, child.question = title, child.question or question
        sec.children.append(child)
    return sec


# ------------------------------------------------------------------------------------ 1.1
def architecture_section(ctx: Context, a_runs: Sequence[Run], b_runs: Sequence[Run]) -> Section:
    s = Section("")
    if not a_runs and not b_runs:
        return s.add(not_available("Architecture figures", "no P1 model A or B run was found"))
    drawn: set[str] = set()
    archs = []
    for r in list(a_runs) + list(b_runs):
        key = json.dumps(r.cfg("model"), sort_keys=True, default=str)
        if key in drawn:  # the same model trained twice: one figure
            continue
        drawn.add(key)
        archs.append(architecture_blocks(ctx, r, f"model {r.role.label}"))
    figs = [a.figure for a in archs if a.figure is not None]
    for i in range(0, len(figs), 3):  # the graphs side by side, at most three to a row
        s.add(Columns([[f] for f in figs[i:i + 3]]))
    for a in archs:
        s.blocks += [b for b in (a.table, *a.notes) if b is not None]
    if not b_runs:
        s.add(not_available("Architecture of model B", "no model B run (convnext_* / efficientnet_lite0) was found"))
    return s


# ------------------------------------------------------------------------------------ 1.2
def val_accuracy(run: Run) -> tuple[Optional[float], str]:
    """(accuracy, where it came from): summary.json, else eval/metrics.json, else the best epochs.csv row."""
    if isinstance(run.summary.get("val_acc"), (int, float)):
        return float(run.summary["val_acc"]), "summary.json"
    metrics = run.path / "eval" / "metrics.json"
    try:
        return float(json.loads(metrics.read_text())["accuracy"]), "eval/metrics.json"
    except (OSError, ValueError, KeyError, TypeError):
        pass
    col = run.column("val/acc")
    if col:
        return max(v for _, v in col), "epochs.csv (best epoch; no final evaluation)"
    return None, ""


def accuracy_section(a_runs: Sequence[Run], b_runs: Sequence[Run]) -> Section:
    s = Section("")
    runs = list(a_runs) + list(b_runs)
    if not runs:
        return s.add(not_available("Validation accuracy", "no P1 run was found"))
    rows, files, accs = [], set(), {}
    for r in runs:
        acc, where = val_accuracy(r)
        if where:
            files.add(where.split(" ")[0])
        accs[r.name] = acc
        ref = P1[r.role.kind]
        epochs = f"{r.summary.get('best_epoch', '—')} / {ct.epochs_trained(r)}"
        rows.append([f"**{r.role.label}**", f"`{r.name}`", f"`{r.cfg('model.name')}`",
                     pct(acc) if acc is not None else "not available", count(r.summary.get("val_images")), epochs,
                     ref_pct(ref["seed"]), ref_pct(ref["best_student"])])
    tags = data_tags(runs)
    demo = "demo data" in tags
    s.add(Table(["model", "run", "network", "val. accuracy (ours)", "val. images", "best / trained epochs",
                 "seed report", "best student"], rows,
                "Validation accuracy of the best epoch (chosen by validation accuracy, then re-evaluated). Seed "
                "and best-student numbers are on the real data (SPEC.md)" +
                (": ours are on DEMO data, so the columns are not comparable." if demo else "."),
                Source(runs, sorted(files) or ["summary.json"]), tags, {3, 4, 6, 7}))
    s.add(Table(["reference (real data)", "accuracy"],
                [["seed report, model A (its 32×232 resize bug kept the 50-way layer from running)", ref_pct(P1['A']['seed'])],
                 ["seed report, model B (ConvNeXt, all but the last stage frozen)", ref_pct(P1['B']['seed'])],
                 ["best from-scratch result students reported", ref_pct(P1['A']['best_student'])],
                 ["course baselines", " / ".join(ref_pct(b) for b in P1["baselines"])]],
                "Reference numbers from the assignment and the seed report, for comparison only.", None, [], {1},
                small=True))
    best_a = max((r for r in a_runs if accs.get(r.name) is not None), key=lambda r: accs[r.name], default=None)
    best_b = max((r for r in b_runs if accs.get(r.name) is not None), key=lambda r: accs[r.name], default=None)
    if best_a and best_b:
        diff = 100 * (accs[best_b.name] - accs[best_a.name])
        word = "above" if diff > 0 else "below"
        s.add(Para(f"Model B (`{best_b.name}`) reaches {pct(accs[best_b.name])}, {abs(diff):.1f} percentage points "
                   f"{word} the best model A (`{best_a.name}`, {pct(accs[best_a.name])})" +
                   (" on demo data." if demo else ".")))
    return s


# ------------------------------------------------------------------------------------ 1.3
def details_rows(runs: Sequence[Run]) -> list[list[str]]:
    def row(label, fn):
        return [label] + [fn(r) for r in runs]

    return [
        row("network", ct.model),
        row("parameters (trainable)", lambda r: f"{mega(r.summary.get('params'))} ({mega(r.summary.get('trainable_params'))})"),
        row("initialisation", lambda r: str(r.summary.get("pretrained", r.cfg("model.pretrained", "?")))),
        row("input", ct.input_pipeline),
        row("optimizer", ct.optimizer),
        row("LR schedule", ct.schedule),
        row("loss", ct.loss),
        row("batch size", lambda r: str(r.cfg("data.batch_size"))),
        row("epochs", ct.epochs_trained),
        row("training augmentation", ct.augment),
        row("validation preprocessing", lambda r: ct.input_pipeline(r) + ", no augmentation"),
        row("precision / devices", lambda r: f"{ct.precision(r)}; devices {r.cfg('trainer.devices')}"),
        row("seed", lambda r: str(r.cfg("run.seed"))),
    ]


def details_section(a_runs: Sequence[Run]) -> Section:
    s = Section("")
    usable = [r for r in a_runs if r.config is not None]
    for r in a_runs:
        if r.config is None:
            s.add(not_available(f"Details of {r.name}", r.problems.get("config.yaml", "config.yaml is missing")))
    if not usable:
        return s.add(not_available("Implementation details of model A", "no model A run with a readable config.yaml"))
    s.add(Table(["", *[f"{r.role.label}: `{r.name}`" for r in usable]], details_rows(usable),
                "Implementation details of model A, read from each run's resolved config.yaml (and the "
                "parameter counts from summary.json).", Source(usable, ["config.yaml", "summary.json"]),
                data_tags(usable)))
    return s


# ------------------------------------------------------------------------------------ 1.4
def difference_section(a_runs: Sequence[Run], b_runs: Sequence[Run]) -> Section:
    s = Section("")
    if not b_runs:
        return s.add(not_available("Model B", "no model B run (convnext_* / efficientnet_lite0) was found"))
    runs = [r for r in list(a_runs) + list(b_runs) if r.config is not None]

    def row(label, fn):
        return [label] + [fn(r) for r in runs]

    def trainable(r):
        p, t = r.summary.get("params"), r.summary.get("trainable_params")
        if isinstance(p, int) and isinstance(t, int) and p:
            return f"{mega(t)} of {mega(p)} ({100 * t / p:.1f}%)"
        return "—"

    rows = [row("network", ct.model), row("pretrained weights", lambda r: str(r.summary.get("pretrained", r.cfg("model.pretrained")))),
            row("frozen parameters", ct.freeze), row("trainable parameters", trainable),
            row("input pipeline", ct.input_pipeline), row("optimizer", ct.optimizer), row("LR schedule", ct.schedule),
            row("batch size / epochs", lambda r: f"{r.cfg('data.batch_size')} / {ct.epochs_trained(r)}"),
            row("training augmentation", ct.augment)]
    s.add(Table(["", *[f"{r.role.label.split(' ')[0]}: `{r.name}`" for r in runs]], rows,
                "Model B beside model A, from the resolved configs (pretrained source and parameter counts from "
                "summary.json).", Source(runs, ["config.yaml", "summary.json"]), data_tags(runs)))
    bullets = []
    for b in b_runs:
        if b.config is None:
            continue
        p, t = b.summary.get("params"), b.summary.get("trainable_params")
        share = f"{100 * t / p:.1f}%" if isinstance(p, int) and isinstance(t, int) and p else "an unknown share"
        bullets.append(f"`{b.name}` starts from **{b.summary.get('pretrained', b.cfg('model.pretrained'))}** weights "
                       f"instead of random ones and trains {share} of its {mega(p)} parameters "
                       f"({ct.freeze(b).split(':')[0]}).")
        bullets.append(f"Its input pipeline differs: {ct.input_pipeline(b)}, so the 32×32 images are enlarged to "
                       f"the resolution the pretrained filters expect.")
    for a in a_runs:
        if a.config is not None:
            bullets.append(f"Model A `{a.name}` ({a.cfg('model.name')}) learns every one of its "
                           f"{mega(a.summary.get('params'))} parameters from the 50-class training images alone.")
    s.add(Bullets(bullets))
    return s


# ------------------------------------------------------------------------------------ 1.7
def _metrics(run: Run) -> Optional[dict]:
    try:
        data = json.loads((run.path / "eval" / "metrics.json").read_text())
        return data if isinstance(data.get("per_class_accuracy"), list) else None
    except (OSError, ValueError, AttributeError):
        return None


def per_class_section(ctx: Context, runs: Sequence[Run]) -> Section:
    s = Section("")
    if not runs:
        return s.add(not_available("Per-class accuracy", "no P1 run was found"))
    have = [(r, m) for r in runs if (m := _metrics(r)) is not None]
    for r in runs:
        if all(r is not h for h, _ in have):
            s.add(not_available(f"Per-class accuracy of {r.name}", "eval/metrics.json is missing or unreadable"))
    if have:
        n = max(len(m["per_class_accuracy"]) for _, m in have)
        series = {f"{r.role.label.split(' ')[0]} {r.name}": (m["per_class_accuracy"] + [None] * n)[:n] for r, m in have}
        path, rel = ctx.assets.reserve("p1_per_class", figures.CHART)
        figures.grouped_bars(path, [str(i) for i in range(n)], series, "accuracy", width=7.4, height=2.9,
                             rotate=n > 20)
        used = [r for r, _ in have]
        s.add(Figure([Image(rel, "per-class validation accuracy")],
                     "Validation accuracy per class (class id on the x axis), every P1 run.",
                     Source(used, ["eval/metrics.json"]), data_tags(used), "wide"))
        rows = []
        for r, m in have:
            acc = m["per_class_accuracy"]
            valid = [(i, a) for i, a in enumerate(acc) if a is not None]
            valid.sort(key=lambda t: t[1])
            worst = ", ".join(f"{i} ({100 * a:.0f}%)" for i, a in valid[:5])
            best = ", ".join(f"{i} ({100 * a:.0f}%)" for i, a in valid[::-1][:5])
            rows.append([f"`{r.name}`", pct(m.get("accuracy")), worst, best])
        s.add(Table(["run", "accuracy", "5 hardest classes", "5 easiest classes"], rows,
                    "Hardest and easiest classes (validation accuracy per class).",
                    Source(used, ["eval/metrics.json"]), data_tags(used), {1}, small=True))
    cms = [r for r in runs if r.has("eval/confusion.png")]
    for i in range(0, len(cms), 2):
        chunk = cms[i:i + 2]
        imgs = [Image(ctx.assets.copy(r.file("eval/confusion.png"), f"{r.name}_confusion"), f"confusion of {r.name}",
                      f"{r.role.label}: `{r.name}`") for r in chunk]
        s.add(Figure(imgs, "Confusion matrices (rows: true class, normalised per row).",
                     Source(chunk, ["eval/confusion.png"]), data_tags(chunk), "wide" if len(imgs) > 1 else "normal"))
    return s
