"""Problem 2 (BYOL pre-training, then Office-Home fine-tuning in settings A-E): questions 2.1 (SSL
details) and 2.2 (the A-E table and its discussion, in numbers), then curves/throughput (2.3)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from dlcv.report import common
from dlcv.report import configtext as ct
from dlcv.report.common import Context, lacks, mega, pct, problem, ref_pct, run_list
from dlcv.report.doc import Bullets, Callout, Figure, Para, Table, not_available
from dlcv.report.provenance import DEMO_TAG, data_tags
from dlcv.jobs.p2_settings import SETTINGS
from dlcv.references import P2, P2_C_BASELINES
from dlcv.report.runs import Collection, Run
from dlcv.runfolder import BYOL_LEARNS, BYOL_LEARNS_PNG, CONFIG, SUMMARY

TITLE = "Problem 2: Self-supervised pre-training (BYOL) and Office-Home fine-tuning"
SCHEDULES_PNG = "figures/schedules.png"
PAIRS = [("B", "D", "supervised start: fine-tuned minus frozen"), ("C", "E", "BYOL start: fine-tuned minus frozen"),
         ("C", "A", "fine-tuned: BYOL start minus random init"), ("B", "A", "fine-tuned: supervised minus random init"),
         ("B", "C", "fine-tuned: supervised minus BYOL start"), ("D", "E", "frozen: supervised minus BYOL backbone")]


def build(ctx: Context):
    byol, settings = ctx.coll.by("p2", "byol"), ctx.coll.by("p2", "setting")
    intro = [] if byol or settings else [not_available("Problem 2", "no P2 run folder (task `byol`, or task "
                                                                    "`classify` on `office` named p2_setting_A..E) "
                                                                    "was found")]
    return problem(ctx, TITLE, intro, [
        ("SSL method: BYOL pre-training details",
         "Describe the implementation details of your SSL method for pre-training the ResNet50 backbone.",
         "BYOL (`task: byol`)", byol, lambda: ssl(ctx, byol)),
        ("Office-Home fine-tuning in settings A–E",
         "Conduct image classification on Office-Home as the downstream task in the five settings, complete the "
         "table, and discuss/analyse the results.", "setting (p2_setting_A..E; `dlcv p2-settings` trains them)",
         settings, lambda: settings_section(ctx.coll, settings)),
        ("Training curves and throughput", "Additional: loss and metric per epoch, epoch time and throughput.", "P2",
         byol + settings, lambda: common.curves_and_throughput(ctx, byol + settings, "p2_curves", "the P2 runs")),
    ])


def byol_rows(r: Run) -> list[list[str]]:
    hidden, proj = r.cfg("model.hidden_dim"), r.cfg("model.proj_dim")
    backbone = r.cfg("model.backbone", "resnet50")
    feat = 2048 if backbone == "resnet50" else 512
    knn = (f"kNN (k {r.cfg('byol.knn_k')}, {r.cfg('byol.knn_weighting')}) on Office-Home: train images as the bank, "
           f"val as queries, every {r.cfg('byol.knn_every')} epoch(s); monitoring only, never used to pick a "
           f"checkpoint" if (r.cfg("byol.knn_every") or 0) > 0 else "kNN monitor off")
    return [
        ["method", "BYOL (Grill et al. 2020): the online network (backbone → projector → predictor) learns to "
                   "predict the target network's projection of another view of the same image"],
        ["backbone", f"torchvision {backbone}, random initialisation (no labels, no pretrained weights)"],
        ["projector / predictor", f"Linear({feat}, {hidden})-BN-ReLU-Linear({hidden}, {proj}) / "
                                  f"Linear({proj}, {hidden})-BN-ReLU-Linear({hidden}, {proj})"],
        ["target network", f"exponential moving average of the online backbone + projector; tau rises from "
                           f"{r.cfg('byol.tau_base')} to 1 on a cosine schedule, updated after every step"],
        ["loss", ct.loss(r)], ["augmentations", ct.augment(r)],
        ["pre-training images", f"{common.count(r.summary.get('images'))} unlabeled mini-ImageNet images "
                                f"(p2_data/mini/train), decoded at {r.cfg('data.image_size') or 'native'} px, views "
                                f"at {r.cfg('byol.image_size')} px"],
        ["optimizer", ct.optimizer(r)], ["LR schedule", ct.schedule(r)], ["batch size", str(r.cfg("data.batch_size"))],
        ["epochs", ct.epochs_trained(r)],
        ["precision / devices", f"{ct.precision(r)}; devices {r.cfg('trainer.devices')}"
                                f"{', synchronised BatchNorm' if r.cfg('trainer.sync_batchnorm') else ''}"],
        ["monitor", knn], ["output", "the online backbone of the last epoch (backbone.pt), used by settings C and E"],
    ]


def ssl(ctx: Context, byol: list[Run]) -> list:
    blocks: list = []
    for r in byol:
        if not r.config:
            blocks.append(lacks(r, CONFIG, f"Details of {r.name}"))
            continue
        blocks.append(Table(["", f"`{r.name}`"], byol_rows(r), f"SSL implementation details of `{r.name}`, from its "
                            f"resolved config.yaml (image count from summary.json).", [r], [CONFIG, SUMMARY]))
        if r.cfg("model.backbone") not in (None, "resnet50"):
            blocks.append(Callout("Backbone", f"This run pre-trains a {r.cfg('model.backbone')} instead of the "
                                              f"assignment's ResNet50 (a CPU demo-scale option); configs/p2/byol.yaml "
                                              f"is the ResNet50 recipe."))
        have, images, missing = common.copied(ctx, [r], SCHEDULES_PNG, "LR and tau schedules", "schedules")
        blocks += [Figure(images, f"Learning-rate and target-EMA (tau) schedules of `{r.name}` per optimizer step, "
                                  f"as its training used them.", have, [SCHEDULES_PNG])] if have else missing
        s = r.summary
        if isinstance(s.get("knn_final"), (int, float)) or isinstance(s.get("final_collapse_std"), (int, float)):
            blocks.append(Para(f"`{r.name}` (summary.json): kNN accuracy {pct(s.get('knn_random_init'), 1)} at random "
                               f"init, {pct(s.get('knn_final'), 1)} after the last epoch; final collapse std "
                               f"{s.get('final_collapse_std')} (spread-out projections: 1/sqrt(projection dim) = "
                               f"{s.get('collapse_std_healthy')}). Per-epoch curves in 2.3."))
        blocks += byol_learns(ctx, r)
    return blocks


def byol_learns(ctx: Context, r: Run) -> list:
    """The "does BYOL learn?" probe (`dlcv.bench.byol_learns`), where a run folder holds it (the demo's)."""
    if not r.has(BYOL_LEARNS):
        return []
    probes, missing = common.need_json(r, BYOL_LEARNS, "the BYOL-learns probe")
    if probes is None:
        return missing
    blocks = []
    for name, p in probes.items():
        start, end, st = p["curve"][0], p["curve"][-1], p["setup"]
        blocks.append(Para(
            f"Does BYOL learn? (`{BYOL_LEARNS}`, setup `{name}`): the same BYOL code pre-trains a random-init "
            f"ResNet-18 for {end['step']} steps of {st['batch']} on {st['pool']:,} unlabeled object-identity images "
            f"({st['view_size']} px views; a class is an outline + a pattern; colour, background, position and scale "
            f"vary per image). On held-out images, identity kNN goes from {pct(start['knn'], 1)} at random init to "
            f"{pct(end['knn'], 1)} ({100 * (end['knn'] - start['knn']):+.1f} points; chance {pct(p['chance'], 1)}), "
            f"and view retrieval (a view finds its image's other view among {round(1 / p['retrieval_chance'])}) from "
            f"{pct(start['retrieval'], 1)} to {pct(end['retrieval'], 1)}, in {end['seconds']:.0f} s of training."))
    have, images, missing = common.copied(ctx, [r], BYOL_LEARNS_PNG, "the BYOL-learns curves", "byol_learns")
    if have:
        blocks.append(Figure(images, "BYOL on object identities: held-out kNN accuracy and view retrieval per step, "
                                     "against the same backbone at random init (dashed).", have, [BYOL_LEARNS_PNG]))
    return blocks + missing


def setting_accuracies(coll: Collection) -> dict[str, tuple[Optional[float], Run]]:
    """setting -> (validation accuracy as a fraction, or None without summary.json; its run)."""
    out: dict[str, tuple[Optional[float], Run]] = {}
    for r in coll.by("p2", "setting"):
        acc = r.summary.get("val_acc")
        if isinstance(acc, (int, float)) or r.role.setting not in out:
            out[r.role.setting] = (float(acc) if isinstance(acc, (int, float)) else None, r)
    return out


def discussion(accs: dict[str, float], demo: bool) -> list[str]:
    """The A-E numbers as differences (fractions in, points out): numbers, no verdicts."""
    if not accs:
        return []
    out = ["Ranking: " + " > ".join(f"{k} ({pct(v, 1)})" for k, v in sorted(accs.items(), key=lambda kv: -kv[1]))
           + "."]
    out += [f"{x} − {y} ({what}): {100 * (accs[x] - accs[y]):+.1f} points." for x, y, what in PAIRS
            if x in accs and y in accs]
    if "C" in accs:
        out.append(f"Setting C: {pct(accs['C'], 1)}; the course baselines are "
                   f"{' / '.join(ref_pct(v) for v in P2_C_BASELINES)} on the real data.")
    if demo:
        out.append("These are demo-data numbers (a few epochs, a small backbone, generated images).")
    return out


def _weights(pre) -> str:
    """summary.json's `pretrained`: a file is shown as <folder>/<file> (the full path is in config.yaml)."""
    if not isinstance(pre, str) or not pre:
        return "—"
    return f"`{Path(pre).parent.name}/{Path(pre).name}`" if "/" in pre else pre


def _config_differences(runs: Sequence[Run]) -> list[str]:
    """Dotted config keys whose values differ between the settings, besides the expected ones."""
    def flat(d, prefix=""):
        out = {}
        for k, v in (d or {}).items():
            out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": repr(v)})
        return out

    flats = [flat(r.config) for r in runs if r.config]
    keys = set().union(*flats) - {"run.name", "model.pretrained", "model.freeze"}
    return sorted(k for k in keys if len({f.get(k) for f in flats}) > 1)


def settings_section(coll: Collection, settings: list[Run]) -> list:
    accs = setting_accuracies(coll)
    demo = DEMO_TAG in data_tags(settings)
    rows = []
    for name, setting in SETTINGS.items():
        acc, r = accs.get(name, (None, None))
        rows.append([f"**{name}**", setting.start_text, setting.trains, pct(acc) if r else "not run",
                     ref_pct(P2[name]["seed"]), ref_pct(P2[name]["best_student"]),
                     mega(r.summary.get("trainable_params")) if r else "—", f"`{r.name}`" if r else "—",
                     _weights(r.summary.get("pretrained")) if r else "—"])
    blocks: list = [Table(["setting", "backbone start", "what trains", "val. accuracy (ours)", "seed report",
                           "best student", "trainable params", "run", "weights loaded"], rows,
                          "Office-Home validation accuracy of the best epoch in the five settings (same classifier "
                          "head, same base config). The seed report's and the best students' numbers are on the real "
                          "data.", settings, [SUMMARY, CONFIG], [3, 4, 5, 6])]
    blocks += [lacks(r, SUMMARY, f"Accuracy of {r.role.label}") for _, (acc, r) in sorted(accs.items()) if acc is None]
    if sl := coll.by("p2", "sl_standin"):
        blocks.append(Callout("Settings B and D started from a demo stand-in", f"The course's pretrain_model_SL.pt is "
                              f"not available here: B and D started from a supervised network in its exact format, "
                              f"trained on other demo images ({run_list(sl)})."))
    if len(settings) > 1:
        diffs = _config_differences(settings)
        also = f", and also in {', '.join(map('`{}`'.format, diffs[:8]))}" if diffs else ""
        blocks.append(Para(f"From the resolved configs: the settings differ {'' if diffs else 'only '}in "
                           f"`model.pretrained` and `model.freeze`{also}."))
    if base := next((r for r in settings if r.config), None):
        blocks += common.recipe([base], ["network", "input", "training augmentation", "optimizer", "LR schedule",
                                         "loss", "batch size / epochs"],
                                f"Fine-tuning details shared by the five settings (from `{base.name}`'s resolved "
                                f"config; a frozen backbone gets no gradient and keeps BatchNorm in eval mode).")
    blocks += [Para("**Discussion** (the numbers above as differences):"),
               Bullets(discussion({k: v for k, (v, _) in accs.items() if v is not None}, demo))]
    if missing := [n for n in SETTINGS if n not in accs]:
        blocks.append(not_available(f"Setting(s) {', '.join(missing)}", "no run folder for them; `dlcv p2-settings "
                                                                        f"--settings {' '.join(missing)}` trains them"))
    return blocks
