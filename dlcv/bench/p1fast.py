"""`dlcv bench --jobs p1_fast`: the fast P1 A recipe's time to accuracy against the seed recipe.

Both recipes train as `dlcv train` trains them (the engine's Trainer with its callbacks: per-epoch
log, checkpoints, validation every epoch), each run in a fresh process, from their own YAML files
with only the data root (and the seed's epochs, `SEED_EPOCHS`) changed, on two data sets in one
run: real images (scikit-learn's digits in the P1 layout, `dlcv.bench.digits`) and the P1 demo data.
A clock callback records, at the end of every epoch, the wall time since the fit started
(training, validation and checkpoint writing included) and the validation accuracy.

Per pair (seed run, then fast run, the order alternating between repeats): the seed's best
validation accuracy and its whole wall time; the fast recipe's first epoch at or above that
accuracy and the wall time it took; ratio = that time / the seed's wall time (target <= 0.5).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from dlcv.bench.measure import median, summary, wait_for_quiet
from dlcv.bench.specs import REPO

SEED_CONFIG, FAST_CONFIG = "configs/p1/seed_a.yaml", "configs/p1/fast_a.yaml"
SEED_EPOCHS = 0  # 0 = the seed recipe's own (80): its whole schedule, as the seed report trained it
QUICK_OVERRIDES = ("trainer.epochs=2", "data.limit=64")  # --quick: the code path, not a measurement


def clock_callback():
    import lightning.pytorch as L

    class Clock(L.Callback):
        """Wall seconds since fit start and the validation accuracy at the end of every epoch (after
        the engine's callbacks: the checkpoint of that epoch is written), and training-only seconds."""

        def __init__(self):
            self.t0 = self.t_epoch = 0.0
            self.train_s = 0.0
            self.rows: list[dict] = []

        def on_fit_start(self, trainer, pl_module):
            self.t0 = time.perf_counter()

        def on_train_epoch_start(self, trainer, pl_module):
            self.t_epoch = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            self.t_last = time.perf_counter()

        def on_train_epoch_end(self, trainer, pl_module):
            self.train_s += self.t_last - self.t_epoch
            acc = trainer.callback_metrics.get("val/acc")
            self.rows.append({"epoch": trainer.current_epoch + 1, "wall_s": round(time.perf_counter() - self.t0, 3),
                              "train_s": round(self.train_s, 3), "val_acc": None if acc is None else float(acc)})

    return Clock()


def timed_fit(config: str, overrides: list[str], threads: int) -> dict:
    """One training run through the product's path with the clock; returns its rows and totals."""
    import torch

    from dlcv.config import load_config, to_dict
    from dlcv.engine import build_trainer, prepare_run_dir, seed_run
    from dlcv.jobs import classify
    from dlcv.tasks.classification import ClassificationTask

    torch.set_num_threads(threads)
    cfg = load_config(REPO / config, overrides)
    run_dir = prepare_run_dir(cfg, ["dlcv", "bench", "p1_fast"], resume=False, overwrite=True)
    seed_run(cfg)
    train, val = classify.load_sets(cfg)  # decode-once caches: written before the timed runs
    task = ClassificationTask(to_dict(cfg))
    clock = clock_callback()
    trainer = build_trainer(cfg, run_dir, monitor="val/acc", mode="max", callbacks=[clock])
    t0 = time.perf_counter()
    trainer.fit(task, datamodule=classify.datamodule(cfg, train, val))
    fit_s = time.perf_counter() - t0
    accs = [r["val_acc"] for r in clock.rows]
    best = max(range(len(accs)), key=lambda i: accs[i])
    return {"config": config, "overrides": list(overrides), "epochs": clock.rows, "wall_s": clock.rows[-1]["wall_s"],
            "fit_s": round(fit_s, 3), "best_acc": accs[best], "best_epoch": best + 1,
            "train_images": len(train.labels), "val_images": len(val.labels)}


def _worker(conn, config: str, overrides: list[str], threads: int) -> None:
    import os
    import sys
    import traceback
    import warnings

    warnings.filterwarnings("ignore")
    os.environ.setdefault("DLCV_OFFLINE", "1")
    sys.stdout = open(os.devnull, "w")  # the per-epoch log lines of every run would drown the bench's own
    try:
        conn.send(("ok", timed_fit(config, overrides, threads)))
    except Exception:  # noqa: BLE001 - reported to the parent with its traceback
        conn.send(("error", traceback.format_exc()))


def run_in_process(config: str, overrides: list[str], threads: int) -> dict:
    """timed_fit in a fresh spawned process (no warm kernels, allocator or caches carried over)."""
    import multiprocessing as mp

    from dlcv.bench.workers import BenchError

    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_worker, args=(child, config, overrides, threads), daemon=True)
    proc.start()
    child.close()
    try:
        status, value = parent.recv()
    except EOFError:
        raise BenchError(f"the training process of {config} died (exit code {proc.exitcode})") from None
    finally:
        proc.join(timeout=60)
    if status == "error":
        raise BenchError(f"{config} failed:\n{value}")
    return value


def time_to(rows: list[dict], target: float) -> tuple[float | None, int | None]:
    """Wall seconds and epoch at the end of the first epoch whose accuracy is >= target (None: never)."""
    for r in rows:
        if r["val_acc"] is not None and r["val_acc"] >= target - 1e-9:
            return r["wall_s"], r["epoch"]
    return None, None


def slim(run: dict, keep_curve: bool) -> dict:
    """A run for the results file: its totals, and its per-epoch curve only when asked (the first
    repeat's; the others repeat the same accuracies at other times)."""
    out = {k: v for k, v in run.items() if k != "epochs"}
    out["epochs_run"] = run["epochs"][-1]["epoch"]
    if keep_curve:
        out["epochs"] = run["epochs"]
    return out


def compare_pair(seed: dict, fast: dict) -> dict:
    t, epoch = time_to(fast["epochs"], seed["best_acc"])
    return {"seed_best_acc": seed["best_acc"], "seed_best_epoch": seed["best_epoch"], "seed_wall_s": seed["wall_s"],
            "fast_best_acc": fast["best_acc"], "fast_wall_s": fast["wall_s"], "fast_time_to_seed_best_s": t,
            "fast_epoch_at_seed_best": epoch, "ratio": None if t is None else t / seed["wall_s"]}


def bench_dataset(name: str, root: Path, settings: dict, log) -> dict:
    """Paired repeats of (seed, fast) on one data set; the order alternates between repeats."""
    quick = settings["scale"] == "quick"
    common = [f"data.root={root}", f"run.dir={Path(settings['work']) / 'p1_fast_runs' / name}",
              "trainer.progress=false", "trainer.accelerator=cpu" if settings["device"] == "cpu" else "trainer.devices=1",
              "features.enabled=false", *(QUICK_OVERRIDES if quick else ())]
    seed_over = common + ([f"trainer.epochs={SEED_EPOCHS}"] if SEED_EPOCHS and not quick else [])
    runs = {"seed": (SEED_CONFIG, seed_over), "fast": (FAST_CONFIG, common)}
    pairs, raw = [], {"seed": [], "fast": []}
    for r in range(1 if quick else settings["repeats"]):
        wait_for_quiet(settings["max_foreign"], settings["max_wait"], log)
        done = {}
        for side in (("seed", "fast") if r % 2 == 0 else ("fast", "seed")):
            config, overrides = runs[side]
            # every repeat with the recipes' own seed: the same accuracies, so repeats measure the time's
            # noise (how the best accuracies spread over seeds is another question, not measured here)
            done[side] = run_in_process(config, overrides, settings["threads"])
            raw[side].append(slim(done[side], keep_curve=r == 0))
            log(f"  {name} repeat {r + 1} {side}: best {done[side]['best_acc']:.2%} (epoch "
                f"{done[side]['best_epoch']}), {done[side]['wall_s']:.1f} s")
        pairs.append(compare_pair(done["seed"], done["fast"]))
        p = pairs[-1]
        reached = "never" if p["ratio"] is None else f"{p['fast_time_to_seed_best_s']:.1f} s = {p['ratio']:.2f}x"
        log(f"  {name} repeat {r + 1}: fast reaches the seed's best {p['seed_best_acc']:.2%} in {reached}")
    return {"name": name, "root": str(root), "pairs": pairs, "raw": raw, **_dataset_summary(pairs, raw)}


def _dataset_summary(pairs: list[dict], raw: dict) -> dict[str, Any]:
    reached = [p["ratio"] for p in pairs if p["ratio"] is not None]
    return {"ratio": summary(reached) if len(reached) == len(pairs) else {"median": None, "n": 0},
            "reached": f"{len(reached)}/{len(pairs)}",
            "seed_wall_s": summary(p["seed_wall_s"] for p in pairs),
            "seed_best_acc": summary(p["seed_best_acc"] for p in pairs),
            "fast_wall_s": summary(p["fast_wall_s"] for p in pairs),
            "fast_best_acc": summary(p["fast_best_acc"] for p in pairs),
            "fast_time_to_seed_best_s": summary(p["fast_time_to_seed_best_s"] for p in pairs),
            "epochs": {side: raw[side][0]["epochs_run"] for side in raw},
            "images": {"train": raw["seed"][0]["train_images"], "val": raw["seed"][0]["val_images"]},
            "median_ratio": median(reached) if reached else None}


def bench_autoaugment_cost(settings: dict, log) -> dict:
    """Milliseconds per CPU batch of 128x3x32x32 of our batched TrivialAugmentWide / RandAugment(2, 9)
    against torchvision.transforms.v2's, applied image by image as a Dataset would (the same ops,
    output for output; tests/test_trivialaugment.py), with pad-crop-flip beside them for scale."""
    import torch
    from torchvision.transforms import v2

    from dlcv.bench.sections import _time_interleaved
    from dlcv.data.augment.autoaugment import RandAugment, TrivialAugmentWide
    from dlcv.data.augment.geometric import pad_crop_flip

    n = 16 if settings["scale"] == "quick" else 128
    x8 = torch.randint(0, 256, (n, 3, 32, 32), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    x = x8.float() / 255
    ta, ra, tv_ta, tv_ra = TrivialAugmentWide(), RandAugment(), v2.TrivialAugmentWide(), v2.RandAugment()
    variants = {
        "ours_trivialaugment": lambda: ta(x, torch.Generator().manual_seed(1)),
        "torchvision_trivialaugment_per_image": lambda: [tv_ta(im) for im in x8],
        "ours_randaugment": lambda: ra(x, torch.Generator().manual_seed(1)),
        "torchvision_randaugment_per_image": lambda: [tv_ra(im) for im in x8],
        "ours_pad_crop_flip": lambda: pad_crop_flip(x, torch.Generator().manual_seed(1)),
    }
    log(f"\n== autoaugment: {n}x3x32x32 on the CPU, {settings['threads']} threads")
    for f in variants.values():
        f()  # warm-up
    wait_for_quiet(settings["max_foreign"], settings["max_wait"], log)
    times = _time_interleaved(variants, max(7, settings["repeats"]))
    out = {"batch": n, "ms": {k: summary(t * 1e3 for t in v) for k, v in times.items()},
           "speedup": {kind: summary(t / o for o, t in zip(times[f"ours_{kind}"], times[f"torchvision_{kind}_per_image"]))
                       for kind in ("trivialaugment", "randaugment")}}
    log("  " + ", ".join(f"{k} {s['median']:.1f} ms" for k, s in out["ms"].items()))
    return out


def _data_sets(settings: dict, log) -> dict[str, Path]:
    """The two P1-layout data sets (generated when missing) with their decode-once caches written, so
    no timed run pays for decoding: real digits, and the `dlcv demo` P1 data."""
    from dlcv.bench.digits import write_digits_p1
    from dlcv.config import load_config
    from dlcv.demo import DemoScale, ensure_demo_data
    from dlcv.jobs import classify

    base = Path(settings["data"]) / "p1_fast"
    quick = settings["scale"] == "quick"
    scale = DemoScale(p1_train_per_class=2, p1_val_per_class=1, p1_test=0) if quick else DemoScale()
    roots = {"digits": write_digits_p1(base / "digits"), "demo": base / "demo"}
    ensure_demo_data(roots["demo"], scale, seed=0, problems=["p1"])
    for root in roots.values():
        classify.load_sets(load_config(REPO / SEED_CONFIG, [f"data.root={root}"]))
    log(f"  data: {', '.join(f'{k} {v}' for k, v in roots.items())}")
    return roots


def bench_p1_fast(settings: dict, log) -> dict:
    """The section: time to accuracy on both data sets, torch.compile, and the TrivialAugment /
    RandAugment cost."""
    from dlcv.bench.compile import bench_compile

    log(f"\n== p1_fast: {FAST_CONFIG} against {SEED_CONFIG} (time to the seed's best validation accuracy)")
    roots = _data_sets(settings, log)
    out: dict[str, Any] = {"seed_config": SEED_CONFIG, "fast_config": FAST_CONFIG, "seed_epochs": SEED_EPOCHS,
                           "threads": settings["threads"], "datasets": {}}
    for name, root in roots.items():
        out["datasets"][name] = bench_dataset(name, root, settings, log)
    out["compile"] = bench_compile(settings, roots["demo"], log)
    out["autoaugment"] = bench_autoaugment_cost(settings, log)
    return out
