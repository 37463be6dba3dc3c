"""Problem 2 (BYOL pre-training, then Office-Home fine-tuning in settings A-E): the report's questions
2.1 (SSL details) and 2.2 (the A-E table with a discussion computed from the numbers), then curves."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Optional, Sequence

from dlcv.report import configtext as ct
from dlcv.report import figures
from dlcv.report.common import (Context, count, curves_and_throughput, demo_callout, guarded, mega, pct, ref_pct,
                                run_list)
from dlcv.report.doc import Bullets, Callout, Figure, Image, Para, Section, Source, Table, not_available
from dlcv.report.provenance import DEMO_TAG, data_tags, display_path
from dlcv.report.references import P2_C_BASELINES, P2_SETTINGS
from dlcv.report.runs import Collection, Run

TITLE = "Problem 2: Self-supervised pre-training (BYOL) and Office-Home fine-tuning"
TIE_PP = 0.5  # differences below this many percentage points are called "about equal"


def build(ctx: Context) -> Section:
    byol, settings = ctx.coll.by("p2", "byol"), ctx.coll.by("p2", "setting")
    runs = byol + settings
    sec = Section(TITLE, page_break=True)
    sec.blocks += demo_callout(runs)
    if not runs and not ctx.coll.settings_tables:
        sec.add(not_available("Problem 2", "no P2 run folder was found (task `byol`, or task `classify` with dataset "
                                           "`office` named p2_setting_A..E) under the given paths"))
    # the curves already drawn in 2.1 (BYOL) and 2.2 (settings) are not drawn a second time
    elsewhere = ("The per-epoch curves of the P2 runs are in 2.1 (BYOL: loss, collapse monitor, kNN accuracy, tau) "
                 "and 2.2 (settings A–E: validation accuracy and training loss)."
                 if all(r.epochs for r in runs) and byol and settings else "")
    parts = [
        ("SSL method: BYOL pre-training details",
         "Describe the implementation details of your SSL method for pre-training the ResNet50 backbone.",
         lambda: ssl_section(ctx, byol)),
        ("Office-Home fine-tuning in settings A–E",
         "Conduct image classification on Office-Home as the downstream task in the five settings, complete the "
         "table, and discuss/analyse the results.", lambda: settings_section(ctx, settings)),
        ("Training curves and throughput", "",
         lambda: curves_and_throughput(ctx, runs, "p2_curves", "the P2 runs", "Training curves and throughput",
                                       elsewhere)),
    ]
    for title, question, fn in parts:
        child = guarded(ctx, title, fn, question)
        child.title, child.question = title, child.question or question
        sec.children.append(child)
    return sec


# ------------------------------------------------------------------------------------ 2.1
def byol_rows(r: Run) -> list[list[str]]:
    hidden, proj = r.cfg("model.hidden_dim"), r.cfg("model.proj_dim")
    backbone = r.cfg("model.backbone", "resnet50")
    feat = 2048 if backbone == "resnet50" else 512
    s = r.summary
    return [
        ["method", "BYOL (Grill et al. 2020): online network (backbone → projector → predictor) learns to predict "
                   "the target network's projection of another view of the same image"],
        ["backbone", f"torchvision {backbone}, random initialisation (no labels, no pretrained weights)"],
        ["projector / predictor", f"Linear({feat}, {hidden})-BN-ReLU-Linear({hidden}, {proj}) / "
                                  f"Linear({proj}, {hidden})-BN-ReLU-Linear({hidden}, {proj})"],
        ["target network", f"exponential moving average of the online backbone + projector; tau rises from "
                           f"{r.cfg('byol.tau_base')} to 1 on a cosine schedule, updated after every step"],
        ["loss", ct.loss(r)],
        ["augmentations", ct.augment(r)],
        ["pre-training images", f"{count(s.get('images'))} unlabeled mini-ImageNet images (p2_data/mini/train), "
                                f"decoded at {r.cfg('data.image_size') or 'native'} px, views at "
                                f"{r.cfg('byol.image_size')} px"],
        ["optimizer", ct.optimizer(r)],
        ["LR schedule", ct.schedule(r)],
        ["batch size", str(r.cfg("data.batch_size"))],
        ["epochs", ct.epochs_trained(r)],
        ["precision / devices", f"{ct.precision(r)}; devices {r.cfg('trainer.devices')}"
                                f"{', synchronised BatchNorm' if r.cfg('trainer.sync_batchnorm') else ''}"],
        ["monitor", f"kNN (k {r.cfg('byol.knn_k')}, {r.cfg('byol.knn_weighting')}) on Office-Home: train images as "
                    f"the bank, val as queries, every {r.cfg('byol.knn_every')} epoch(s); monitoring only, never "
                    f"used to pick a checkpoint" if (r.cfg("byol.knn_every") or 0) > 0 else "kNN monitor off"],
        ["output", "the online backbone of the last epoch (backbone.pt), used by settings C and E"],
    ]


def steps_per_epoch(r: Run) -> Optional[int]:
    steps = {int(row["epoch"]): row.get("step") for row in r.epochs if isinstance(row.get("epoch"), (int, float))}
    s1 = steps.get(1)
    return int(s1 - (steps.get(0) or 0)) if isinstance(s1, (int, float)) and s1 > 0 else None


def schedule_figure(ctx: Context, r: Run) -> list:
    """The per-step LR and tau schedules, recomputed from the config exactly as the task builds them."""
    from dlcv.schedules import lr_schedule_for, tau_schedule

    spe, epochs = steps_per_epoch(r), r.cfg("trainer.epochs")
    if spe and epochs and r.config is not None:
        from types import SimpleNamespace

        optim = SimpleNamespace(**r.cfg("optim"))
        lr = lr_schedule_for(optim, int(epochs), spe) * float(r.cfg("optim.lr"))
        tau = tau_schedule(int(epochs) * spe, float(r.cfg("byol.tau_base", 0.996)))
        path, rel = ctx.assets.reserve(f"{r.name}_schedules", figures.CHART)
        figures.panels(path, [
            figures.Panel("learning rate per step", "lr", [figures.Line(ct.schedule(r), list(enumerate(lr)), marker=False)],
                          xlabel="optimizer step"),
            figures.Panel("target EMA rate tau per step", "tau",
                          [figures.Line(f"cosine {r.cfg('byol.tau_base')} → 1", list(enumerate(tau)), marker=False)],
                          xlabel="optimizer step")], columns=2, width=7.2, row_height=2.4)
        how = (f"recomputed from the resolved config with `dlcv.schedules` ({spe} steps per epoch from epochs.csv, "
               f"{int(epochs) * spe} steps)")
    elif r.has("figures/schedules.png"):
        rel = ctx.assets.copy(r.file("figures/schedules.png"), f"{r.name}_schedules")
        how = "the run's figures/schedules.png"
    else:
        return [not_available(f"LR and tau schedules of {r.name}",
                              "epochs.csv has no step counts and figures/schedules.png is missing")]
    return [Figure([Image(rel, "learning-rate and tau schedules")],
                   f"BYOL learning-rate and target-EMA (tau) schedules of `{r.name}`, per optimizer step: {how}.",
                   Source([r], ["config.yaml", "epochs.csv"]), data_tags([r]), "wide")]


def byol_curves(ctx: Context, r: Run) -> list:
    loss, std, knn, tau = (r.column(k) for k in ("train/loss", "train/collapse_std", "knn/acc", "train/tau"))
    if not (loss or std or knn):
        return [not_available(f"BYOL curves of {r.name}", r.problems.get("epochs.csv", "epochs.csv has no BYOL columns"))]
    proj = r.cfg("model.proj_dim")
    healthy = 1 / math.sqrt(proj) if proj else None
    items = [figures.Panel("BYOL loss (2 - 2 cos, both views)", "loss", [figures.Line("train", loss)]),
             figures.Panel("collapse monitor: std of normalised projections", "std", [figures.Line("train", std)],
                           hline=(healthy, f"1/sqrt({proj}) (no collapse)") if healthy else None),
             figures.Panel("kNN accuracy on Office-Home val (epoch 0 = random init)", "accuracy",
                           [figures.Line("kNN", knn)], percent=True),
             figures.Panel("tau at the end of each epoch", "tau", [figures.Line("tau", tau)])]
    path, rel = ctx.assets.reserve(f"{r.name}_byol_curves", figures.CHART)
    figures.panels(path, items, columns=2, width=7.2)
    blocks: list = [Figure([Image(rel, "BYOL training curves")],
                           f"BYOL training of `{r.name}` per epoch: loss, the collapse monitor (the standard deviation "
                           f"of the l2-normalised projections across the batch; it goes to 0 when every image maps to "
                           f"the same point), the kNN monitor and tau.", Source([r], ["epochs.csv"]), data_tags([r]),
                           "wide")]
    words = []
    if knn:
        first, last = knn[0], knn[-1]
        delta = 100 * (last[1] - first[1])
        words.append(f"kNN accuracy on Office-Home val went from {pct(first[1], 1)} (epoch {first[0]}"
                     f"{', random init' if first[0] == 0 else ''}) to {pct(last[1], 1)} at epoch {last[0]} "
                     f"({delta:+.1f} points), "
                     + ("so the features became more useful for the downstream classes" if delta > TIE_PP else
                        "so pre-training did not (yet) make the features more useful for Office-Home classes"))
    if std and healthy:
        ratio = std[-1][1] / healthy
        state = ("no sign of collapse" if ratio >= 0.5 else "partial collapse" if ratio >= 0.2 else "collapse")
        words.append(f"the final collapse std is {std[-1][1]:.3f}, {ratio:.2f}× the {healthy:.3f} of spread-out "
                     f"projections: {state}")
    if words:
        blocks.append(Para("In this run " + "; ".join(words) + "."))
    return blocks


def ssl_section(ctx: Context, byol: Sequence[Run]) -> Section:
    s = Section("")
    if not byol:
        return s.add(not_available("BYOL pre-training", "no run folder with `task: byol` was found"))
    for r in byol:
        if r.config is None:
            s.add(not_available(f"Details of {r.name}", r.problems.get("config.yaml", "config.yaml is missing")))
            continue
        s.add(Table(["", f"`{r.name}`"], byol_rows(r),
                    f"SSL implementation details of `{r.name}`, read from its resolved config.yaml (counts from "
                    f"summary.json).", Source([r], ["config.yaml", "summary.json"]), data_tags([r])))
        if r.cfg("model.backbone") not in (None, "resnet50"):
            s.add(Callout("note", "Backbone",
                          f"This run pre-trains a {r.cfg('model.backbone')} instead of the assignment's ResNet50 "
                          f"(a CPU demo-scale option); configs/p2/byol.yaml is the ResNet50 recipe."))
        s.blocks += schedule_figure(ctx, r)
        s.blocks += byol_curves(ctx, r)
    return s


# ------------------------------------------------------------------------------------ 2.2
def setting_accuracies(coll: Collection) -> dict[str, tuple[Optional[float], Optional[Run]]]:
    """setting -> (val accuracy as a fraction, its run): the runs' summary.json first, then table.csv."""
    out: dict[str, tuple[Optional[float], Optional[Run]]] = {}
    for r in coll.by("p2", "setting"):
        acc = r.summary.get("val_acc")
        if isinstance(acc, (int, float)):
            out[r.role.setting] = (float(acc), r)
        elif r.role.setting not in out:
            col = r.column("val/acc")
            out[r.role.setting] = (max(v for _, v in col) if col else None, r)
    for t in coll.settings_tables:
        for row in t.rows:
            name, acc = str(row.get("setting")), row.get("our val acc")
            if name in P2_SETTINGS and name not in out and isinstance(acc, (int, float)):
                out[name] = (acc / 100, None)
    return out


def _pp(a: float, b: float) -> float:
    return 100 * (a - b)


def _compare(label_a: str, a: float, label_b: str, b: float, what: str) -> str:
    d = _pp(a, b)
    if abs(d) < TIE_PP:
        return f"{what}: about equal ({label_a} {pct(a, 1)} vs {label_b} {pct(b, 1)})."
    better, worse = ((label_a, a), (label_b, b)) if d > 0 else ((label_b, b), (label_a, a))
    return f"{what}: {better[0]} wins by {abs(d):.1f} points ({pct(better[1], 1)} vs {worse[0]} {pct(worse[1], 1)})."


def discussion(accs: dict[str, float], demo: bool) -> list[str]:
    """Sentences computed from the A-E numbers (fractions); only comparisons whose settings exist."""
    out = []
    if not accs:
        return out
    ranking = sorted(accs.items(), key=lambda kv: -kv[1])
    out.append("Ranking: " + " > ".join(f"{k} ({pct(v, 1)})" for k, v in ranking) + ".")
    best = ranking[0][0]
    out.append(f"Best: setting {best} ({P2_SETTINGS[best][0]}, {P2_SETTINGS[best][1]}).")
    pairs = [("B", "D", "Supervised start, fine-tuned (B) vs frozen (D)"),
             ("C", "E", "BYOL start, fine-tuned (C) vs frozen (E)"),
             ("C", "A", "BYOL pre-training vs random init, both fine-tuned (C vs A)"),
             ("B", "A", "Supervised pre-training vs random init, both fine-tuned (B vs A)"),
             ("B", "C", "Supervised vs BYOL start, fine-tuned (B vs C)"),
             ("D", "E", "Supervised vs BYOL backbone, frozen (D vs E)")]
    for x, y, what in pairs:
        if x in accs and y in accs:
            out.append(_compare(x, accs[x], y, accs[y], what))
    if "B" in accs and "D" in accs and "C" in accs and "E" in accs:
        ft = (_pp(accs["B"], accs["D"]), _pp(accs["C"], accs["E"]))
        if ft[0] > TIE_PP and ft[1] > TIE_PP:
            out.append("Fine-tuning the whole backbone beats training the classifier alone for both starts: the "
                       "pretrained features are not linearly ready for Office-Home's 65 classes as they are.")
        elif ft[0] < -TIE_PP and ft[1] < -TIE_PP:
            out.append("Training the classifier alone beats fine-tuning for both starts: fine-tuning the whole "
                       "backbone overfits or is too short here.")
    if demo:
        out.append("These are demo-data numbers (a few epochs, small backbone, generated images); they show the "
                   "five settings run end to end, and say little about the real task.")
    else:
        seed = {k: P2_SETTINGS[k][2] / 100 for k in accs}
        wins = [k for k in accs if accs[k] >= seed[k]]
        out.append(f"Against the seed report: ours is at least as good in {len(wins)} of {len(accs)} settings"
                   + (f" ({', '.join(wins)})" if wins else "") + ".")
        if "C" in accs:
            lo, hi = P2_C_BASELINES
            state = ("above both course baselines" if 100 * accs["C"] >= hi else
                     "between the course baselines" if 100 * accs["C"] >= lo else "below the course baselines")
            out.append(f"Setting C ({pct(accs['C'], 1)}) is {state} ({lo:g}% / {hi:g}%).")
    return out


def _config_differences(runs: Sequence[Run]) -> list[str]:
    """Keys (dotted) whose values differ between the settings' configs, besides the expected ones."""
    expected = {"run.name", "model.pretrained", "model.freeze"}

    def flat(d, prefix=""):
        out = {}
        for k, v in (d or {}).items():
            key = f"{prefix}{k}"
            out.update(flat(v, key + ".") if isinstance(v, dict) else {key: repr(v)})
        return out

    flats = [flat(r.config) for r in runs if r.config is not None]
    keys = set().union(*flats) if flats else set()
    return sorted(k for k in keys if k not in expected and len({f.get(k) for f in flats}) > 1)


def _weights(pre) -> str:
    """summary.json's `pretrained`: a file path is shown as <folder>/<file> (the full path is in config.yaml)."""
    if not isinstance(pre, str) or not pre:
        return "—"
    if "/" in pre:
        p = Path(pre)
        return f"`{p.parent.name}/{p.name}`"
    return pre


def settings_section(ctx: Context, settings: Sequence[Run]) -> Section:
    s = Section("")
    accs = setting_accuracies(ctx.coll)
    if not accs:
        why = "no setting run (p2_setting_A..E) and no p2_settings/table.csv was found"
        probs = [f"{display_path(t.path)}: {p}" for t in ctx.coll.settings_tables for p in t.problems.values()]
        return s.add(not_available("The A–E table", why + (f" ({'; '.join(probs)})" if probs else "")))
    used = [r for r in settings]
    tags = data_tags(used)
    demo = DEMO_TAG in tags
    s.add(_settings_table(accs, settings, used, tags, demo))
    sl = ctx.coll.by("p2", "sl_standin")
    if sl:
        s.add(Callout("note", "Settings B and D started from a demo stand-in",
                      f"The course's pretrain_model_SL.pt is not available here: B and D started from a stand-in in "
                      f"its exact format, a supervised network trained on other demo images ({run_list(sl)})."))
    diffs = _config_differences(settings)
    if len(settings) > 1:
        s.add(Para("Checked from the resolved configs: the settings differ only in `model.pretrained` and "
                   "`model.freeze`." if not diffs else
                   f"Warning: besides `model.pretrained` / `model.freeze`, the settings' configs also differ in "
                   f"{', '.join(f'`{d}`' for d in diffs[:8])}: the comparison is not like for like.",
                   "muted" if not diffs else ""))
    base = next((r for r in settings if r.config is not None), None)
    if base is not None:
        s.add(_shared_details_table(base))
    s.blocks += _settings_curves(ctx, settings, used, tags)
    s.add(Para("**Discussion** (generated from the numbers above):"))
    s.add(Bullets(discussion({k: v for k, (v, _) in accs.items() if v is not None}, demo)))
    missing = [n for n in P2_SETTINGS if n not in accs]
    if missing:
        s.add(not_available(f"Setting(s) {', '.join(missing)}", "no run folder or table row for them"))
    return s


def _settings_table(accs: dict, settings: Sequence[Run], used: list[Run], tags: list[str], demo: bool) -> Table:
    """The assignment's A–E table: ours beside the seed report and the best student."""
    by_name = {r.role.setting: r for r in settings}
    rows = []
    for name, (start, trains, seed, best) in P2_SETTINGS.items():
        acc, run = accs.get(name, (None, None))
        r = by_name.get(name)
        pre = r.summary.get("pretrained") if r else None
        rows.append([f"**{name}**", start, trains, pct(acc) if acc is not None else "not run", ref_pct(seed),
                     ref_pct(best), mega(r.summary.get("trainable_params")) if r else "—",
                     f"`{r.name}`" if r else ("table.csv" if acc is not None else "—"),
                     _weights(pre)])
    return Table(["setting", "backbone start", "what trains", "val. accuracy (ours)", "seed report", "best student",
                  "trainable params", "run", "weights loaded"], rows,
                 "Office-Home validation accuracy of the best epoch in the five settings (same classifier head, same "
                 "base config). Seed and best-student numbers are on the real data" +
                 (": ours are DEMO numbers." if demo else "."),
                 Source(used, ["summary.json", "config.yaml"], "" if used else "from p2_settings/table.csv"),
                 tags, {3, 4, 5, 6})


def _shared_details_table(base: Run) -> Table:
    """The fine-tuning details the five settings share, read from one setting's resolved config."""
    return Table(["", "value"], [
        ["network / head", f"{ct.model(base)}; head: {'dropout + ' if base.cfg('model.dropout') else ''}"
                           f"Linear to {base.cfg('model.num_classes')} classes (the same in all five)"],
        ["input", ct.input_pipeline(base)], ["training augmentation", ct.augment(base)],
        ["optimizer", ct.optimizer(base)], ["LR schedule", ct.schedule(base)], ["loss", ct.loss(base)],
        ["batch size / epochs", f"{base.cfg('data.batch_size')} / {ct.epochs_trained(base)}"],
        ["frozen backbone (D, E)", "no gradient and BatchNorm in eval mode (running statistics fixed)"]],
        f"Fine-tuning details shared by the five settings (from `{base.name}`'s resolved config).",
        Source([base], ["config.yaml"]), data_tags([base]))


def _settings_curves(ctx: Context, settings: Sequence[Run], used: list[Run], tags: list[str]) -> list:
    """The settings' validation accuracy and training loss per epoch, one figure (none without curves)."""
    curves = [(r.role.setting, r.column("val/acc")) for r in settings if r.column("val/acc")]
    if not curves:
        return []
    path, rel = ctx.assets.reserve("p2_settings_val_acc", figures.CHART)
    figures.panels(path, [
        figures.Panel("validation accuracy", "accuracy",
                      [figures.Line(f"{n}: {P2_SETTINGS[n][0]}, {'frozen' if 'frozen' in P2_SETTINGS[n][1] else 'fine-tuned'}",
                                    pts) for n, pts in curves], percent=True),
        figures.Panel("training loss", "cross entropy",
                      [figures.Line(r.role.setting, r.column("train/loss")) for r in settings])],
        columns=2, width=7.4, row_height=2.9)
    return [Figure([Image(rel, "settings A-E validation accuracy per epoch")],
                   "Settings A–E per epoch: validation accuracy and training loss.",
                   Source(used, ["epochs.csv"]), tags, "wide")]
