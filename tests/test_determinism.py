"""Determinism on CPU: the same seed gives identical metrics and weights twice (P1 and BYOL), another
seed does not; `trainer.deterministic=true` runs and is recorded; meta.json says which seeding mode
ran and with which library versions.

"Identical" means bit for bit, for the same seed, config, library versions and number of CPU threads
(the thread count changes how reductions are split, hence the last bits: every run here uses one).
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from dlcv.cli import main as cli_main

pytestmark = pytest.mark.slow

TIMING = {"epoch_time_s", "data_time_s", "images_per_s", "knn/time_s"}
P1 = ["configs/demo/p1_seed_a.yaml", "trainer.epochs=2", "features.enabled=false", "trainer.progress=false",
      "data.batch_size=64"]
BYOL = ["configs/demo/p2_byol.yaml", "trainer.epochs=1", "data.batch_size=8", "data.limit=24",
        "model.hidden_dim=64", "model.proj_dim=32", "byol.knn_max_bank=64", "trainer.progress=false"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread (see tests/test_resume_all_jobs.py: fast on a busy 2-core machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _run(args: list[str], root: Path, run_dir: Path, *extra: str) -> Path:
    assert cli_main(["train", *args, f"data.root={root}", f"run.dir={run_dir}", *extra]) == 0
    return next(p for p in run_dir.iterdir() if (p / "meta.json").is_file())


def _metrics(run: Path) -> list[dict]:
    with open(run / "epochs.csv", newline="") as fh:
        return [{k: v for k, v in r.items() if k not in TIMING} for r in csv.DictReader(fh)]


def _weights(run: Path) -> dict:
    return torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]


def _same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def p1_runs(demo_root, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("determinism_p1")
    return {name: _run(P1, demo_root, tmp / name, *extra) for name, extra in
            [("a", ()), ("b", ()), ("seed1", ("run.seed=1",))]}


def test_p1_same_seed_twice_is_identical(p1_runs):
    a, b = p1_runs["a"], p1_runs["b"]
    assert _metrics(a) == _metrics(b) and len(_metrics(a)) == 2
    assert _same_weights(_weights(a), _weights(b))
    val_acc = [json.loads((r / "summary.json").read_text())["val_acc"] for r in (a, b)]
    assert val_acc[0] == val_acc[1]
    # the seed matters: another seed is another run (initialisation, order, dropout)
    assert not _same_weights(_weights(a), _weights(p1_runs["seed1"]))
    assert _metrics(a) != _metrics(p1_runs["seed1"])


def test_byol_same_seed_twice_is_identical(demo_root, tmp_path):
    """BYOL draws the most randomness of any job: per-sample crops, colours, blur, solarize of two views."""
    a, b = (_run(BYOL, demo_root, tmp_path / name) for name in ("a", "b"))
    assert _metrics(a) == _metrics(b) and [r["epoch"] for r in _metrics(a)] == ["0", "1"]
    assert _same_weights(_weights(a), _weights(b))
    backbones = [torch.load(r / "backbone.pt", weights_only=True) for r in (a, b)]
    assert _same_weights(*backbones)


def test_meta_json_records_seeding_mode_and_versions(p1_runs):
    import lightning
    import numpy
    import PIL
    import torchmetrics
    import torchvision

    meta = json.loads((p1_runs["a"] / "meta.json").read_text())
    assert meta["seeding"] == "seeded" and meta["deterministic_algorithms"] is False and meta["seed"] == 0
    assert json.loads((p1_runs["seed1"] / "meta.json").read_text())["seed"] == 1
    assert meta["torch"] == torch.__version__ and meta["torchvision"] == torchvision.__version__
    assert meta["lightning"] == lightning.__version__ and meta["torchmetrics"] == torchmetrics.__version__
    assert meta["numpy"] == numpy.__version__ and meta["pillow"] == PIL.__version__ and meta["python"]
    assert meta["data_kind"] == "demo" and "train" in meta["command"]


def test_deterministic_algorithms_mode_runs_and_is_recorded(demo_root, p1_runs, tmp_path):
    before = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    try:
        runs = [_run(P1, demo_root, tmp_path / name, "trainer.deterministic=true") for name in ("a", "b")]
        # on for the run, warn-only: an op without a deterministic kernel (several CUDA backward
        # kernels of ResNets and DeepLab) warns instead of stopping the run
        assert torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()
        # a later run without the flag switches them off again (per run, not sticky in this process)
        _run(P1, demo_root, tmp_path / "c", "trainer.epochs=1")
        assert not torch.are_deterministic_algorithms_enabled()
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
    meta = json.loads((runs[0] / "meta.json").read_text())
    assert meta["seeding"] == "deterministic algorithms" and meta["deterministic_algorithms"] is True
    assert "deterministic: true" in (runs[0] / "config.yaml").read_text()
    assert _metrics(runs[0]) == _metrics(runs[1]) and _same_weights(_weights(runs[0]), _weights(runs[1]))
