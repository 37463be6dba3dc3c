"""`dlcv check`: the pre-submission check, doing what the graders will do before the student pushes.

    dlcv check [--data hw1_data] [--repo .] [--p1-ckpt F] [--p2-ckpt F] [--p3-ckpt F] [--out check_out]
               [--timeout 600] [--problems p1 p2 p3] [--demo]

* the four shell scripts follow the course's rules (dlcv.check.shell: parsed shell words);
* hw1_checkpoints.txt names a source for each problem, and each checkpoint file is there;
* each graded script runs under the course-environment import guard on a hidden-test stand-in made
  of the validation data (dlcv.check.hidden); its output is checked as the graders read it
  (dlcv.check.outputs), scored against the course's baselines (dlcv.check.score) and timed,
  extrapolated to the hidden test size on this device (dlcv.check.timing).

Prints one table (check, result, figure, limit), writes <out>/check.json with the same rows and
exits 1 when any row FAILs (0 otherwise). Bad input is a failed row with its reason, never a
traceback. Modules: rows (Row, table, json), shell, sources, hidden, runner, outputs, score, timing,
problems (one problem's rows), core (run_check).
"""
from __future__ import annotations

import argparse
from pathlib import Path

EXIT_FAILED = 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default="hw1_data", help="the hw1_data folder (its validation data stands in "
                                                          "for the hidden test sets; default: hw1_data)")
    parser.add_argument("--repo", default=".", help="the repo with hw1_*.sh to check (default: .)")
    for n in (1, 2, 3):
        parser.add_argument(f"--p{n}-ckpt", help=f"the checkpoint hw1_{n}.sh uses "
                                                 f"(default: <repo>/checkpoints/p{n}_model.pt)")
    parser.add_argument("--out", default="check_out", help="where check.json and the working files go "
                                                           "(default: check_out)")
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="seconds after which a script run is killed (default: 600, the course's limit)")
    parser.add_argument("--problems", nargs="+", default=["p1", "p2", "p3"], choices=["p1", "p2", "p3"])
    parser.add_argument("--demo", action="store_true", default=None,
                        help="label as a demo (automatic when --data is generated demo data)")


def checkpoints_of(args: argparse.Namespace, repo: Path) -> dict[str, Path]:
    return {f"p{n}": Path(getattr(args, f"p{n}_ckpt") or repo / "checkpoints" / f"p{n}_model.pt").resolve()
            for n in (1, 2, 3)}


def run(args: argparse.Namespace) -> int:
    from dlcv.check.core import run_check, title
    from dlcv.check.rows import failed, format_table

    repo = Path(args.repo)
    rows, meta = run_check(repo, Path(args.data), Path(args.out), checkpoints_of(args, repo),
                           problems=tuple(dict.fromkeys(args.problems)), timeout=args.timeout, demo=args.demo)
    print(format_table(rows, title(meta)))
    print(f"rows written to {Path(args.out).resolve() / 'check.json'}")
    return EXIT_FAILED if failed(rows) else 0
