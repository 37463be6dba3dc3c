"""The GPU planning tools of benchmarks/: gpu_estimates.py (FLOPs -> time on a 2080 Ti / H100) and
gpu_p3.py + gpu.sh (measurements where a GPU is at hand; a clean exit where none is)."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest
import torch

from tests.helpers import REPO


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_tta_flops_count_every_pass_at_its_size():
    est = _load("gpu_estimates")
    model = {"name": "deeplabv3_resnet50"}
    plain = {s: est.tta_flops(model, "none", (1.0,), size=s) for s in (48, 64, 80)}
    assert est.tta_flops(model, "flip", (1.0,), size=64) == 3 * plain[64]
    assert est.tta_flops(model, "flip_multiscale", (0.75, 1.0, 1.25), size=64) == 3 * sum(plain.values())
    assert 4 * plain[32 * 2] == pytest.approx(est.tta_flops(model, "none", (1.0,), size=128), rel=0.02)


def test_time_arithmetic_and_the_recipe_row():
    est = _load("gpu_estimates")
    dev = est.DEVICES["2080ti_fp32"]
    seconds = est.hw1_3_seconds(327e9, dev, n=313)
    assert seconds == pytest.approx(est.STARTUP_S + 313 * 327e9 / (13.4e12 * 0.35))
    assert est.hw1_3_seconds(327e9, dev, pessimistic=True, n=313) > seconds
    row = est.recipe_row(str(REPO / "configs" / "p3" / "b_deeplabv3_strong.yaml"))
    assert row["steps"] == 2000 // 16 * 60 and row["epochs"] == 60 and row["batch"] == 16
    assert 900 < row["train_gflop_per_image"] < 1200  # forward + backward of DeepLabv3 + aux head at 512 px
    assert row["2080ti_fp16_h"] < row["2080ti_fp16_h_pessimistic"] and row["h100_bf16_h"] < row["2080ti_fp16_h"]
    table = est.recipe_table([row])
    assert "p3/b_deeplabv3_strong.yaml" in table and "| 60 | 16 | 7,500 |" in table


def test_gpu_p3_pieces_on_the_cpu(tmp_path):
    gpu = _load("gpu_p3")
    r = gpu.train_throughput(str(REPO / "configs" / "p3" / "b_deeplabv3_strong.yaml"), steps=1, warmup=0,
                             device="cpu", overrides=["data.batch_size=2", "data.crop=32"], size=32)
    assert r["steps_per_s"] > 0 and r["val_images_per_s"] > 0 and r["tta"] == "flip_multiscale"
    assert gpu.recipe_hours(r) > 0
    text = gpu.markdown("cpu", [r, {"config": "x.yaml", "error": "OutOfMemoryError"}], [], 313)
    assert "b_deeplabv3_strong.yaml" in text and "OutOfMemoryError" in text


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the behaviour without a GPU")
def test_gpu_scripts_exit_cleanly_without_a_gpu(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHON": sys.executable}
    for cmd in (["bash", str(REPO / "benchmarks" / "gpu.sh"), "--p3-only"],
                ["bash", str(REPO / "benchmarks" / "gpu.sh")]):
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
        assert proc.returncode == 0 and "no CUDA GPU visible" in proc.stderr and "nothing measured" in proc.stderr
