"""`torch.compile` against eager for the P1 A recipes (part of `dlcv bench --jobs p1_fast`).

Each recipe runs in two worker processes of the product's pipeline (`OursPipeline`: the task built
from the recipe's YAML, trained by the engine's Trainer), one with `trainer.compile=false`, one with
`trainer.compile=true`; both build and warm up first (the compiled one compiles then: its one-off
cost is reported apart), then timed training steps alternate between them, repeat by repeat. The
speed-up is compiled / eager images/s per repeat (median, min-max). A recipe keeps
`trainer.compile: true` only where this is >= KEEP_COMPILE (1.1x).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from dlcv.bench.measure import ForeignCpu, rate, summary, wait_for_quiet
from dlcv.bench.results import fmt_ratio
from dlcv.bench.specs import REPO, JobSpec, resolved_config
from dlcv.bench.workers import Worker

KEEP_COMPILE = 1.1
RECIPES = (  # the P1 A recipes at their own batch sizes
    JobSpec("p1_seed_a", "P1 A seed CNN", "configs/p1/seed_a.yaml", 32, 30, 250, 500, 3),
    JobSpec("p1_fast_a", "P1 A fast (airbench-style)", "configs/p1/fast_a.yaml", 0, 8, 250, 500, 2),
)
QUICK = dict(steps=2, infer_batch=16, infer_images=16, warmup=1)


def _spec(spec: JobSpec, settings: dict) -> JobSpec:
    from dlcv.config import load_config

    batch = spec.batch or int(load_config(REPO / spec.config).data.batch_size)
    spec = dataclasses.replace(spec, batch=batch)
    return dataclasses.replace(spec, batch=min(batch, 16), **QUICK) if settings["scale"] == "quick" else spec


def bench_compile(settings: dict, root: Path, log) -> dict:
    """Eager vs compiled training images/s of each P1 A recipe on `root`'s P1 data."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    out = {}
    for spec in RECIPES[:1] if settings["scale"] == "quick" else RECIPES:  # --quick: the code path, once
        spec = _spec(spec, settings)
        run_dir = Path(settings["work"]) / "compile_runs"
        job = {"name": spec.name, "root": str(root), "batch": spec.batch, "infer_batch": spec.infer_batch,
               "device": settings["device"], "threads": settings["threads"], "run_dir": str(run_dir),
               "config": resolved_config(spec, root, run_dir, settings["device"], ("trainer.compile=false",))}
        compiled = dict(job, config=resolved_config(spec, root, run_dir, settings["device"], ("trainer.compile=true",)))
        workers = {"eager": Worker(ctx, "ours", job), "compiled": Worker(ctx, "ours", compiled)}
        try:
            out[spec.name] = _measure(spec, workers, settings, log)
        finally:
            for w in workers.values():
                w.close()
    return out


def _measure(spec: JobSpec, workers: dict, settings: dict, log) -> dict:
    for w in workers.values():
        w.recv()  # imported
    setup = {side: w.call("setup", warmup=spec.warmup, variants=[]) for side, w in workers.items()}
    pids = [w.proc.pid for w in workers.values()]
    wait_for_quiet(settings["max_foreign"], settings["max_wait"], log, pids)
    raw: dict[str, list] = {"eager": [], "compiled": []}
    shares = []
    for r in range(settings["repeats"]):
        probe = ForeignCpu(pids).start()
        for side in (("eager", "compiled") if r % 2 == 0 else ("compiled", "eager")):
            raw[side].append(workers[side].call("train", steps=spec.steps))
        shares.append(probe.stop())
    speedup = summary(rate(c) / rate(e) for e, c in zip(raw["eager"], raw["compiled"]))
    result = {"title": spec.title, "config": spec.config, "batch": spec.batch, "steps": spec.steps,
              "eager_ips": summary(rate(x) for x in raw["eager"]),
              "compiled_ips": summary(rate(x) for x in raw["compiled"]), "speedup": speedup,
              "compile_warmup_s": setup["compiled"]["warmup_s"], "eager_warmup_s": setup["eager"]["warmup_s"],
              "keep_compile": (speedup["median"] or 0) >= KEEP_COMPILE, "foreign_cpu": max(shares), "raw": raw}
    log(f"  compile {spec.name} (batch {spec.batch}): eager {result['eager_ips']['median']:.0f} img/s, compiled "
        f"{result['compiled_ips']['median']:.0f} img/s = {fmt_ratio(speedup)}; warm-up incl. compile "
        f"{result['compile_warmup_s']:.0f} s (eager {result['eager_warmup_s']:.0f} s)")
    return result
