"""`dlcv` command line: demo data, training, evaluation, prediction, the demo, the report, benchmarks.

Run `dlcv <command> --help` for each command's arguments. Start-up is kept short: `dlcv --help`
imports no command's module, and `dlcv <command>` imports only that command's (each command's
module is loaded by a small function, so the parser of one never pays for torch or Lightning of
another).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from types import ModuleType
from typing import Callable, NamedTuple

from dlcv.errors import EXIT_NON_FINITE, NonFiniteLossError
from dlcv.graded.cli import guarded

# -- commands defined here ----------------------------------------------------------------------

def _train_arguments(s: argparse.ArgumentParser) -> None:
    s.add_argument("config", help="YAML file under configs/ (or any path)")
    s.add_argument("overrides", nargs="*", help="e.g. trainer.epochs=5 data.root=/data/hw1_data")
    s.add_argument("--resume", action="store_true", help="continue runs/<name> from checkpoints/last.ckpt")
    s.add_argument("--overwrite", action="store_true", help="start runs/<name> again from scratch")


def _train(args) -> int:
    from dlcv.config import load_config
    from dlcv.jobs import job_module

    cfg = load_config(args.config, args.overrides)
    job_module(cfg.task).fit(cfg, args.argv, resume=args.resume, overwrite=args.overwrite)
    return 0


def _evaluate_arguments(s: argparse.ArgumentParser) -> None:
    s.add_argument("checkpoint")
    s.add_argument("overrides", nargs="*", help="e.g. trainer.devices=2 trainer.strategy=ddp")
    s.add_argument("--data-root", help="hw1_data folder (default: the one the model was trained on)")
    s.add_argument("--out", help="output folder (default: <run>/eval)")


def _evaluate(args) -> int:
    from omegaconf import OmegaConf

    from dlcv.config import from_dict, to_dict
    from dlcv.errors import CheckpointError
    from dlcv.io import load_model_file
    from dlcv.jobs import job_module

    config, state = load_model_file(args.checkpoint)
    cfg = from_dict(config)
    cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(args.overrides))
    if args.data_root:
        cfg.data.root = args.data_root
    out = Path(args.out) if args.out else Path(args.checkpoint).resolve().parent / "eval"
    if out.parent.name == "checkpoints":
        out = out.parent.parent / "eval"
    job = job_module(cfg.task)
    if not hasattr(job, "evaluate"):
        raise CheckpointError(f"{args.checkpoint}: a {cfg.task!r} run has no evaluation (BYOL's kNN accuracy "
                              f"is in its epochs.csv); evaluate a fine-tuned model.pt instead")
    job.evaluate(to_dict(cfg), state, out, {}, source=str(args.checkpoint))
    return 0


def _demo_data_arguments(s: argparse.ArgumentParser) -> None:
    s.add_argument("--out", default="hw1_data_demo")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--problems", nargs="+", default=["p1", "p2", "p3"], choices=["p1", "p2", "p3"])
    s.add_argument("--full-p1", action="store_true", help="P1 at the real size (22,500 + 2,500 images)")


def _demo_data(args) -> int:
    import dataclasses
    import time

    from dlcv.demo import DemoScale, write_demo_data

    scale = DemoScale()
    if args.full_p1:
        scale = dataclasses.replace(scale, p1_train_per_class=450, p1_val_per_class=50, p1_test=5000)
    t0 = time.perf_counter()
    counts = write_demo_data(args.out, scale, seed=args.seed, problems=tuple(args.problems))
    for folder, n in counts.items():
        print(f"{n:6d}  {folder}")
    print(f"demo data written to {args.out} in {time.perf_counter() - t0:.1f} s")
    return 0


def _demo_arguments(s: argparse.ArgumentParser) -> None:
    s.add_argument("--out", default="demo_out")
    s.add_argument("--problems", nargs="+", default=["p1", "p2", "p3"], choices=["p1", "p2", "p3"])
    s.add_argument("--fresh", action="store_true", help="retrain everything (default: reuse finished runs)")


def _demo(args) -> int:
    from dlcv.demo.pipeline import run_demo

    return run_demo(Path(args.out), problems=tuple(args.problems), fresh=args.fresh)


# -- the command table --------------------------------------------------------------------------

class Command(NamedTuple):
    help: str
    # () -> (add_arguments(parser), run(args) -> exit code); called only for the command being run
    load: Callable[[], tuple[Callable[[argparse.ArgumentParser], None], Callable[..., int]]]


def _here(add_arguments, run) -> Callable:
    return lambda: (add_arguments, run)


def _module(load_module: Callable[[], ModuleType]) -> Callable:
    """A command whose arguments and code live beside the job it belongs to."""
    def load():
        module = load_module()
        return module.add_arguments, module.run
    return load


def _graded_predict():
    from dlcv.graded.cli import add_predict_arguments, run_predict

    return add_predict_arguments, run_predict


def _graded_fetch():
    from dlcv.graded.cli import add_fetch_arguments, run_fetch

    return add_fetch_arguments, run_fetch


def _p2_settings():
    from dlcv.jobs import p2_settings

    return p2_settings


def _score_masks():
    from dlcv import score_masks  # NumPy + Pillow only: no torch on this path

    return score_masks


def _check():
    import dlcv.check

    return dlcv.check


def _report():
    from dlcv.report import build

    return build


def _bench():
    try:
        import dlcv.bench
    except ModuleNotFoundError:  # not in the wheel: it measures against the checkout's benchmarks/
        raise SystemExit("dlcv bench runs from a checkout of the repository (it measures against "
                         "benchmarks/reference.py and writes benchmarks/RESULTS.md)") from None
    return dlcv.bench


COMMANDS: dict[str, Command] = {
    "train": Command("train from a YAML config with key=value overrides", _here(_train_arguments, _train)),
    "evaluate": Command("evaluate a checkpoint (.ckpt or model.pt) on its validation set",
                        _here(_evaluate_arguments, _evaluate)),
    "predict": Command("write the graded prediction files (what hw1_*.sh run)", _graded_predict),
    "demo-data": Command("write generated data in the exact hw1_data/ layouts", _here(_demo_data_arguments, _demo_data)),
    "demo": Command("the whole pipeline on demo data: data, every job, the report", _here(_demo_arguments, _demo)),
    "fetch-checkpoints": Command("download the checkpoints hw1_*.sh use (hw1_download_ckpt.sh)", _graded_fetch),
    "p2-settings": Command("fine-tune Office-Home in settings A-E and write the A-E table", _module(_p2_settings)),
    "score-masks": Command("official mIoU of a folder of predicted masks against the ground truth",
                           _module(_score_masks)),
    "report": Command("write the HW1 report (HTML, Markdown, PDF) from run folders", _module(_report)),
    "check": Command("the pre-submission check: hw1_*.sh as the graders run them, on the validation data",
                     _module(_check)),
    "bench": Command("benchmark every job against a plain reference, write benchmarks/RESULTS.md", _module(_bench)),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """Every command is listed; only `command`'s module is loaded for its arguments."""
    p = argparse.ArgumentParser(prog="dlcv", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    for name, cmd in COMMANDS.items():
        s = sub.add_parser(name, help=cmd.help, description=cmd.help)
        if name == command:
            add_arguments, run = cmd.load()
            add_arguments(s)
            s.set_defaults(func=run)
    return p


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command if command in COMMANDS else None)
    # key=value overrides may come after options (`evaluate m.pt --out x trainer.devices=2`), which
    # argparse cannot interleave with positionals: collect the leftovers as overrides
    args, extra = parser.parse_known_args(argv)
    # the command meta.json records: what was run, also when main() is called with explicit arguments
    args.argv = ["dlcv", *argv]
    if extra:
        if not hasattr(args, "overrides") or any("=" not in e or e.startswith("-") for e in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides = [*args.overrides, *extra]
    try:
        return guarded(args.func, args)  # bad input (FileExistsError included: an OSError) -> exit 2
    except NonFiniteLossError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_NON_FINITE


if __name__ == "__main__":
    sys.exit(main())
