"""BYOL learns: its own objective, measured on held-out images against the same backbone at random
init (the kNN half of the proof, minutes of CPU, is `dlcv bench --jobs byol_learns`), and the bench
section's code path at --quick size."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from dlcv.bench.byol_learns import QUICK, SETUPS, probe_data, run_probe
from tests.helpers import run_dlcv


def test_probe_data_is_labelled_identities_and_a_held_out_set():
    s = dataclasses.replace(SETUPS["no_blur"], **QUICK)
    d = probe_data(s)
    assert d.pool.shape == (s.pool, 3, s.source_size, s.source_size) and d.pool.dtype == np.uint8
    assert d.bank.shape[0] == s.bank_per_class * d.num_classes and d.bank.shape[2:] == (s.view_size, s.view_size)
    assert sorted(set(d.query_labels.tolist())) == list(range(d.num_classes))
    assert not any((d.held_out[:, None] == d.pool[None, :16]).all(axis=(2, 3, 4)).ravel())  # other images


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_byol_learns_to_match_views_of_images_it_never_saw():
    """Crops and flips only (the fastest setup, under a minute): after 100 steps, a held-out image's first
    view finds its own second view among 256 far more often than at random init (measured: 53.5% ->
    75.4%). A BYOL whose target never moved, whose predictor was missing or whose stop-gradient leaked
    would stay at or below the start."""
    result = run_probe(dataclasses.replace(SETUPS["crop_flip"], steps=100, evals=1))
    start, end = result["curve"][0], result["curve"][-1]
    assert end["step"] == 100 and np.isfinite(end["loss"])
    assert end["retrieval"] >= start["retrieval"] + 0.10, result["curve"]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_bench_byol_learns_quick_writes_its_section(tmp_path):
    out = tmp_path / "RESULTS.md"
    run_dlcv("bench", "--quick", "--jobs", "byol-learns", "--out", str(out), "--max-wait", "0", "--threads", "1",
             timeout=600)
    text = out.read_text()
    assert "## P2: does BYOL learn? (minutes of CPU)" in text and all(f"**{n}**" in text for n in SETUPS)
    data = json.loads(out.with_suffix(".json").read_text())["byol_learns"]
    assert [row["step"] for row in data["no_blur"]["curve"]] == [0, QUICK["steps"]]
    assert (tmp_path / "byol_learns.png").stat().st_size > 0


def test_demo_stage_writes_the_probe_into_the_byol_run_and_reuses_it(tmp_path, monkeypatch, capsys):
    import dlcv.bench.byol_learns as probe
    from dlcv.demo import stages_p2
    from dlcv.runfolder import BYOL_LEARNS, BYOL_LEARNS_PNG

    quick = dataclasses.replace(SETUPS[stages_p2.BYOL_LEARNS_SETUP], **QUICK)
    monkeypatch.setitem(probe.SETUPS, stages_p2.BYOL_LEARNS_SETUP, quick)
    first = stages_p2.byol_learns(tmp_path, fresh=False)
    run = tmp_path / "p2_byol"
    assert (run / BYOL_LEARNS).is_file() and (run / BYOL_LEARNS_PNG).stat().st_size > 0
    assert first["steps"] == QUICK["steps"] and 0 <= first["knn_after"] <= 1
    assert stages_p2.byol_learns(tmp_path, fresh=False) == first and "reusing" in capsys.readouterr().out
    monkeypatch.setitem(probe.SETUPS, stages_p2.BYOL_LEARNS_SETUP, dataclasses.replace(quick, steps=2))
    assert stages_p2.byol_learns(tmp_path, fresh=False)["steps"] == 2  # another setup: run again
