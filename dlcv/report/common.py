"""What every problem's sections share: the build context, number formats, error isolation, the
artefact rule ("not available: <run> lacks <file>; <command> writes it"), architecture figures,
training curves and the epoch-time / throughput table."""
from __future__ import annotations

import json
import math
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

from dlcv.report import configtext as ct
from dlcv.report import figures
from dlcv.analysis.architecture import ARCH_JSON
from dlcv.report.assets import Assets
from dlcv.report.doc import Block, Callout, Figure, Para, Section, Table, not_available
from dlcv.report.provenance import command, hardware
from dlcv.report.runs import Collection, Run, why
from dlcv.runfolder import CONFIG, EPOCHS, META, SUMMARY, read_json

MAX_LAYER_ROWS = 32  # longer layer tables (EfficientNet, DeepLab) are left to the figure


@dataclass
class Context:
    coll: Collection
    assets: Assets
    errors: list[str] = field(default_factory=list)  # internal errors, listed in the appendix


def pct(v, digits: int = 2) -> str:
    """A fraction in [0, 1] as a percentage; missing -> an em dash."""
    ok = isinstance(v, (int, float)) and math.isfinite(v)
    return f"{100 * float(v):.{digits}f}%" if ok else "—"


def ref_pct(v) -> str:
    """A reference number already in percent (the seed's, the course's)."""
    return "—" if v is None else f"{v:g}%"


def count(n) -> str:
    return f"{int(n):,}" if isinstance(n, (int, float)) else "—"


def mega(n) -> str:
    return "—" if not isinstance(n, (int, float)) else (f"{n / 1e6:.2f} M" if n >= 1e5 else f"{int(n):,}")


def run_list(runs: Sequence[Run]) -> str:
    return ", ".join(f"`{r.name}`" for r in runs)


def _trainable(r: Run) -> str:
    p, t = r.summary.get("params"), r.summary.get("trainable_params")
    return f"{mega(t)} of {mega(p)} ({100 * t / p:.1f}%)" if isinstance(p, int) and isinstance(t, int) and p else "—"


RECIPE = {  # row of a recipe table -> the run's value: configtext's phrase of its config, or summary.json's count
    "network": ct.model, "parameters": lambda r: mega(r.summary.get("params")), "trainable parameters": _trainable,
    "initial weights": lambda r: str(r.summary.get("pretrained", r.cfg("model.pretrained", "?"))),
    "frozen parameters": ct.freeze, "input": ct.input_pipeline, "training augmentation": ct.augment,
    "validation preprocessing": lambda r: ct.input_pipeline(r) + ", no augmentation",
    "optimizer": ct.optimizer, "LR schedule": ct.schedule, "loss": ct.loss,
    "batch size / epochs": lambda r: f"{r.cfg('data.batch_size')} / {ct.epochs_trained(r)}",
    "precision / devices": lambda r: f"{ct.precision(r)}; devices {r.cfg('trainer.devices')}",
    "seed": lambda r: str(r.cfg("run.seed")),
}


def recipe(runs: Sequence[Run], rows: Sequence[str], caption: str) -> list[Block]:
    """One column per run with a readable config.yaml: the RECIPE rows; "not available" for the others."""
    have = [r for r in runs if r.config]
    missing = [lacks(r, CONFIG, f"Configuration of {r.name}") for r in runs if not r.config]
    return missing if not have else [Table(["", *[f"{r.role.label}: `{r.name}`" for r in have]],
                                           [[k] + [RECIPE[k](r) for r in have] for k in rows], caption, have,
                                           [CONFIG, SUMMARY])] + missing


def guarded(ctx: Context, title: str, build: Callable[[], list]) -> list:
    """Build a section's blocks; an exception becomes a visible "not available" block, never a crash."""
    try:
        return build()
    except Exception as exc:  # noqa: BLE001 - the report must always be written
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        ctx.errors.append(f"{title}: {detail}")
        print(f"warning: report section {title!r} failed:\n{traceback.format_exc()}", file=sys.stderr)
        return [not_available(title, f"the section could not be built ({detail}); see the build notes")]


Part = tuple[str, str, str, list, Callable[[], list]]  # title, question, who, runs, build


def problem(ctx: Context, title: str, intro: list, parts: list[Part]) -> Section:
    """A problem's section: its intro, then per (title, question, who, runs, build) a sub-section built
    from the runs (guarded), or "not available" when there is no `who` run."""
    return Section(title, blocks=intro, children=[
        Section(t, q, guarded(ctx, t, fn) if runs else [not_available(t, f"no {who} run folder was found")])
        for t, q, who, runs, fn in parts])


def lacks(run: Run, rel: str, what: str) -> Callout:
    """The one "not available" line for a run's missing or unreadable file: which file, and the
    command that writes it (the run's own, from meta.json)."""
    problem = run.problems.get(rel, "")
    state = f"`{run.name}`: {problem}" if "unreadable" in problem else f"`{run.name}` lacks `{rel}`"
    return not_available(what, f"{state}; `{command(run)}` writes it.")


def need_json(run: Run, rel: str, what: str) -> tuple[Optional[dict], list]:
    """(the JSON artefact, []) or (None, [its "not available" line])."""
    if not run.has(rel):
        return None, [lacks(run, rel, what)]
    try:
        return read_json(run.file(rel)), []
    except (OSError, ValueError) as exc:
        run.problems[rel] = f"{rel} is unreadable ({why(exc, run.file(rel))})"
        return None, [lacks(run, rel, what)]


def copied(ctx: Context, runs: Sequence[Run], rel: str, what: str, stem: str) -> tuple[list[Run], list[str], list]:
    """(runs that have the figure `rel`, its copies in assets/, "not available" lines of the others)."""
    have = [r for r in runs if r.has(rel)]
    images = [ctx.assets.copy(r.file(rel), f"{r.name}_{stem}") for r in have]
    return have, images, [lacks(r, rel, f"{what} of {r.name}") for r in runs if not r.has(rel)]


def architecture(ctx: Context, run: Run, label: str) -> list[Block]:
    """The model's architecture figure and (when short) its layer table, as its job drew them."""
    info, missing = need_json(run, ARCH_JSON, f"Architecture of {label}")
    if info is None:
        return missing
    fig = str(info.get("figure") or "")
    if not run.has(fig):
        return [lacks(run, fig or ARCH_JSON, f"Architecture figure of {label}")]
    shape = "×".join(str(d) for d in info.get("input") or [])
    blocks: list[Block] = [Figure([ctx.assets.copy(run.file(fig), f"arch_{run.name}")],
                                  f"Architecture of {label} (`{run.cfg('model.name')}`, `{run.name}`), "
                                  f"{count(info.get('params'))} parameters, input {shape}: {info.get('method')}.",
                                  [run], [fig])]
    layers = info.get("layers") or []
    if 0 < len(layers) <= MAX_LAYER_ROWS:
        blocks.append(Table(["module", "layer (+ folded activation / norm / dropout)", "output (C×H×W)", "params"],
                            [[f"`{n}`", layer, out, count(p)] for n, layer, out, p in layers],
                            f"Layers of {label} in call order (residual additions and other functional "
                            f"operations are not listed).", [run], [ARCH_JSON], [3]))
    elif layers:
        blocks.append(Para(f"The layer table of {label} ({len(layers)} layers) is left to the figure."))
    return blocks


def architectures(ctx: Context, runs: Sequence[Run], label: Callable[[Run], str]) -> list[Block]:
    """`architecture` of each distinct model (the same model trained twice: once), figures side by side."""
    models: dict[str, Run] = {}
    for r in runs:
        models.setdefault(json.dumps(r.cfg("model"), sort_keys=True, default=str), r)
    blocks = [b for r in models.values() for b in architecture(ctx, r, label(r))]
    if len(figs := [b for b in blocks if isinstance(b, Figure)]) < 2:
        return blocks
    row = Figure([i for f in figs for i in f.images], "Left to right: " + " ".join(f.caption for f in figs),
                 [r for f in figs for r in f.runs], sorted({x for f in figs for x in f.files}))
    return [row] + [b for b in blocks if not isinstance(b, Figure)]


PANELS = {  # task -> [(title, y label, [(epochs.csv column, label, dashed)], percent)]
    "classify": [("loss", "cross entropy", [("train/loss", "train", False), ("val/loss", "val", True)], False),
                 ("accuracy", "accuracy", [("train/acc", "train", False), ("val/acc", "val", True)], True)],
    "segment": [("loss", "loss", [("train/loss", "train", False), ("val/loss", "val", True)], False),
                ("validation mIoU / pixel accuracy", "score",
                 [("val/miou", "mIoU", False), ("val/pixel_acc", "pixel acc.", True)], True)],
    "byol": [("BYOL loss (2 - 2 cos)", "loss", [("train/loss", "train", False)], False),
             ("kNN accuracy (epoch 0: random init)", "accuracy", [("knn/acc", "kNN", False)], True),
             ("collapse monitor (projection std)", "std", [("train/collapse_std", "std", False)], False),
             ("target EMA rate tau", "tau", [("train/tau", "tau", False)], False)],
}


def curves(ctx: Context, runs: Sequence[Run], stem: str, what: str) -> list[Block]:
    """Loss / metric / learning rate per epoch of these runs in one figure (one colour per run)."""
    have = [r for r in runs if r.epochs]
    blocks: list[Block] = [lacks(r, EPOCHS, f"Training curves of {r.name}") for r in runs if not r.epochs]
    if not have:
        return blocks
    items = []
    for task in sorted({str(r.cfg("task")) for r in have}):
        mine = [r for r in have if r.cfg("task") == task]
        for title, ylabel, keys, percent in PANELS.get(task, []):
            lines = [figures.Line(f"{r.name} {label}" if len(have) > 1 else label, r.column(key),
                                  figures.COLORS[i % len(figures.COLORS)], dashed)
                     for i, r in enumerate(mine) for key, label, dashed in keys]
            items.append(figures.Panel(title, ylabel, lines, percent))
    items.append(figures.Panel("learning rate (end of epoch)", "lr", [
        figures.Line(r.name, r.column("lr"), figures.COLORS[i % len(figures.COLORS)]) for i, r in enumerate(have)]))
    path, rel = ctx.assets.reserve(stem, figures.CHART)
    figures.panels(path, items)
    return [Figure([rel], f"Training curves of {what}: loss and metric per epoch (solid: training, dashed: "
                          f"validation), and the learning rate.", have, [EPOCHS])] + blocks


def _mean(values) -> Optional[float]:
    values = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    return sum(values) / len(values) if values else None


def throughput(runs: Sequence[Run], what: str) -> list[Block]:
    """Epoch time, data-wait time and images/s of each run (epochs.csv)."""
    rows, used = [], []
    for r in runs:
        timed = [row for row in r.epochs if isinstance(row.get("epoch_time_s"), (int, float))]
        if not timed:
            continue
        used.append(r)
        steady = timed[1:] or timed  # epoch 1 pays one-off costs (cache decode, autotune, lazy init)
        epoch_t, data_t = _mean([x.get("epoch_time_s") for x in steady]), _mean([x.get("data_time_s") for x in steady])
        # BYOL logs images/s without its kNN monitor as train/images_per_s
        ips = _mean([x.get("train/images_per_s") or x.get("images_per_s") for x in steady])
        total = sum(x["epoch_time_s"] for x in timed)
        share = f"{data_t:.2g} ({100 * data_t / epoch_t:.0f}%)" if data_t is not None and epoch_t else "—"
        rows.append([f"`{r.name}`", r.role.label, len(timed), f"{timed[0]['epoch_time_s']:.1f}", f"{epoch_t:.3g}",
                     share, "—" if ips is None else f"{ips:.4g}",
                     f"{total / 60:.1f} min" if total >= 120 else f"{total:.0f} s", hardware(r)])
    if not used:
        return [not_available(f"Epoch time and throughput of {what}", "no run has epoch_time_s in its epochs.csv")]
    return [Table(["run", "role", "epochs", "epoch 1 (s)", "later epochs (s, mean)", "data wait (s, mean)",
                   "images/s (mean)", "total", "hardware"], rows,
                  f"Epoch time and training throughput of {what}; epoch 1 apart (one-off costs), means over the "
                  f"later epochs; data wait: time the training loop waited for batches.", used, [EPOCHS, META],
                  [2, 3, 4, 5, 6, 7])]


def curves_and_throughput(ctx: Context, runs: Sequence[Run], stem: str, what: str) -> list[Block]:
    return curves(ctx, runs, stem, what) + throughput(runs, what)


def listing(folder: Path, pattern: str) -> list[int]:
    """The epoch numbers in the names of a run's per-epoch files (e.g. features/epoch_003.npz)."""
    names = (p.name for p in folder.glob(pattern)) if folder.is_dir() else ()
    return sorted(int(digits) for n in names if (digits := "".join(c for c in n if c.isdigit())))
