"""The graded commands' arguments and dispatch: `python3 -m dlcv.graded p1|p2|p3|fetch ...` (what
hw1_*.sh run) and `dlcv predict` (the same parser and functions)."""
from __future__ import annotations

import argparse
import sys
from typing import Callable

from dlcv.errors import BAD_INPUT_ERRORS, EXIT_BAD_INPUT

# problem -> its inputs after the checkpoint
PREDICT_INPUTS = {"p1": ("IMAGE_DIR", "OUT_CSV"), "p2": ("IMAGES_CSV", "IMAGE_DIR", "OUT_CSV"),
                  "p3": ("IMAGE_DIR", "OUT_DIR")}
TTA_HELP = ("flip test-time augmentation: p1/p2 average the softmax of the image and its horizontal mirror; "
            "p3 of the image and its horizontal and vertical mirrors (3x the compute)")
TTA_MODE_HELP = ("p3 only: none | flip (= --tta) | multiscale | flip_multiscale (flips x scales, ~9.4x the compute) "
                 "| auto (hw1_3.sh's default: flip_multiscale on a GPU within a time budget, none on a CPU); "
                 "default: $DLCV_P3_TTA, else none")
TTA_SCALES_HELP = "p3 only: multi-scale TTA scales (default: the checkpoint's eval.tta_scales, else 0.75,1,1.25)"


def predictor(problem: str) -> Callable[..., int]:
    """The `predict(checkpoint, *inputs, tta=...) -> exit code` function of a problem."""
    if problem == "p1":
        from dlcv.graded.p1 import predict
    elif problem == "p2":
        from dlcv.graded.p2 import predict
    else:
        from dlcv.graded.p3 import predict
    return predict


def add_predict_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("problem", choices=sorted(PREDICT_INPUTS))
    parser.add_argument("checkpoint")
    parser.add_argument("inputs", nargs="+", help=" | ".join(f"{p}: {' '.join(i)}" for p, i in PREDICT_INPUTS.items()))
    parser.add_argument("--tta", action="store_true", help=TTA_HELP)
    parser.add_argument("--tta-mode", metavar="MODE", help=TTA_MODE_HELP)
    parser.add_argument("--tta-scales", metavar="S,S,...", help=TTA_SCALES_HELP)


def run_predict(args: argparse.Namespace) -> int:
    expected = PREDICT_INPUTS[args.problem]
    if len(args.inputs) != len(expected):
        print(f"error: predict {args.problem} takes CHECKPOINT {' '.join(expected)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    p3_options = {"tta_mode": args.tta_mode, "tta_scales": args.tta_scales}
    if args.problem != "p3":
        given = [f"--{k.replace('_', '-')}" for k, v in p3_options.items() if v is not None]
        if given:
            print(f"error: {', '.join(given)}: p3 options (p1/p2 have --tta)", file=sys.stderr)
            return EXIT_BAD_INPUT
        return predictor(args.problem)(args.checkpoint, *args.inputs, tta=args.tta)
    if args.tta and args.tta_mode is not None and args.tta_mode.strip().lower() != "flip":
        print(f"error: --tta means --tta-mode flip; it contradicts --tta-mode {args.tta_mode}", file=sys.stderr)
        return EXIT_BAD_INPUT
    tta = True if args.tta else args.tta_mode
    return predictor("p3")(args.checkpoint, *args.inputs, tta=tta, scales=args.tta_scales)


def run_fetch(args: argparse.Namespace) -> int:
    from dlcv.graded.fetch import fetch_checkpoints

    return fetch_checkpoints(args.names)


def add_fetch_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="*", default=["p1", "p2", "p3"], choices=["p1", "p2", "p3"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m dlcv.graded",
                                     description="the graded commands (hw1_1.sh, hw1_2.sh, hw1_3.sh, hw1_download_ckpt.sh)")
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("predict", help="write the graded prediction files")
    add_predict_arguments(s)
    s.set_defaults(func=run_predict)
    s = sub.add_parser("fetch", help="download the checkpoints the graded scripts use")
    add_fetch_arguments(s)
    s.set_defaults(func=run_fetch)
    args = parser.parse_args(argv)
    return guarded(args.func, args)


def guarded(func: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Bad input -> `error: <message>` on stderr and exit status 2, never a traceback (the rule of
    every dlcv command: `dlcv` itself runs its commands through this too)."""
    try:
        return func(args) or 0
    except (*BAD_INPUT_ERRORS, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
