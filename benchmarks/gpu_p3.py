"""Measured P3 numbers on one GPU, to replace the estimates of benchmarks/gpu_estimates.py:

* training: steps/s and images/s of every P3 recipe (configs/p3/*.yaml) at its own batch size and
  512 px crops: the task's own augmentation, model, loss (aux head included), optimizer and the
  engine's precision rule (bf16 AMP where the GPU has bf16, else fp16 AMP with loss scaling),
  peak GPU memory, and the whole recipe's projected time (epochs x steps + per-epoch validation);
* hw1_3.sh: wall time of its command (`python3 -m dlcv.graded predict p3 ... --tta-mode MODE`, a new
  process each, wrapped only to print its peak GPU memory at exit: start-up, model loading, JPEG
  decoding, PNG writing included) on 313 generated 512x512 JPEGs with each TTA, FCN32s and
  DeepLabv3, in the GPU's default precision and in fp32 without TF32 (what a 2080 Ti computes in
  fp32), with its peak GPU memory (the course's card has 11 GB);
* the measured share of the peak, against the assumptions of gpu_estimates.py.

    .venv/bin/python benchmarks/gpu_p3.py                 # -> benchmarks/RESULTS_gpu_p3.md + results_gpu_p3.json
    .venv/bin/python benchmarks/gpu_p3.py --steps 5 --images 64   # quicker

Random-init weights (the speed is the same) and generated images: nothing is downloaded. Without
a CUDA GPU it prints why and exits with status 0, writing nothing.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
TTA_RUNS = (("none", "auto"), ("flip", "auto"), ("flip_multiscale", "auto"), ("none", "fp32"),
            ("flip_multiscale", "fp32"))
# peak GPU memory of the graded process, printed at its exit (the run mirrors hw1_3.sh's command)
PEAK_WRAPPER = ("import atexit, runpy, sys, torch; atexit.register(lambda: print('dlcv-peak-gpu-bytes', "
                "torch.cuda.max_memory_allocated() if torch.cuda.is_available() else 0, file=sys.stderr)); "
                "sys.argv = ['dlcv.graded', *sys.argv[1:]]; "
                "runpy.run_module('dlcv.graded', run_name='__main__')")


def gpu_or_none() -> str | None:
    import torch

    if not torch.cuda.is_available():
        return None
    p = torch.cuda.get_device_properties(0)
    return f"{p.name}, {p.total_memory / 2**30:.0f} GiB, compute capability {p.major}.{p.minor}"


def write_images(folder: Path, n: int, size: int = 512) -> None:
    """n satellite-like JPEGs: smooth regions plus texture (JPEG decoding costs what real tiles cost)."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        coarse = rng.integers(0, 256, (size // 32, size // 32, 3), dtype=np.uint8)
        img = np.kron(coarse, np.ones((32, 32, 1), dtype=np.uint8)).astype(np.int16)
        img += rng.integers(-20, 21, img.shape, dtype=np.int16)
        Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(folder / f"{i:04d}_sat.jpg", quality=90)


def export(config: str, out: Path) -> Path:
    import torch

    from dlcv.config import load_config, to_dict
    from dlcv.io import export_model
    from dlcv.tasks.segmentation import SegmentationTask

    torch.manual_seed(0)
    cfg = to_dict(load_config(config, ["model.pretrained=none"]))
    return export_model(out, cfg, SegmentationTask(cfg).state_dict())


def time_hw1_3(ckpt: Path, images: Path, out: Path, tta: str, precision: str) -> dict:
    env = {**os.environ, "DLCV_P3_CKPT": str(ckpt), "DLCV_P3_TTA": tta, "DLCV_P3_PRECISION": precision,
           "PYTHONPATH": str(REPO)}
    if precision == "fp32":
        env["NVIDIA_TF32_OVERRIDE"] = "0"  # true fp32, as a 2080 Ti (no TF32) computes it
    cmd = [sys.executable, "-c", PEAK_WRAPPER, "predict", "p3", str(ckpt), str(images), str(out), "--tta-mode", tta]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=REPO)
    seconds = time.perf_counter() - t0
    peak = [int(line.split()[1]) for line in proc.stderr.splitlines() if line.startswith("dlcv-peak-gpu-bytes")]
    return {"tta": tta, "precision": precision, "seconds": round(seconds, 2), "returncode": proc.returncode,
            "peak_gpu_gib": round(peak[0] / 2**30, 2) if peak else None,
            "log": [ln.replace(str(out), "<out>") for ln in proc.stderr.splitlines()
                    if ln.startswith(("wrote", "TTA", "error"))][-3:]}


def train_throughput(config: str, steps: int, warmup: int = 3, device: str = "cuda", overrides=(),
                     size: int = 512) -> dict:
    """Training steps/s of a recipe at its batch size (random data of `size` px through its own
    augmentation), and plain validation images/s, on `device` (cpu: the tests' smoke run)."""
    import torch

    from dlcv.config import load_config, to_dict
    from dlcv.engine import resolve_precision
    from dlcv.optim import build_optimizer
    from dlcv.tasks.segmentation import SegmentationTask, augment_pair, segmentation_loss

    cfg = load_config(config, ["model.pretrained=none", *overrides])
    dev = torch.device(device)
    precision = resolve_precision(cfg.trainer) if dev.type == "cuda" else "32-true"
    dtype = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(precision)
    fmt = torch.channels_last if cfg.trainer.channels_last else torch.contiguous_format
    model = SegmentationTask(to_dict(cfg)).segmenter.to(dev).to(memory_format=fmt).train()
    opt = build_optimizer(cfg.optim, model)
    scaler = torch.amp.GradScaler(dev.type, enabled=dtype == torch.float16)
    b, crop, weight, lcfg = cfg.data.batch_size, cfg.data.crop or 512, cfg.model.aux_loss_weight, cfg.loss
    g = torch.Generator(device=dev).manual_seed(0)
    images = torch.randint(0, 256, (b, 3, size, size), dtype=torch.uint8, device=dev, generator=g)
    masks = torch.randint(0, 7, (b, size, size), dtype=torch.uint8, device=dev, generator=g)

    def step():
        x, y = augment_pair(images.float().div(255), masks, cfg.augment, crop, g)
        x, y = x.contiguous(memory_format=fmt), y.long()
        with torch.autocast(dev.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            if weight > 0:
                out, aux = model(x, with_aux=True)
                loss = (segmentation_loss(out, y, lcfg.name, lcfg.focal_gamma)
                        + weight * segmentation_loss(aux, y, lcfg.name, lcfg.focal_gamma))
            else:
                loss = segmentation_loss(model(x), y, lcfg.name, lcfg.focal_gamma)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    cuda = dev.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    train_s = _timed(step, warmup, steps, cuda)
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan")
    model.eval()
    val = images.repeat(2, 1, 1, 1).contiguous(memory_format=fmt)  # the engine's eval batch: 2 x batch

    def infer():
        with torch.inference_mode(), torch.autocast(dev.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            model(val).argmax(1)
    val_s = _timed(infer, min(2, warmup), max(1, steps // 2), cuda)
    return {"config": Path(config).name, "precision": precision, "batch": b, "steps_per_s": 1 / train_s,
            "train_images_per_s": b / train_s, "val_images_per_s": len(val) / val_s, "peak_gpu_gib": round(peak, 2),
            "epochs": cfg.trainer.epochs, "val_every": cfg.trainer.val_every, "tta": cfg.eval.tta,
            "tta_scales": list(cfg.eval.tta_scales)}


def _timed(fn, warmup: int, n: int, cuda: bool = True) -> float:
    """Seconds per call of fn after `warmup` calls (CUDA synchronised)."""
    import torch

    sync = torch.cuda.synchronize if cuda else (lambda: None)
    for _ in range(warmup):
        fn()
    sync()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    sync()
    return (time.perf_counter() - t0) / n


def recipe_hours(r: dict, train_images: int = 2000, val_images: int = 257) -> float:
    """A whole recipe at the measured speeds: epochs x (training steps + validation) + final evaluation."""
    from dlcv.graded.models import tta_cost

    steps = train_images // r["batch"]
    per_epoch = steps / r["steps_per_s"] + val_images / r["val_images_per_s"] / max(1, r["val_every"])
    final = val_images * (1 + tta_cost(r["tta"], r["tta_scales"])) / r["val_images_per_s"]
    return (r["epochs"] * per_epoch + final) / 3600


def markdown(gpu: str, train: list[dict], hw1_3: list[dict], n_images: int) -> str:
    lines = [f"# P3 on {gpu}", "", f"Written by `benchmarks/gpu_p3.py` on {time.strftime('%Y-%m-%d %H:%M')}; "
             "random-init weights, generated data.", "", "## Training (each recipe's batch, 512 px crops)", "",
             "| recipe | precision | batch | steps/s | img/s | val img/s | peak GPU GiB | whole recipe |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in train:
        if "error" in r:
            lines.append(f"| {r['config']} | | | {r['error']} | | | | |")
            continue
        lines.append(f"| {r['config']} | {r['precision']} | {r['batch']} | {r['steps_per_s']:.2f} | "
                     f"{r['train_images_per_s']:.1f} | {r['val_images_per_s']:.1f} | {r['peak_gpu_gib']} | "
                     f"{recipe_hours(r):.2f} h |")
    lines += ["", f"## hw1_3.sh on {n_images} images of 512x512 (whole process; limit 600 s)", "",
              "| model | TTA | precision | seconds | peak GPU GiB | exit | log |", "|---|---|---|---:|---:|---:|---|"]
    for r in hw1_3:
        lines.append(f"| {r['model']} | {r['tta']} | {r['precision']} | {r['seconds']:.1f} | {r['peak_gpu_gib']} | "
                     f"{r['returncode']} | {'; '.join(r['log'])} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=10, help="timed training steps per recipe")
    parser.add_argument("--images", type=int, default=313, help="images for hw1_3.sh (the hidden test: 313)")
    parser.add_argument("--configs", nargs="*", default=sorted(glob.glob(str(REPO / "configs" / "p3" / "*.yaml"))))
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "RESULTS_gpu_p3.md"))
    args = parser.parse_args(argv)
    gpu = gpu_or_none()
    if gpu is None:
        print("benchmarks/gpu_p3.py: no CUDA GPU visible: nothing measured (the estimates: "
              "python benchmarks/gpu_estimates.py)", file=sys.stderr)
        return 0
    print(f"GPU: {gpu}", flush=True)
    train = []
    for config in args.configs:
        try:
            train.append(train_throughput(config, args.steps))
        except Exception as exc:  # noqa: BLE001 - an OOM of one recipe is a result, not the end of the run
            train.append({"config": Path(config).name, "error": f"{type(exc).__name__}: {str(exc)[:120]}"})
        print(json.dumps(train[-1]), flush=True)
        _free_gpu()
    hw1_3 = run_hw1_3(args.images)
    Path(args.out).write_text(markdown(gpu, train, hw1_3, args.images))
    Path(args.out).with_name("results_gpu_p3.json").write_text(
        json.dumps({"gpu": gpu, "train": train, "hw1_3": hw1_3}, indent=2) + "\n")
    print(Path(args.out).read_text())
    return 0


def _free_gpu() -> None:
    import gc

    import torch

    gc.collect()
    torch.cuda.empty_cache()


def run_hw1_3(n_images: int) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="dlcv_gpu_p3_") as tmp:
        tmp = Path(tmp)
        write_images(tmp / "images", n_images)
        models = {"FCN32s": export(str(REPO / "configs/p3/a_fcn32s_strong.yaml"), tmp / "a"),
                  "DeepLabv3": export(str(REPO / "configs/p3/b_deeplabv3_strong.yaml"), tmp / "b")}
        _free_gpu()
        for name, ckpt in models.items():
            for tta, precision in TTA_RUNS:
                row = {"model": name, **time_hw1_3(ckpt, tmp / "images", tmp / f"out_{name}_{tta}_{precision}",
                                                   tta, precision)}
                print(json.dumps(row), flush=True)
                rows.append(row)
    return rows


if __name__ == "__main__":
    sys.exit(main())
