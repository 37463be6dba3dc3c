"""`dlcv bench` (`make bench`): the product's pipelines against a plain reference, as ratios.

For each training job it measures, in ONE run, on the same files, model architecture and batch:

* ours: the product's real data path and task -- decode-once uint8 caches (`dlcv.data.*`),
  `BatchDataset` + `DataLoader(collate_fn=passthrough_collate)` through the engine's
  `ArrayDataModule`, batched on-device augmentation in the task's `on_after_batch_transfer`,
  channels_last when the config says so, the model built by the job's own task class from the job's
  own YAML, trained by a Lightning Trainer from `dlcv.engine.build_trainer` (the task's own
  `training_step`, optimizer and LR schedule);
* the plain reference (`benchmarks/reference.py`): a PIL-per-item Dataset with torchvision
  transforms, default DataLoader, fp32 NCHW, a plain loop;

images/s of training steps and of inference, the fraction of step time spent waiting for data,
peak RSS (and peak GPU memory on GPU), and the ratio ours/reference as the median of paired,
interleaved repeats with min-max. Each pipeline runs in its own worker process (so each has its own
peak RSS and nothing leaks between them); only one process computes at a time. Other processes'
CPU use during the measurement is recorded, so a disturbed run is visible in the results.

Besides the jobs: the FLOPs of each model (`FlopCounterMode`, forward + backward) against the
machine's measured fp32 matmul rate in the same run, a profile of the top ops where a job falls
short of 2x, channels_last on/off per model, the official mIoU evaluation against a per-class NumPy
loop, the start-up a user feels (`dlcv --help` and `dlcv score-masks` as whole processes, the latter
against the course's `mean_iou_evaluate.py` on the same files; `dlcv.bench.startup`), t-SNE
(scikit-learn vs openTSNE), and (`--jobs graded`) the wall time of hw1_1/2/3.sh at the
hidden test sets' scale. Results go to `benchmarks/results.json` (merged by section) and
`benchmarks/RESULTS.md` (regenerated from it).
"""
from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import sys
import time
from pathlib import Path

from dlcv.bench.byol_learns import bench_byol_learns
from dlcv.bench.jobs import bench_job
from dlcv.bench.measure import WAITED, machine_info
from dlcv.bench.p1fast import bench_p1_fast
from dlcv.bench.results import load_results, render_results
from dlcv.bench.sections import bench_graded, bench_miou, bench_tsne
from dlcv.bench.specs import (
    BENCH_DIR,
    DEFAULT_DATA,
    JOBS,
    SECTIONS,
    data_scale,
    job_for,
)
from dlcv.bench.startup import bench_cli


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--jobs", nargs="+", default=["all"],
                   help=f"training jobs ({', '.join(JOBS)}) and/or sections ({', '.join(SECTIONS)}); "
                        "'all' = every job + miou + cli + tsne (graded, ~30 min on 2 CPU cores, and p1_fast, "
                        "~25 min, and byol_learns, ~15 min, only when named)")
    p.add_argument("--quick", action="store_true", help="tiny sizes (the smoke test)")
    p.add_argument("--official-miou", default=os.environ.get("DLCV_OFFICIAL_MIOU", ""), metavar="PATH",
                   help="the course's mean_iou_evaluate.py, timed against `dlcv score-masks` in the cli section "
                        "(default: $DLCV_OFFICIAL_MIOU; without it, the reference in its shape in "
                        "benchmarks/reference.py)")
    p.add_argument("--scale", choices=["auto", "cpu", "gpu"], default="auto",
                   help="sizes: cpu (default without CUDA), gpu (real batch sizes, AMP; benchmarks/gpu.sh)")
    p.add_argument("--repeats", type=int, default=0, help="paired repeats per job (default 3; --quick 2)")
    p.add_argument("--data", default=str(DEFAULT_DATA), help="generated data folder (reused when complete)")
    p.add_argument("--out", default=str(BENCH_DIR / "RESULTS.md"), help="the RESULTS.md to write")
    p.add_argument("--results", default="", help="merged results JSON (default: benchmarks/results.json, "
                                                 "or <out without .md>.json when --out is given)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: the usable CPU count)")
    p.add_argument("--profile", choices=["auto", "always", "never"], default="auto",
                   help="torch.profiler of one step: auto = for jobs under 2x")
    p.add_argument("--compile", action="store_true",
                   help="also measure ours with torch.compile (trainer.compile=true), in a third process")
    p.add_argument("--max-foreign", type=float, default=0.25,
                   help="wait before each job until other processes use less than this share of the CPUs")
    p.add_argument("--max-wait", type=float, default=300.0, help="... for at most this many seconds")
    p.add_argument("--max-redo", type=int, default=3,
                   help="repeats disturbed by other processes (over --max-foreign) measured again, per job")


def _selected(names: list[str]) -> tuple[list[str], list[str]]:
    jobs, sections = [], []
    for n in names:
        n = n if n in JOBS else n.replace("-", "_")  # `--jobs p1-fast` works too
        if n == "all":
            jobs += list(JOBS)
            sections += ["miou", "cli", "tsne"]
        elif n in JOBS:
            jobs.append(n)
        elif n in SECTIONS:
            sections.append(n)
        else:
            raise SystemExit(f"dlcv bench: unknown job {n!r}; choose from all, {', '.join(JOBS)}, {', '.join(SECTIONS)}")
    return list(dict.fromkeys(jobs)), list(dict.fromkeys(sections))


def run(args) -> int:
    import signal

    import torch

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the cleanup (workers) on kill
    t_start = time.perf_counter()
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    scale = "quick" if args.quick else (args.scale if args.scale != "auto" else ("gpu" if device == "cuda" else "cpu"))
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    threads = args.threads or usable
    torch.set_num_threads(threads)
    jobs, sections = _selected(args.jobs)
    out = Path(args.out)
    results_path = _results_path(args, out)
    data_root = Path(args.data) / scale
    import tempfile

    work = Path(tempfile.mkdtemp(prefix="dlcv-bench-"))
    settings = {"device": device, "scale": scale, "threads": threads, "data": str(data_root), "work": str(work),
                "repeats": args.repeats or (2 if scale == "quick" else 3), "profile": args.profile,
                "max_foreign": args.max_foreign, "max_wait": args.max_wait, "compile": args.compile,
                "max_redo": args.max_redo, "official_miou": getattr(args, "official_miou", ""),
                "figure": str(out.with_name("byol_learns.png"))}

    def log(msg: str) -> None:
        print(msg, flush=True)

    command = " ".join(args.argv)  # `dlcv bench ...` as it was run (set by dlcv.cli)
    load_at_start = open("/proc/loadavg").read().split()[0] if os.path.exists("/proc/loadavg") else None
    machine = machine_info()
    log(f"dlcv bench: {machine['cpu']} ({machine['vector']}), {threads} torch threads, device {device}, "
        f"scale {scale}; load average {load_at_start}")
    data = load_results(results_path)
    date = dt.datetime.now().astimezone().isoformat(timespec="seconds")
    meta = {"command": command.strip(), "date": date, "machine": machine, "scale": scale,
            "repeats": settings["repeats"], "load_at_start": load_at_start}
    settings["run"] = {"command": meta["command"], "date": date, "scale": scale, "repeats": settings["repeats"]}
    try:
        if jobs:
            _bench_jobs(jobs, settings, data_root, data, meta, t_start, log)
        for section, fn in (("miou", bench_miou), ("cli", bench_cli), ("tsne", bench_tsne), ("graded", bench_graded),
                            ("p1_fast", bench_p1_fast), ("byol_learns", bench_byol_learns)):
            if section in sections:
                t0 = time.perf_counter()
                data[section] = fn(settings, log)
                data[f"{section}_meta"] = dict(meta, wall_s=time.perf_counter() - t0)
    finally:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    _write_results(data, jobs, out, results_path, time.perf_counter() - t_start, log)
    return 0


def _results_path(args, out: Path) -> Path:
    """--results, else benchmarks/results.json beside the default RESULTS.md, else <out>.json."""
    if args.results:
        return Path(args.results)
    if out.resolve() == (BENCH_DIR / "RESULTS.md").resolve():
        return BENCH_DIR / "results.json"
    return out.with_suffix(".json")


def _bench_jobs(jobs: list[str], settings: dict, data_root: Path, data: dict, meta: dict, t_start: float,
                log) -> None:
    """The training jobs, one after another, on demo data generated for their problems (if missing)."""
    from dlcv.demo import ensure_demo_data

    t0 = time.perf_counter()
    problems = sorted({JOBS[j].config.split("/")[1] for j in jobs})
    ensure_demo_data(data_root, data_scale(settings["scale"]), seed=0, problems=problems)
    log(f"data ready in {data_root} ({time.perf_counter() - t0:.0f} s)")
    results = data.setdefault("jobs", {})
    for name in jobs:
        results[name] = bench_job(job_for(name, settings["scale"]), settings, data_root, log)
        gc.collect()
    data["jobs_meta"] = dict(meta, wall_s=time.perf_counter() - t_start, jobs=jobs)


def _write_results(data: dict, jobs: list[str], out: Path, results_path: Path, total: float, log) -> None:
    """The merged results JSON and the RESULTS.md rendered from it."""
    if "jobs_meta" in data and jobs:
        data["jobs_meta"]["wall_s"] = total
        data["jobs_meta"]["waited_s"] = WAITED[0]
    notes_file = BENCH_DIR / "NOTES.md"
    # the notes describe the committed results: only the default RESULTS.md carries them
    if notes_file.is_file() and out.resolve() == (BENCH_DIR / "RESULTS.md").resolve():
        data["notes"] = notes_file.read_text()
    results_path.parent.mkdir(parents=True, exist_ok=True)
    results_path.write_text(json.dumps(data, indent=1, default=float) + "\n")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_results(data))
    log(f"\nwrote {out} and {results_path} in {total:.0f} s")
