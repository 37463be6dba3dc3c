"""`dlcv demo` / `make demo`: generated data -> every job at demo scale -> graded outputs -> report ->
the pre-submission check (`dlcv check`) on the demo data.

Each stage prints a header and its wall time; a finished run whose resolved config has not changed
is reused (pass --fresh to retrain), so a second `make demo` only redoes what changed.
"""
from __future__ import annotations

import importlib
import json
import time
from pathlib import Path
from typing import Callable, NamedTuple

from dlcv.io import write_text

CONFIGS = Path(__file__).resolve().parent.parent.parent / "configs" / "demo"


class Stage(NamedTuple):
    name: str
    run: Callable[[], object]


def train_demo_config(stem: str, data_root: Path, runs: Path, fresh: bool) -> dict:
    """Train configs/demo/<stem>.yaml on the demo data, or reuse its finished run."""
    from dlcv.config import load_config, to_yaml
    from dlcv.jobs import job_module

    overrides = [f"data.root={data_root}", f"run.dir={runs}"]
    config_file = CONFIGS / f"{stem}.yaml"
    cfg = load_config(config_file, overrides)
    run_dir = runs / cfg.run.name
    done = run_dir / "summary.json"
    if not fresh and done.is_file() and (run_dir / "config.yaml").read_text() == to_yaml(cfg):
        print(f"    reusing the finished run {run_dir} (same config; --fresh retrains)")
        return json.loads(done.read_text())
    command = ["dlcv", "train", f"configs/demo/{stem}.yaml", *overrides, "--overwrite"]
    return job_module(cfg.task).fit(cfg, command, overwrite=True)


def run_demo(out: Path, problems: tuple[str, ...] = ("p1", "p2", "p3"), fresh: bool = False) -> int:
    from dlcv.demo import DemoScale, ensure_demo_data

    out.mkdir(parents=True, exist_ok=True)
    data_root, runs = out / "hw1_data", out / "runs"
    stages = [Stage("generate demo data", lambda: ensure_demo_data(data_root, DemoScale(), seed=0, problems=problems))]
    for problem in problems:  # each problem's stages live in dlcv/demo/stages_<problem>.py
        stages += importlib.import_module(f"dlcv.demo.stages_{problem}").stages(data_root, runs, out, fresh)
    stages += importlib.import_module("dlcv.demo.stages_report").stages(data_root, runs, out, fresh)
    # last: `dlcv check` on the demo data with the demo's checkpoints (dlcv/demo/stages_check.py)
    stages += importlib.import_module("dlcv.demo.stages_check").stages(data_root, runs, out, problems)

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
