"""Smoke test of `dlcv bench` with tiny settings: it runs end to end and writes RESULTS-style output
with the ratio columns. It never asserts a speed (a shared 2-core machine says nothing about that)."""
from __future__ import annotations

import json

import pytest

from tests.helpers import run_dlcv


@pytest.mark.timeout(300)
def test_bench_quick_writes_ratio_tables(tmp_path):
    out = tmp_path / "RESULTS.md"
    proc = run_dlcv("bench", "--quick", "--jobs", "p1_seed_a", "miou", "--data", str(tmp_path / "data"),
                    "--out", str(out), "--max-wait", "0", "--profile", "always", timeout=300)
    text = out.read_text()
    # the training table: images/s of both pipelines and the ratio columns
    assert "train ratio ours/ref" in text and "infer ratio ours/ref" in text
    assert "data wait ours" in text and "peak RSS ours / ref" in text
    row = next(line for line in text.splitlines() if line.startswith("| P1 A seed CNN"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[4].strip("*").endswith(")") and "x (" in cells[4]  # median (min-max)
    # compute, channels_last, the profile, the mIoU section and the targets
    assert "GFLOP/img train" in text and "matmul GFLOP/s" in text and "channels_last on/off" in text
    assert "Where the time of one training step goes" in text
    assert "Evaluation: the official mIoU" in text and "speed-up over the loop" in text
    assert "## Targets" in text and "data wait < 10%" in text
    assert "with `dlcv bench --quick" in text  # the exact command is recorded
    # the merged results beside it
    data = json.loads(out.with_suffix(".json").read_text())
    job = data["jobs"]["p1_seed_a"]
    assert len(job["train_raw"]["ours"]) == len(job["train_raw"]["ref"]) == 2
    assert job["flops_match"] == pytest.approx(1.0, rel=0.01)  # the reference runs the same architecture
    assert all(data["miou"]["equal"].values())
    assert "wrote" in proc.stdout
