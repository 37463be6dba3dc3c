"""What every problem's sections share: the build context, number formats, error isolation,
training curves and the epoch-time / throughput table."""
from __future__ import annotations

import math
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

from dlcv.report import figures
from dlcv.report.assets import Assets
from dlcv.report.doc import Callout, Figure, Image, Para, Section, Source, Table, not_available
from dlcv.report.provenance import data_tags, hardware
from dlcv.report.runs import Collection, Run


@dataclass
class Context:
    coll: Collection
    assets: Assets
    out: Path
    errors: list[str] = field(default_factory=list)  # internal errors, listed at the end of the report
    cache: Optional[Path] = None  # architecture figures by config hash (rebuilds are fast)


# ------------------------------------------------------------------------------------ formats
def pct(v, digits: int = 2) -> str:
    """A fraction in [0, 1] as a percentage; missing -> an em dash."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    return f"{100 * float(v):.{digits}f}%"


def ref_pct(v) -> str:
    """A reference number already in percent (the seed's, the course's)."""
    return "—" if v is None else f"{v:g}%"


def count(n) -> str:
    return "—" if n is None else f"{int(n):,}"


def mega(n) -> str:
    return "—" if n is None else (f"{n / 1e6:.2f} M" if n >= 1e5 else f"{int(n):,}")


def num(v, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    return f"{v:.{digits}g}" if isinstance(v, float) else str(v)


def run_list(runs: Sequence[Run]) -> str:
    return ", ".join(f"`{r.name}`" for r in runs)


# ------------------------------------------------------------------------------------ safety
def guarded(ctx: Context, title: str, build: Callable[[], Section], question: str = "") -> Section:
    """Build a section; any exception becomes a visible "not available" section, never a crash."""
    try:
        return build()
    except Exception as exc:  # noqa: BLE001 - the report must always be written
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        ctx.errors.append(f"{title}: {detail}")
        print(f"warning: report section {title!r} failed:\n{traceback.format_exc()}", file=sys.stderr)
        return Section(title, [not_available(title, f"the section could not be built from the run folders "
                                                    f"({detail}); see the list of build problems at the end")],
                       question=question)


def demo_callout(runs: Sequence[Run]) -> list:
    demo = [r for r in runs if r.data_kind == "demo"]
    if not demo:
        return []
    return [Callout("demo", "Demo data", f"The numbers in this part come from runs on generated demo data "
                                         f"({run_list(demo)}): they show that the pipeline works end to end, "
                                         f"not how the models do on the real assignment data.")]


# ------------------------------------------------------------------------------------ curves
CURVE_PANELS = {
    "classify": [("loss", "cross-entropy loss", [("train/loss", "train", False), ("val/loss", "validation", True)], False),
                 ("accuracy", "accuracy", [("train/acc", "train", False), ("val/acc", "validation", True)], True)],
    "segment": [("loss", "loss", [("train/loss", "train", False), ("val/loss", "validation", True)], False),
                ("validation mIoU / pixel accuracy", "score",
                 [("val/miou", "mIoU", False), ("val/pixel_acc", "pixel acc.", True)], True)],
    "byol": [("BYOL loss", "2 - 2 cos", [("train/loss", "train", False)], False),
             ("kNN accuracy (Office-Home val)", "accuracy", [("knn/acc", "kNN", False)], True)],
}


def curves_figure(ctx: Context, runs: Sequence[Run], stem: str, what: str) -> list:
    """One figure of loss / main metric / learning rate per epoch for these runs (one colour per run)."""
    with_rows = [r for r in runs if r.epochs]
    missing = [r for r in runs if not r.epochs]
    blocks: list = []
    for r in missing:
        blocks.append(not_available(f"Training curves of {r.name}",
                                    r.problems.get("epochs.csv", "epochs.csv has no rows")))
    if not with_rows:
        return blocks
    panels: list[figures.Panel] = []
    tasks = sorted({r.cfg("task") for r in with_rows}, key=str)
    for task in tasks:
        for title, ylabel, keys, percent in CURVE_PANELS.get(task, []):
            p = figures.Panel(title, ylabel, percent=percent)
            for i, r in enumerate(x for x in with_rows if x.cfg("task") == task):
                for key, label, dashed in keys:
                    pts = r.column(key)
                    if pts:
                        p.lines.append(figures.Line(f"{r.name} {label}" if len(with_rows) > 1 else label, pts,
                                                    figures.COLORS[i % len(figures.COLORS)], dashed))
            panels.append(p)
    lr = figures.Panel("learning rate (at the end of each epoch)", "lr", logy=False)
    for i, r in enumerate(with_rows):
        pts = r.column("lr")
        if pts:
            lr.lines.append(figures.Line(r.name, pts, figures.COLORS[i % len(figures.COLORS)]))
    panels.append(lr)
    path, rel = ctx.assets.reserve(stem, figures.CHART)
    figures.panels(path, panels, columns=3 if len(panels) >= 3 else 2, width=7.4)
    blocks.append(Figure([Image(rel, f"training curves of {what}")],
                         f"Training curves of {what}: loss and metric per epoch (solid: training, dashed: "
                         f"validation), and the learning rate.", Source(with_rows, ["epochs.csv"]),
                         data_tags(with_rows), "wide"))
    return blocks


def _mean(values) -> Optional[float]:
    values = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    return sum(values) / len(values) if values else None


def _images_per_s(row: dict):
    # BYOL logs source images/s without the kNN monitor as train/images_per_s; the engine's column otherwise
    v = row.get("train/images_per_s")
    return v if isinstance(v, (int, float)) else row.get("images_per_s")


def throughput_table(runs: Sequence[Run], what: str) -> list:
    """Epoch time, data-wait time and images/s of each run (epochs.csv)."""
    rows, used = [], []
    for r in runs:
        timed = [row for row in r.epochs if isinstance(row.get("epoch_time_s"), (int, float))]
        if not timed:
            rows.append([f"`{r.name}`", r.role.label, "—", "—", "—", "—", "—", "—", hardware(r)])
            continue
        used.append(r)
        # the first epoch pays one-off costs (cache decode, cuDNN autotune, lazy init): report it apart
        steady = timed[1:] if len(timed) > 1 else timed
        epoch_t = _mean([row.get("epoch_time_s") for row in steady])
        data_t = _mean([row.get("data_time_s") for row in steady])
        share = f" ({100 * data_t / epoch_t:.0f}%)" if data_t is not None and epoch_t else ""
        total = sum(row["epoch_time_s"] for row in timed)
        rows.append([f"`{r.name}`", r.role.label, str(len(timed)), f"{timed[0]['epoch_time_s']:.1f}",
                     num(epoch_t, 3), num(data_t, 2) + share if data_t is not None else "—",
                     num(_mean([_images_per_s(row) for row in steady]), 4),
                     f"{total / 60:.1f} min" if total >= 120 else f"{total:.0f} s", hardware(r)])
    if not used:
        return [not_available(f"Epoch time and throughput of {what}", "no run has epoch_time_s in its epochs.csv")]
    return [Table(["run", "role", "epochs", "epoch 1 (s)", "later epochs (s, mean)", "data wait (s, mean)",
                   "images/s (mean)", "total", "hardware"], rows,
                  f"Epoch time and training throughput of {what}. Epoch 1 is shown apart (one-off costs: data "
                  f"cache, lazy initialisation); the means are over the later epochs; data wait is the time the "
                  f"training loop waited for batches.", Source(used, ["epochs.csv", "meta.json"]),
                  data_tags(used), {2, 3, 4, 5, 6, 7}, small=True)]


def curves_and_throughput(ctx: Context, runs: Sequence[Run], stem: str, what: str, title: str,
                          plotted_elsewhere: str = "") -> Section:
    """Curves of every run (unless `plotted_elsewhere` says where they already are) + throughput."""
    s = Section(title, question="Additional: loss and metric per epoch of every run, epoch time and throughput.")
    if not runs:
        return s.add(not_available(title, f"no run folder of {what} was found"))
    if plotted_elsewhere:
        s.add(Para(plotted_elsewhere))
    else:
        s.blocks += curves_figure(ctx, runs, stem, what)
    s.blocks += throughput_table(runs, what)
    return s


# ------------------------------------------------------------------------------------ architecture
MAX_LAYER_ROWS = 32  # longer layer tables (EfficientNet, DeepLab) are left to the figure


@dataclass
class ArchBlocks:
    figure: Optional[Figure] = None
    table: Optional[Table] = None
    notes: list = field(default_factory=list)  # "not available" / "table omitted" paragraphs

    def flat(self) -> list:
        return [b for b in (self.figure, self.table) if b is not None] + self.notes


def architecture_blocks(ctx: Context, run: Run, label: str) -> ArchBlocks:
    """The model's generated architecture figure (+ its layer table when short enough)."""
    from dlcv.report.architecture import cached_architecture

    arch = cached_architecture(run, ctx.cache, f"arch_{run.name}", f"{label}: {run.cfg('model.name')}")
    if arch.error or arch.figure is None:
        return ArchBlocks(notes=[not_available(f"Architecture of {label}", arch.error or "no figure was drawn")])
    rel = ctx.assets.copy(arch.figure, f"arch_{run.name}")
    trainable = run.summary.get("trainable_params")
    params = f"{arch.params:,} parameters" + (f" ({trainable:,} trainable)" if isinstance(trainable, int)
                                               and trainable != arch.params else "")
    out = ArchBlocks(Figure([Image(rel, f"architecture of {label}", f"{label}: `{run.name}`")],
                            f"Architecture of {label} (`{run.cfg('model.name')}`), {params}, input "
                            f"{'×'.join(str(d) for d in arch.input_shape)}: {arch.method}. Built from the run's "
                            f"resolved config with pretrained weights disabled.",
                            Source([run], ["config.yaml"]), [], "tall"))
    if arch.rows and len(arch.rows) <= MAX_LAYER_ROWS:
        rows = [[f"`{r.name}`", r.layer, r.output, count(r.params)] for r in arch.rows]
        out.table = Table(["module", "layer (+ folded activation / norm / dropout)", "output (C×H×W)", "params"], rows,
                          f"Layers of {label} in call order, generated from the same model (residual additions "
                          f"and other functional operations are not listed).", None, [], {3}, small=True)
    elif arch.rows:
        out.notes.append(Para(f"The layer table of {label} ({len(arch.rows)} layers) is omitted; the figure shows the "
                              f"model at nesting depth {arch.depth}.", "muted"))
    return out
