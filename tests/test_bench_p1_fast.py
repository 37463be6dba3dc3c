"""Smoke test of `dlcv bench --jobs p1_fast` at --quick size: both recipes train through the product in
their own processes, the compile and TrivialAugment/RandAugment measurements run, and RESULTS.md gets
the section's tables and targets. Never asserts a speed or an accuracy (tiny data, a shared machine)."""
from __future__ import annotations

import json

import pytest

from dlcv.bench.p1fast import compare_pair, time_to
from tests.helpers import run_dlcv


def test_time_to_and_the_pair_ratio():
    rows = [{"epoch": 1, "wall_s": 10.0, "val_acc": 0.5}, {"epoch": 2, "wall_s": 20.0, "val_acc": 0.9},
            {"epoch": 3, "wall_s": 30.0, "val_acc": 0.95}]
    assert time_to(rows, 0.9) == (20.0, 2) and time_to(rows, 0.96) == (None, None)
    seed = {"best_acc": 0.9, "best_epoch": 7, "wall_s": 100.0}
    fast = {"best_acc": 0.95, "wall_s": 30.0, "epochs": rows}
    pair = compare_pair(seed, fast)
    assert pair["ratio"] == pytest.approx(0.2) and pair["fast_epoch_at_seed_best"] == 2
    assert compare_pair({**seed, "best_acc": 0.99}, fast)["ratio"] is None


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_bench_p1_fast_quick_writes_its_tables(tmp_path):
    out = tmp_path / "RESULTS.md"
    proc = run_dlcv("bench", "--quick", "--jobs", "p1-fast", "--data", str(tmp_path / "data"), "--out", str(out),
                    "--max-wait", "0", "--threads", "1", timeout=900)
    text = out.read_text()
    assert "## P1 A: the fast recipe's time to accuracy" in text
    assert "| digits |" in text and "| demo |" in text and "ratio to the seed's wall time" in text
    assert "`torch.compile` (inductor) against eager" in text and "| P1 A seed CNN" in text
    assert "| TrivialAugmentWide |" in text and "| RandAugment(2, 9) |" in text
    assert "fast P1 A recipe reaches the seed's best val acc in <= 0.5x the seed's wall time (digits)" in text
    data = json.loads(out.with_suffix(".json").read_text())["p1_fast"]
    assert set(data["datasets"]) == {"digits", "demo"}
    for d in data["datasets"].values():
        assert len(d["pairs"]) == 1 and d["raw"]["seed"][0]["epochs_run"] == 2
        assert [r["epoch"] for r in d["raw"]["fast"][0]["epochs"]] == [1, 2]  # the first repeat keeps its curve
    assert data["compile"]["p1_seed_a"]["speedup"]["n"] >= 1
    assert "wrote" in proc.stdout
