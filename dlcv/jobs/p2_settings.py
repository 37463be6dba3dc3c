"""P2's five fine-tuning settings A-E on Office-Home, and the A-E table of the report.

    dlcv p2-settings [configs/p2/finetune.yaml] [key=value ...] [--sl PATH] [--byol PATH] [--settings A B C D E]

Every setting is an ordinary classification run (`dlcv.jobs.classify.fit`, dataset office) of the
SAME base config -- model, classifier head, optimizer, epochs, augmentation -- and differs only in
where the backbone starts (`model.pretrained`) and what trains (`model.freeze`):

  A  random init                       backbone + classifier
  B  supervised pretrain_model_SL.pt   backbone + classifier
  C  our BYOL backbone (backbone.pt)   backbone + classifier
  D  supervised pretrain_model_SL.pt   classifier only: backbone frozen (no gradient, BN in eval mode)
  E  our BYOL backbone                 classifier only: backbone frozen

So the head is one definition for all five: the base config's (e.g. resnet50 with
`model.dropout: 0` = one Linear(2048, 65)). Runs go to <run.dir>/<prefix><X>/ (default
runs/p2_setting_A ...); the table and the curves to <run.dir>/p2_settings/:
  table.md, table.csv   setting, backbone start, what trains, our val acc, seed's, best student's
  val_acc.png           validation accuracy per epoch of every setting
  summary.json          the same numbers for the report
A finished run with the same resolved config, newer than its starting weights file, is reused
(`--overwrite` retrains every setting).
"""
from __future__ import annotations

import argparse
import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from dlcv import runfolder
from dlcv.config import load_config, to_yaml
from dlcv.errors import ConfigError, WeightsError
from dlcv.io import atomic_path, write_text
from dlcv.references import P2
from dlcv.runfolder import markdown_table


@dataclass(frozen=True)
class Setting:
    start: str  # "none" | "sl" | "byol": which weights file the backbone starts from
    start_text: str
    freeze: str  # model.freeze
    trains: str


SETTINGS: dict[str, Setting] = {
    "A": Setting("none", "random init", "none", "backbone + classifier"),
    "B": Setting("sl", "supervised pretrain_model_SL.pt", "none", "backbone + classifier"),
    "C": Setting("byol", "own BYOL backbone", "none", "backbone + classifier"),
    "D": Setting("sl", "supervised pretrain_model_SL.pt", "backbone", "classifier only (backbone frozen)"),
    "E": Setting("byol", "own BYOL backbone", "backbone", "classifier only (backbone frozen)"),
}

DEFAULT_CONFIG = "configs/p2/finetune.yaml"  # the recommended base (finetune_seed.yaml: the seed's recipe)
DEFAULT_BYOL_RUN = "p2_byol"  # run.name of configs/p2/byol.yaml (and of the demo's BYOL run)


def default_sl_path(cfg) -> Path:
    return Path(cfg.data.root) / "p2_data" / "pretrain_model_SL.pt"


def default_byol_path(cfg) -> Path:
    return Path(cfg.run.dir) / DEFAULT_BYOL_RUN / "backbone.pt"


def check_weights(settings: Sequence[str], sl: Path, byol: Path) -> None:
    """Fail before any training when a setting's starting weights are missing."""
    need = {SETTINGS[s].start for s in settings}
    if "sl" in need and not sl.is_file():
        users = "/".join(s for s in settings if SETTINGS[s].start == "sl")
        raise WeightsError(
            f"{sl}: the supervised checkpoint pretrain_model_SL.pt is missing (setting {users} starts from it).\n"
            f"  It comes with the assignment data as hw1_data/p2_data/pretrain_model_SL.pt: a torchvision "
            f"resnet50(weights=None) state_dict WITH its 1000-way fc (2048 -> 1000), trained at 128x128 "
            f"(Resize(128), CenterCrop(128), ImageNet mean/std).\n"
            f"  Pass its location with --sl PATH, or leave those settings out (--settings A C E).")
    if "byol" in need and not byol.is_file():
        users = "/".join(s for s in settings if SETTINGS[s].start == "byol")
        raise WeightsError(
            f"{byol}: the BYOL backbone is missing (setting {users} starts from it). Pre-train it first "
            f"(dlcv train configs/p2/byol.yaml writes runs/{DEFAULT_BYOL_RUN}/backbone.pt) or pass --byol PATH.")


def setting_config(config: str | Path, overrides: Sequence[str], name: str, sl: Path, byol: Path,
                   prefix: str = "p2_setting_"):
    """The base config with setting `name`'s start and freeze rule (nothing else differs)."""
    s = SETTINGS[name]
    weights = {"none": "none", "sl": str(sl.resolve()), "byol": str(byol.resolve())}[s.start]
    return load_config(config, [*overrides, f"run.name={prefix}{name}", f"model.pretrained={weights}",
                                f"model.freeze={s.freeze}"])


def _finished(cfg) -> Optional[dict]:
    """The summary of a finished run with exactly this resolved config, trained after its starting
    weights file was last written (a re-trained BYOL backbone or a new SL file means retraining)."""
    run_dir = Path(cfg.run.dir) / cfg.run.name
    done, saved = run_dir / runfolder.SUMMARY, run_dir / runfolder.CONFIG
    if not (done.is_file() and saved.is_file() and saved.read_text() == to_yaml(cfg)):
        return None
    weights = Path(cfg.model.pretrained)
    if cfg.model.pretrained != "none" and (not weights.is_file() or weights.stat().st_mtime > done.stat().st_mtime):
        return None
    return runfolder.read_summary(run_dir)


def run_settings(config: str | Path, overrides: Sequence[str] = (), settings: Sequence[str] = tuple(SETTINGS),
                 sl: Optional[Path] = None, byol: Optional[Path] = None, prefix: str = "p2_setting_",
                 overwrite: bool = False, resume: bool = False, retrain_stale: bool = False,
                 command: Sequence[str] = ()) -> dict:
    """Fine-tune every requested setting, then write the table and the curves; returns the rows.

    A finished run with the same config (newer than its weights file) is reused unless `overwrite`.
    Any other existing run is refused (as by `dlcv train`) unless `overwrite`, `resume`, or
    `retrain_stale` (the demo: retrain what changed)."""
    from dlcv.jobs.classify import fit

    base = load_config(config, overrides)
    if base.task != "classify" or base.get("dataset") != "office":
        raise ConfigError(f"{config}: p2-settings needs a fine-tuning config (task: classify, dataset: office), "
                          f"got task {base.task!r}, dataset {base.get('dataset')!r}")
    unknown = [s for s in settings if s not in SETTINGS]
    if unknown or not settings:
        raise ConfigError(f"unknown setting(s) {unknown}; choose from {' '.join(SETTINGS)}")
    sl = Path(sl) if sl else default_sl_path(base)
    byol = Path(byol) if byol else default_byol_path(base)
    check_weights(settings, sl, byol)

    summaries: dict[str, dict] = {}
    for name in settings:
        cfg = setting_config(config, overrides, name, sl, byol, prefix)
        s = SETTINGS[name]
        print(f"\n== setting {name}: {s.start_text}, trains {s.trains} -> {cfg.run.dir}/{cfg.run.name}", flush=True)
        reused = None if overwrite or resume else _finished(cfg)
        if reused is not None:
            print("   reusing the finished run (same config; --overwrite retrains)", flush=True)
            summaries[name] = reused
            continue
        cmd = list(command) or ["dlcv", "p2-settings", str(config), *overrides]
        summaries[name] = fit(cfg, cmd, resume=resume, overwrite=overwrite or retrain_stale)
    if any(not v for v in summaries.values()):
        return {}  # a non-zero DDP rank: rank 0 writes the table
    out = Path(base.run.dir) / "p2_settings"
    rows = write_table(out, summaries, {n: Path(base.run.dir) / f"{prefix}{n}" for n in settings})
    return {"table": str(out / "table.md"), "rows": rows}


def write_table(out: Path, summaries: dict[str, dict], run_dirs: dict[str, Path]) -> list[dict]:
    """table.md, table.csv, val_acc.png and summary.json from the settings' summaries."""
    rows = []
    for name, summary in summaries.items():
        s = SETTINGS[name]
        rows.append({"setting": name, "backbone start": s.start_text, "what trains": s.trains,
                     "our val acc": round(100 * summary["val_acc"], 2), "seed's val acc": P2[name]["seed"],
                     "best student": P2[name]["best_student"], "best epoch": summary.get("best_epoch"),
                     "trainable params": summary.get("trainable_params"), "run": str(run_dirs[name])})
    columns = list(rows[0])
    buf = io.StringIO()
    writer = csv.DictWriter(buf, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(out / "table.csv", buf.getvalue())

    shown = columns[:6]
    table = markdown_table(shown, ([f"{r[c]:.1f}%" if isinstance(r[c], float) else r[c] for c in shown] for r in rows))
    write_text(out / "table.md", table + "\nValidation accuracy of the best epoch on Office-Home val; seed's and "
               "best student's numbers from the course report (SPEC.md). All five share one base config and "
               "classifier head.\n")
    curves = {n: runfolder.column(runfolder.read_epochs(d), "val/acc") for n, d in run_dirs.items()}
    plot_curves(out / "val_acc.png", curves)
    runfolder.write_json(out / "summary.json", {"rows": rows})
    print("\n" + table + f"-> {out / 'table.md'}", flush=True)
    return rows


def plot_curves(path: Path, curves: dict[str, list[tuple[int, float]]]) -> Path:
    """One figure: validation accuracy per epoch, one line per setting."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.0, 4.0), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for name, points in curves.items():
        if points:
            epochs, acc = zip(*points)
            ax.plot(epochs, [100 * a for a in acc], marker="o" if len(points) < 15 else None, ms=3,
                    label=f"{name}: {SETTINGS[name].start_text}, {SETTINGS[name].trains}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title("Office-Home fine-tuning, settings A-E")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


# ----------------------------------------------------------------------------------------------
# `dlcv p2-settings`


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", nargs="?", default=DEFAULT_CONFIG,
                        help=f"the base fine-tuning config (task: classify, dataset: office; default {DEFAULT_CONFIG})")
    parser.add_argument("overrides", nargs="*", help="key=value for every setting, e.g. data.root=/data/hw1_data")
    parser.add_argument("--sl", help="the supervised checkpoint (default <data.root>/p2_data/pretrain_model_SL.pt)")
    parser.add_argument("--byol", help=f"the BYOL backbone (default <run.dir>/{DEFAULT_BYOL_RUN}/backbone.pt)")
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS), metavar="X",
                        help="which of A B C D E to run (default: all five)")
    parser.add_argument("--prefix", default="p2_setting_", help="run names are <prefix><X> (default p2_setting_)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--overwrite", action="store_true", help="retrain every setting from scratch")
    group.add_argument("--resume", action="store_true", help="continue unfinished settings from their last.ckpt")


def run(args) -> int:
    if "=" in args.config and not Path(args.config).is_file():  # `dlcv p2-settings key=value ...`
        args.overrides, args.config = [args.config, *args.overrides], DEFAULT_CONFIG
    run_settings(args.config, args.overrides, args.settings, args.sl, args.byol, args.prefix,
                 overwrite=args.overwrite, resume=args.resume, command=args.argv)
    return 0


__all__ = ["SETTINGS", "Setting", "add_arguments", "check_weights", "run", "run_settings", "setting_config",
           "write_table"]
