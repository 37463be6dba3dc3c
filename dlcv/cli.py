"""`dlcv` command line: demo data, training, evaluation, prediction, the demo, the report, benchmarks.

Run `dlcv <command> --help` for each command's arguments.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXIT_BAD_INPUT = 2
EXIT_NON_FINITE = 3


def _train(args) -> int:
    from dlcv.config import load_config
    from dlcv.jobs import job_module

    cfg = load_config(args.config, args.overrides)
    job_module(cfg.task).fit(cfg, args.argv, resume=args.resume, overwrite=args.overwrite)
    return 0


def _evaluate(args) -> int:
    from omegaconf import OmegaConf

    from dlcv.config import from_dict, to_dict
    from dlcv.engine import load_model_file
    from dlcv.io import CheckpointError
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


PREDICT_INPUTS = {"p1": ("IMAGE_DIR", "OUT_CSV"), "p2": ("IMAGES_CSV", "IMAGE_DIR", "OUT_CSV"),
                  "p3": ("IMAGE_DIR", "OUT_DIR")}


def _predict(args) -> int:
    import importlib

    expected = PREDICT_INPUTS[args.problem]
    if len(args.inputs) != len(expected):
        print(f"error: predict {args.problem} takes {' '.join(expected)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    options = {"tta": True} if args.tta else {}
    return importlib.import_module(f"dlcv.graded.{args.problem}").predict(args.checkpoint, *args.inputs, **options)


def _demo_data(args) -> int:
    import time

    import dataclasses

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


def _demo(args) -> int:
    from dlcv.demo.pipeline import run_demo

    return run_demo(Path(args.out), problems=tuple(args.problems), fresh=args.fresh)


def _fetch(args) -> int:
    from dlcv.checkpoints import fetch_checkpoints

    return fetch_checkpoints(args.names)


# Commands whose arguments and code live beside the job they belong to:
# name -> (module with add_arguments(parser) and run(args) -> int, help)
MODULE_COMMANDS = {
    "p2-settings": ("dlcv.jobs.p2_settings", "fine-tune Office-Home in settings A-E and write the A-E table"),
    "score-masks": ("dlcv.seg_metrics", "official mIoU of a folder of predicted masks against the ground truth"),
    "report": ("dlcv.report.build", "write the HW1 report (HTML, Markdown, PDF) from run folders"),
    "bench": ("dlcv.bench", "benchmark every job against a plain reference, write benchmarks/RESULTS.md"),
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dlcv", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("train", help="train from a YAML config with key=value overrides")
    s.add_argument("config", help="YAML file under configs/ (or any path)")
    s.add_argument("overrides", nargs="*", help="e.g. trainer.epochs=5 data.root=/data/hw1_data")
    s.add_argument("--resume", action="store_true", help="continue runs/<name> from checkpoints/last.ckpt")
    s.add_argument("--overwrite", action="store_true", help="start runs/<name> again from scratch")
    s.set_defaults(func=_train)

    s = sub.add_parser("evaluate", help="evaluate a checkpoint (.ckpt or model.pt) on its validation set")
    s.add_argument("checkpoint")
    s.add_argument("overrides", nargs="*", help="e.g. trainer.devices=2 trainer.strategy=ddp")
    s.add_argument("--data-root", help="hw1_data folder (default: the one the model was trained on)")
    s.add_argument("--out", help="output folder (default: <run>/eval)")
    s.set_defaults(func=_evaluate)

    s = sub.add_parser("predict", help="write the graded prediction files")
    s.add_argument("problem", choices=["p1", "p2", "p3"])
    s.add_argument("checkpoint")
    s.add_argument("inputs", nargs="+", help=" | ".join(f"{p}: {' '.join(i)}" for p, i in PREDICT_INPUTS.items()))
    s.add_argument("--tta", action="store_true", help="p3: average with the horizontally flipped image")
    s.set_defaults(func=_predict)

    s = sub.add_parser("demo-data", help="write generated data in the exact hw1_data/ layouts")
    s.add_argument("--out", default="hw1_data_demo")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--problems", nargs="+", default=["p1", "p2", "p3"], choices=["p1", "p2", "p3"])
    s.add_argument("--full-p1", action="store_true", help="P1 at the real size (22,500 + 2,500 images)")
    s.set_defaults(func=_demo_data)

    s = sub.add_parser("demo", help="the whole pipeline on demo data: data, every job, the report")
    s.add_argument("--out", default="demo_out")
    s.add_argument("--problems", nargs="+", default=["p1", "p2", "p3"], choices=["p1", "p2", "p3"])
    s.add_argument("--fresh", action="store_true", help="retrain everything (default: reuse finished runs)")
    s.set_defaults(func=_demo)

    s = sub.add_parser("fetch-checkpoints", help="download the checkpoints hw1_*.sh use (hw1_download_ckpt.sh)")
    s.add_argument("names", nargs="*", default=["p1", "p2", "p3"])
    s.set_defaults(func=_fetch)

    import importlib
    import importlib.util

    for name, (module, help_text) in MODULE_COMMANDS.items():
        if importlib.util.find_spec(module) is None:
            continue
        mod = importlib.import_module(module)
        if hasattr(mod, "add_arguments"):
            s = sub.add_parser(name, help=help_text)
            mod.add_arguments(s)
            s.set_defaults(func=mod.run)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    # key=value overrides may come after options (`evaluate m.pt --out x trainer.devices=2`), which
    # argparse cannot interleave with positionals: collect the leftovers as overrides
    args, extra = parser.parse_known_args(argv)
    # the command meta.json records: what was run, also when main() is called with explicit arguments
    args.argv = ["dlcv", *(sys.argv[1:] if argv is None else argv)]
    if extra:
        if not hasattr(args, "overrides") or any("=" not in e or e.startswith("-") for e in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides = [*args.overrides, *extra]
    from dlcv.config import ConfigError
    from dlcv.data.images import DataError
    from dlcv.engine import NonFiniteLossError
    from dlcv.io import CheckpointError
    from dlcv.models.weights import WeightsError

    try:
        return args.func(args) or 0
    except NonFiniteLossError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_NON_FINITE
    except (DataError, ConfigError, CheckpointError, WeightsError, FileExistsError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
