"""A stage of `dlcv demo` and the helper most stages use: train a demo config or reuse its run."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, NamedTuple

CONFIGS = Path(__file__).resolve().parent.parent / "configs" / "demo"  # inside the package: works installed


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
