"""The end of `dlcv demo`: the pre-submission check (`dlcv check`) on the demo data with the demo's
own trained checkpoints, its table printed and labelled as a demo, check.json in <out>/check.

The checkpoints are those the demo's graded-prediction stages use: P1 the strong model A, P2
setting C, P3 the model of higher validation mIoU. On demo data the baselines and the checkpoint
sources cannot pass (they are about the real data and the student's uploads): those rows are
warnings; any FAIL (a script breaking a rule, crashing, writing a wrong output) stops the demo.
"""
from __future__ import annotations

import json
from pathlib import Path

from dlcv.demo.stage import Stage

REPO = Path(__file__).resolve().parents[2]  # the checkout whose hw1_*.sh are checked


def demo_checkpoints(runs: Path) -> dict[str, Path]:
    from dlcv.demo.stages_p3 import RUNS as P3_RUNS

    def val_miou(name: str) -> float:
        summary = runs / name / "summary.json"
        return (json.loads(summary.read_text()).get("val_miou") or 0.0) if summary.is_file() else -1.0

    p3 = max(P3_RUNS, key=val_miou)
    return {"p1": runs / "p1_strong_a" / "model.pt", "p2": runs / "p2_setting_C" / "model.pt",
            "p3": runs / p3 / "model.pt"}


def check(data_root: Path, runs: Path, out: Path, problems: tuple[str, ...]) -> dict:
    from dlcv.check.core import run_check, title
    from dlcv.check.rows import FAIL, failed, format_table

    rows, meta = run_check(REPO, data_root, out / "check", demo_checkpoints(runs), problems=problems, demo=True)
    print("\n".join("    " + line for line in format_table(rows, title(meta)).splitlines()))
    if failed(rows):
        names = ", ".join(r.check for r in rows if r.result == FAIL)
        raise RuntimeError(f"the pre-submission check failed on the demo: {names} (see the table above and "
                           f"{out / 'check' / 'check.json'})")
    return {"passed": True, "check_json": str(out / "check" / "check.json"),
            "rows": {r.check: f"{r.result} {r.figure}".strip() for r in rows}}


def stages(data_root: Path, runs: Path, out: Path, problems: tuple[str, ...]) -> list[Stage]:
    return [Stage("Pre-submission check (dlcv check) on the demo data with the demo's checkpoints",
                  lambda: check(data_root, runs, out, problems))]
