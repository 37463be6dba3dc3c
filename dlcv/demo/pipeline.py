"""`dlcv demo` / `make demo`: generated data -> every job at demo scale -> graded outputs -> report ->
the pre-submission check (`dlcv check`) on the demo data.

Each stage prints a header and its wall time; a finished run whose resolved config has not changed
is reused (pass --fresh to retrain), so a second `make demo` only redoes what changed.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from dlcv.demo import stages_check, stages_p1, stages_p2, stages_p3, stages_report
from dlcv.demo.stage import Stage
from dlcv.io import write_text

PROBLEM_STAGES = {"p1": stages_p1.stages, "p2": stages_p2.stages, "p3": stages_p3.stages}

def run_demo(out: Path, problems: tuple[str, ...] = ("p1", "p2", "p3"), fresh: bool = False) -> int:
    from dlcv.demo import DemoScale, ensure_demo_data

    out.mkdir(parents=True, exist_ok=True)
    data_root, runs = out / "hw1_data", out / "runs"
    stages = [Stage("generate demo data", lambda: ensure_demo_data(data_root, DemoScale(), seed=0, problems=problems))]
    for problem in problems:  # each problem's stages live in dlcv/demo/stages_<problem>.py
        stages += PROBLEM_STAGES[problem](data_root, runs, out, fresh)
    stages += stages_report.stages(data_root, runs, out, fresh)
    # last: `dlcv check` on the demo data with the demo's checkpoints
    stages += stages_check.stages(data_root, runs, out, problems)

    timings, results = {}, {}
    t_start = time.perf_counter()
    for i, (name, fn) in enumerate(stages, 1):
        print(f"\n[{i}/{len(stages)}] {name}", flush=True)
        t0 = time.perf_counter()
        results[name] = fn()
        timings[name] = round(time.perf_counter() - t0, 1)
        print(f"    done in {timings[name]:.1f} s", flush=True)
    total = round(time.perf_counter() - t_start, 1)
    write_text(out / "demo_summary.json", json.dumps({"total_s": total, "stages_s": timings, "results": results},
                                                      indent=2, default=str) + "\n")
    print(f"\ndemo finished in {total:.0f} s; runs in {runs}, summary in {out / 'demo_summary.json'}")
    return 0
