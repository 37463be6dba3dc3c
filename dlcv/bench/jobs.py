"""One training job, ours against the reference: paired, interleaved repeats, ratios as medians
with min-max, FLOP/s against the machine's matmul rate, a profile where a job falls short."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from dlcv.bench.measure import (
    ForeignCpu,
    matmul_gflops,
    median,
    rate,
    summary,
    wait_for_quiet,
)
from dlcv.bench.results import fmt_ratio
from dlcv.bench.specs import JobSpec, resolved_config
from dlcv.bench.workers import Worker


def bench_job(spec: JobSpec, settings: dict, root: Path, log) -> dict:
    """One job's result: setup, paired interleaved repeats of every side, the data path alone, FLOPs,
    the numbers derived from them (`_job_numbers`), a profile where asked, each worker's stats."""
    import multiprocessing as mp

    device = settings["device"]
    run_dir = Path(settings["work"]) / "runs"
    cfg = resolved_config(spec, root, run_dir, device)
    job = {"name": spec.name, "config": cfg, "root": str(root), "batch": spec.batch, "infer_batch": spec.infer_batch,
           "device": device, "threads": settings["threads"], "run_dir": str(run_dir)}
    variants = _variants(cfg, settings)
    ctx = mp.get_context("spawn")
    log(f"\n== {spec.name}: {spec.title}; batch {spec.batch}, {spec.steps} timed step(s) x {settings['repeats']} "
        f"repeat(s), inference {spec.infer_images} image(s) in batches of {spec.infer_batch}")
    t_job = time.perf_counter()
    workers = _start_workers(ctx, job, spec, settings, root, run_dir)
    result: dict[str, Any] = {"name": spec.name, "title": spec.title, "config": spec.config, "batch": spec.batch,
                              "run": settings["run"],
                              "steps": spec.steps, "infer_batch": spec.infer_batch,
                              "infer_images": spec.infer_images, "channels_last": cfg["trainer"]["channels_last"],
                              "precision": cfg["trainer"]["precision"], "variants": list(variants)}
    try:
        _measure(spec, settings, workers, variants, result, log)
    except BaseException:
        for w in workers.values():  # mid-command workers would not read "stop"
            w.proc.terminate()
        raise
    finally:
        for w in workers.values():
            w.close()
    result["wall_s"] = round(time.perf_counter() - t_job, 1)
    log(f"  train ratio {fmt_ratio(result['train_ratio'])}, infer ratio {fmt_ratio(result['infer_ratio'])}, "
        f"data wait ours {result['data_wait']['ours']['median']:.1%} / reference "
        f"{result['data_wait']['ref']['median']:.1%}, {result['achieved_gflops']:.1f} GFLOP/s = "
        f"{result['peak_share']:.0%} of the matmul rate; {result['wall_s']:.0f} s")
    return result


def _variants(cfg: dict, settings: dict) -> dict[str, dict]:
    """The variants of "ours" measured beside it, by name: the config changes each one makes."""
    # the one variant of "ours" measured beside it: channels_last toggled (and fp32 on GPU)
    variants = {"cl_toggled": {"channels_last": not cfg["trainer"]["channels_last"]}}
    if settings["device"] == "cuda" and settings["scale"] == "gpu":
        variants["fp32"] = {"precision": "32-true"}
    return variants


def _start_workers(ctx, job: dict, spec: JobSpec, settings: dict, root: Path, run_dir: Path) -> dict[str, Worker]:
    """A worker process per side: ours, the reference and, with --compile, ours compiled."""
    workers = {"ours": Worker(ctx, "ours", job), "ref": Worker(ctx, "ref", job)}
    if settings.get("compile"):  # torch.compile (trainer.compile=true) needs a process of its own
        compiled = dict(job, config=resolved_config(spec, root, run_dir, job["device"], ("trainer.compile=true",)))
        workers["ours_compiled"] = Worker(ctx, "ours", compiled)
    return workers


def _measure(spec: JobSpec, settings: dict, workers: dict[str, Worker], variants: dict, result: dict, log) -> None:
    """Everything measured with the workers running, written into `result` (in this key order)."""
    for w in workers.values():
        w.recv()  # imported
    for side, w in workers.items():  # all build (and warm up) at once: nothing is timed yet
        w.send("setup", warmup=spec.warmup, variants=list(variants.values()) if side == "ours" else [])
    result["setup"] = {side: w.recv() for side, w in workers.items()}
    if "ours_compiled" in workers:  # its warm-up compiled the model: the one-off cost of compile
        result["compile_warmup_s"] = result["setup"]["ours_compiled"]["warmup_s"]
    pids = [w.proc.pid for w in workers.values()]
    result["foreign_cpu_before"] = wait_for_quiet(settings["max_foreign"], settings["max_wait"], log, pids)
    foreign = ForeignCpu(pids).start()
    mm_before = matmul_gflops()
    train, infer = _paired_repeats(spec, settings, workers, variants, result, log, pids)
    batches = max(2, spec.steps)
    data_only = {side: workers[side].call("data_only", batches=batches) for side in ("ours", "ref")}
    mm_after = matmul_gflops()
    result["foreign_cpu"] = foreign.stop()
    result["matmul_gflops"] = [mm_before, mm_after]
    result["train_raw"], result["infer_raw"], result["data_only_raw"] = train, infer, data_only
    result["flops"] = {side: workers[side].call("flops") for side in ("ours", "ref")}
    result.update(_job_numbers(result, settings))
    if settings["profile"] == "always" or (settings["profile"] == "auto"
                                           and (result["train_ratio"]["median"] or 0) < 2.0):
        result["profile"] = workers["ours"].call("profile")
    result["stats"] = {side: w.call("stats") for side, w in workers.items()}


def _side_key(side: str, variant: str | None) -> str:
    """The results' key of a side: "ours", "ref", "ours_compiled" or "ours:<variant>"."""
    return f"{side}:{variant}" if variant else side


def _paired_repeats(spec: JobSpec, settings: dict, workers: dict[str, Worker], variants: dict, result: dict, log,
                    pids: list[int]) -> tuple[dict[str, list], dict[str, list]]:
    """The kept repeats' raw train and infer timings per side; sets result's "repeat_foreign_cpu"
    and "discarded_repeats"."""
    # sides: ours, the reference, ours with a variant; the order rotates every repeat
    runs = [("ours", None), ("ref", None)] + [("ours", name) for name in variants]
    if "ours_compiled" in workers:
        runs.append(("ours_compiled", None))
    train: dict[str, list] = {_side_key(s, v): [] for s, v in runs}
    infer: dict[str, list] = {k: [] for k in train}
    result["repeat_foreign_cpu"], result["discarded_repeats"] = [], 0
    r = 0
    while r < settings["repeats"]:
        order = runs[r % len(runs):] + runs[:r % len(runs)]
        if r >= spec.variant_repeats:  # the variants run in the first variant_repeats repeats only
            order = [(side, v) for side, v in order if v is None]
        probe = ForeignCpu(pids).start()
        got_t, got_i = _one_repeat(spec, workers, variants, order)
        share = probe.stop()
        line = ("train img/s " + ", ".join(f"{k} {rate(t):.1f}" for k, t in got_t.items())
                + " | infer img/s " + ", ".join(f"{k} {rate(t):.1f}" for k, t in got_i.items())
                + f" | other processes {share:.0%}")
        # a repeat disturbed by other processes is measured again (at most max_redo times per job)
        if share > settings["max_foreign"] and result["discarded_repeats"] < settings["max_redo"]:
            result["discarded_repeats"] += 1
            log(f"  repeat {r + 1} discarded: {line}")
            wait_for_quiet(settings["max_foreign"], settings["max_wait"], log, pids)
            continue
        for k, v in got_t.items():
            train[k].append(v)
        for k, v in got_i.items():
            infer[k].append(v)
        result["repeat_foreign_cpu"].append(share)
        log(f"  repeat {r + 1}: {line}")
        r += 1
    return train, infer


def _one_repeat(spec: JobSpec, workers: dict[str, Worker], variants: dict,
                order: list[tuple[str, str | None]]) -> tuple[dict, dict]:
    """One repeat: every side's timed training steps, then every side's inference, both in `order`."""
    got_t = {_side_key(side, v): workers[side].call("train", steps=spec.steps, variant=variants.get(v))
             for side, v in order}
    got_i = {_side_key(side, v): workers[side].call("infer", images=spec.infer_images, variant=variants.get(v))
             for side, v in order}
    return got_t, got_i


def _job_numbers(result: dict, settings: dict) -> dict:
    train, infer = result["train_raw"], result["infer_raw"]
    out: dict[str, Any] = {}
    out["train_ips"] = {k: summary(rate(r) for r in v) for k, v in train.items()}
    out["infer_ips"] = {k: summary(rate(r) for r in v) for k, v in infer.items()}
    out["train_ratio"] = summary(rate(o) / rate(f) for o, f in zip(train["ours"], train["ref"]))
    out["infer_ratio"] = summary(rate(o) / rate(f) for o, f in zip(infer["ours"], infer["ref"]))
    out["data_wait"] = {k: summary(r["data_seconds"] / max(r["seconds"], 1e-12) for r in v) for k, v in train.items()}
    out["variant_ratio"] = {}
    for name in result["variants"]:
        key = f"ours:{name}"  # paired with ours of the same repeat (zip stops at the variant's repeats)
        out["variant_ratio"][name] = {
            "train": summary(rate(o) / rate(v) for o, v in zip(train["ours"], train[key])),
            "infer": summary(rate(o) / rate(v) for o, v in zip(infer["ours"], infer[key]))}
    if "ours_compiled" in train:  # > 1: compiled is faster
        out["compile_speedup"] = {
            "train": summary(rate(c) / rate(o) for o, c in zip(train["ours"], train["ours_compiled"])),
            "infer": summary(rate(c) / rate(o) for o, c in zip(infer["ours"], infer["ours_compiled"]))}
    d = result["data_only_raw"]
    out["data_only_ips"] = {k: rate(v) for k, v in d.items()}
    out["data_only_ratio"] = rate(d["ours"]) / max(rate(d["ref"]), 1e-12)
    flops = result["flops"]["ours"]
    peak = median(result["matmul_gflops"])
    out["matmul_peak"] = peak
    out["achieved_gflops"] = flops["train_flops_per_image"] * out["train_ips"]["ours"]["median"] / 1e9
    out["achieved_infer_gflops"] = flops["infer_flops_per_image"] * out["infer_ips"]["ours"]["median"] / 1e9
    out["peak_share"] = out["achieved_gflops"] / peak
    out["infer_peak_share"] = out["achieved_infer_gflops"] / peak
    ref_flops = result["flops"]["ref"]["train_flops_per_image"]
    out["flops_match"] = ref_flops / max(flops["train_flops_per_image"], 1.0)
    return out
