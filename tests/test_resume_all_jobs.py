"""Kill and resume for BYOL and segmentation (P1's timing-based SIGKILL test is in test_reliability.py),
a kill DURING a checkpoint write, safe loading of every file a run writes, refusal of arbitrary pickle
at every entry point that loads a file, readable reports for foreign state dicts, and the non-finite
stop (exit 3, last good checkpoint kept) for BYOL and segmentation.

How the kill is made exact: the training subprocess runs `dlcv train` through KILL_DRIVER, which
SIGKILLs its own process at the start of a chosen training step (in the middle of epoch 2), or dies
with os._exit halfway through writing a checkpoint. The uninterrupted reference run and the resume
run are `dlcv.cli.main` calls in this process (the same code path without an interpreter start).
"""
from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dlcv.cli import main as cli_main
from tests.helpers import REPO

pytestmark = pytest.mark.slow

# `python -c KILL_DRIVER <dlcv arguments>`: `dlcv` with one of two deaths, chosen by environment:
#   DLCV_TEST_KILL_AT_STEP=k  SIGKILL this process when training step k (0-based, global) starts
#   DLCV_TEST_DIE_IN_SAVE=n   the n-th checkpoint write stops halfway through its temp file: os._exit
KILL_DRIVER = r"""
import io, os, signal, sys
import torch
from dlcv.callbacks import SeedEachStep

kill_at = int(os.environ.get("DLCV_TEST_KILL_AT_STEP", "-1"))
_start = SeedEachStep.on_train_batch_start

def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
    if trainer.global_step == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
    return _start(self, trainer, pl_module, batch, batch_idx)

SeedEachStep.on_train_batch_start = on_train_batch_start

die_in_save = int(os.environ.get("DLCV_TEST_DIE_IN_SAVE", "0"))
_save, _saves = torch.save, [0]

def save(obj, f, *args, **kwargs):
    if isinstance(f, (str, os.PathLike)) and ".last.ckpt." in os.fspath(f):
        _saves[0] += 1
        if _saves[0] == die_in_save:
            buf = io.BytesIO()
            _save(obj, buf, *args, **kwargs)
            data = buf.getvalue()
            with open(f, "wb") as fh:
                fh.write(data[: len(data) // 2])
            os._exit(9)
    return _save(obj, f, *args, **kwargs)

torch.save = save
from dlcv.cli import main
sys.exit(main(sys.argv[1:]))
"""

@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread here and in the subprocesses (OMP_NUM_THREADS): on a 2-core machine that
    also runs other work, two spinning OpenMP threads make small convolutions 10-20x slower. (The
    thread count is part of what makes a CPU run exact: the reference, killed and resumed runs
    all use the same one.)"""
    before, env = torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS")
    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"
    yield
    torch.set_num_threads(before)
    if env is None:
        os.environ.pop("OMP_NUM_THREADS", None)
    else:
        os.environ["OMP_NUM_THREADS"] = env


# columns that measure time, not training: the only ones a resumed run may differ in
TIMING = {"epoch_time_s", "data_time_s", "images_per_s", "knn/time_s"}


def _driver(args, **env) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **{k: str(v) for k, v in env.items()}}
    return subprocess.run([sys.executable, "-c", KILL_DRIVER, *args], cwd=REPO, env=full_env,
                          capture_output=True, text=True, timeout=600)


def _train(*args) -> None:
    assert cli_main(["train", *args]) == 0


def _rows(run: Path) -> list[dict]:
    with open(run / "epochs.csv", newline="") as fh:
        return [{k: v for k, v in r.items() if k not in TIMING} for r in csv.DictReader(fh)]


def _log_lines(run: Path) -> list[str]:
    return [" | ".join(p for p in line.split(" | ") if p.split(" ")[0] not in TIMING)
            for line in (run / "log.txt").read_text().splitlines()]


def assert_same(a, b, where: str = "checkpoint") -> None:
    """Exact equality of two checkpoint trees (tensors bit for bit), timing entries excluded."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape, where
        assert torch.equal(a, b), f"{where} differs"
    elif isinstance(a, dict):
        keys_a, keys_b = set(a) - TIMING, set(b) - TIMING
        assert keys_a == keys_b, f"{where}: keys {sorted(keys_a ^ keys_b)}"
        for k in sorted(keys_a, key=str):
            assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"{where}: length {len(a)} vs {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and math.isnan(a):
        assert isinstance(b, float) and math.isnan(b), where
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def _kill_resume(tmp: Path, name: str, args: list[str], kill_at: int) -> dict:
    """Uninterrupted run, a run SIGKILLed when step `kill_at` starts, its resume; both run folders."""
    _train(*args, f"run.dir={tmp / 'full'}")
    killed = _driver(["train", *args, f"run.dir={tmp / 'killed'}"], DLCV_TEST_KILL_AT_STEP=kill_at)
    run = tmp / "killed" / name
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    at_kill = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    log_at_kill = (run / "log.txt").read_text()
    _train(*args, f"run.dir={tmp / 'killed'}", "--resume")
    return {"full": tmp / "full" / name, "resumed": run, "at_kill": at_kill, "log_at_kill": log_at_kill}


def _check_exact(runs: dict) -> None:
    full = torch.load(runs["full"] / "checkpoints" / "last.ckpt", weights_only=True)
    resumed = torch.load(runs["resumed"] / "checkpoints" / "last.ckpt", weights_only=True)
    # weights incl. BN buffers and (BYOL) the EMA target network, optimizer moments, LR scheduler,
    # epoch/step counters and loop progress, and the callbacks' state (log rows, best value)
    for key in ("state_dict", "optimizer_states", "lr_schedulers", "epoch", "global_step", "loops", "callbacks"):
        assert_same(full[key], resumed[key], key)
    assert _rows(runs["full"]) == _rows(runs["resumed"])
    assert _log_lines(runs["full"]) == _log_lines(runs["resumed"])


# ------------------------------------------------------------------------------------ BYOL
BYOL_ARGS = ["configs/demo/p2_byol.yaml", "trainer.epochs=2", "data.batch_size=8", "data.limit=32",
             "model.hidden_dim=64", "model.proj_dim=32", "byol.knn_max_bank=64", "trainer.progress=false"]


@pytest.fixture(scope="module")
def byol_runs(demo_root, tmp_path_factory):
    # 32 images / batch 8 = 4 steps per epoch: step 6 is the middle of epoch 2
    return _kill_resume(tmp_path_factory.mktemp("byol"), "p2_byol", [*BYOL_ARGS, f"data.root={demo_root}"], 6)


def test_byol_sigkill_mid_epoch_then_resume_is_exact(byol_runs):
    at_kill = byol_runs["at_kill"]
    assert at_kill["epoch"] == 0 and at_kill["global_step"] == 4  # killed in epoch 2, after epoch 1's save
    assert "epoch 2 " not in byol_runs["log_at_kill"] and "epoch 1 " in byol_runs["log_at_kill"]
    _check_exact(byol_runs)
    sd = torch.load(byol_runs["full"] / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert any(k.startswith("byol.target_") for k in sd)  # the EMA target is in the checkpoint
    for name in ("backbone.pt",):
        assert_same(torch.load(byol_runs["full"] / name, weights_only=True),
                    torch.load(byol_runs["resumed"] / name, weights_only=True), name)
    assert [r["epoch"] for r in _rows(byol_runs["resumed"])] == ["0", "1", "2"]  # epoch-0 kNN row kept


# ------------------------------------------------------------------------------------ segmentation
SEG_ARGS = ["configs/demo/p3_b_deeplabv3.yaml", "trainer.epochs=2", "data.batch_size=2", "data.crop=64",
            "trainer.limit_train_batches=3", "masks.ids=['0001','0004']", "trainer.progress=false",
            "optim.name=sgd", "optim.momentum=0.9", "optim.lr=0.01"]


@pytest.fixture(scope="module")
def seg_runs(demo_root, tmp_path_factory):
    # DeepLabv3-ResNet50 at 64 px, batch 2, 3 steps per epoch (SGD with momentum: optimizer state,
    # without Adam's second moment, which would make each checkpoint 1.5x bigger): step 4 is mid-epoch 2
    return _kill_resume(tmp_path_factory.mktemp("seg"), "p3_b_deeplabv3", [*SEG_ARGS, f"data.root={demo_root}"], 4)


def test_segmentation_sigkill_mid_epoch_then_resume_is_exact(seg_runs):
    at_kill = seg_runs["at_kill"]
    assert at_kill["epoch"] == 0 and at_kill["global_step"] == 3
    assert at_kill["optimizer_states"][0]["state"], "the momentum buffers are in the checkpoint"
    _check_exact(seg_runs)
    assert_same(torch.load(seg_runs["full"] / "model.pt", weights_only=True)["state_dict"],
                torch.load(seg_runs["resumed"] / "model.pt", weights_only=True)["state_dict"], "model.pt")
    full, resumed = (json.loads((seg_runs[r] / "eval" / "metrics.json").read_text()) for r in ("full", "resumed"))
    assert full["confusion"] == resumed["confusion"]
    for epoch in ("epoch_001", "epoch_002"):  # masks over epochs: the same pictures
        for f in sorted((seg_runs["full"] / "masks" / epoch).glob("*.png")):
            assert f.read_bytes() == (seg_runs["resumed"] / "masks" / epoch / f.name).read_bytes(), f


# ------------------------------------------------------------------------------------ kill during a save
P1_ARGS = ["configs/demo/p1_seed_a.yaml", "trainer.epochs=2", "features.enabled=false", "trainer.progress=false",
           "data.batch_size=64"]


@pytest.fixture(scope="module")
def p1_run(demo_root, tmp_path_factory):
    """A P1 run whose process died halfway through writing epoch 2's last.ckpt, then resumed."""
    tmp = tmp_path_factory.mktemp("p1")
    args = [*P1_ARGS, f"data.root={demo_root}", f"run.dir={tmp}"]
    proc = _driver(["train", *args], DLCV_TEST_DIE_IN_SAVE=2)
    run = tmp / "p1_seed_a"
    return {"proc": proc, "run": run, "args": args,
            "leftovers": sorted(p.name for p in (run / "checkpoints").glob(".*.tmp"))}


def test_kill_during_save_checkpoint_keeps_the_previous_last_ckpt(p1_run):
    proc, run = p1_run["proc"], p1_run["run"]
    assert proc.returncode == 9, proc.stderr[-3000:]
    # the half-written file is a temp file; last.ckpt is still epoch 1's, complete and loadable
    assert len(p1_run["leftovers"]) == 1 and p1_run["leftovers"][0].startswith(".last.ckpt.")
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["epoch"] == 0 and "state_dict" in last
    # the resumed run cleans the leftover up and finishes
    _train(*p1_run["args"], "--resume")
    assert not list((run / "checkpoints").glob(".*.tmp"))
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 1
    assert [r["epoch"] for r in _rows(run)] == ["1", "2"]


# ------------------------------------------------------------------------------------ P1 with weight EMA
P1_EMA_ARGS = ["configs/demo/p1_seed_a.yaml", "trainer.epochs=3", "features.enabled=false", "trainer.progress=false",
               "data.batch_size=64", "trainer.limit_train_batches=4", "trainer.ema_decay=0.9",
               "trainer.ema_warmup_epochs=1"]


@pytest.fixture(scope="module")
def p1_ema_runs(demo_root, tmp_path_factory):
    # 4 steps per epoch, the EMA from epoch 2 on: step 10 is the middle of epoch 3, resumed from epoch
    # 2's checkpoint, whose average is a real EMA (not the warm-up's copy of the weights)
    return _kill_resume(tmp_path_factory.mktemp("p1_ema"), "p1_seed_a", [*P1_EMA_ARGS, f"data.root={demo_root}"], 10)


def test_p1_with_weight_ema_sigkill_mid_epoch_then_resume_is_exact(p1_ema_runs):
    at_kill = p1_ema_runs["at_kill"]
    assert at_kill["epoch"] == 1 and at_kill["global_step"] == 8
    _check_exact(p1_ema_runs)  # state_dict (the EMA), optimizer, schedule, callbacks (EMA step counter), log
    full, resumed = (torch.load(p1_ema_runs[r] / "checkpoints" / "last.ckpt", weights_only=True)
                     for r in ("full", "resumed"))
    for key in ("current_model_state", "averaging_state"):  # the raw weights, the AveragedModel's counter
        assert_same(full[key], resumed[key], key)
    assert int(full["averaging_state"]["n_averaged"]) == 12 - 4 + 1  # copies in epoch 1, then one per step
    raw = full["current_model_state"]
    assert any(not torch.equal(v, raw[k]) for k, v in full["state_dict"].items() if v.is_floating_point())
    # model.pt holds best.ckpt's state_dict: the EMA weights that were validated; the same in both runs
    for run in ("full", "resumed"):
        best = torch.load(p1_ema_runs[run] / "checkpoints" / "best.ckpt", weights_only=True)
        assert_same(torch.load(p1_ema_runs[run] / "model.pt", weights_only=True)["state_dict"], best["state_dict"],
                    f"{run} model.pt")
    assert_same(torch.load(p1_ema_runs["full"] / "model.pt", weights_only=True)["state_dict"],
                torch.load(p1_ema_runs["resumed"] / "model.pt", weights_only=True)["state_dict"], "model.pt")


# ------------------------------------------------------------------------------------ safe loading
def test_every_file_a_run_writes_loads_with_weights_only(byol_runs, seg_runs, p1_run):
    if not (p1_run["run"] / "model.pt").exists():
        _train(*p1_run["args"], "--resume")
    files = []
    for run in (byol_runs["resumed"], seg_runs["resumed"], p1_run["run"]):
        files += sorted((run / "checkpoints").glob("*.ckpt")) + [p for p in (run / "model.pt", run / "backbone.pt")
                                                                 if p.exists()]
    names = {(f.parent.parent.name if f.parent.name == "checkpoints" else f.parent.name, f.name) for f in files}
    for expected in [("p2_byol", "last.ckpt"), ("p2_byol", "backbone.pt"), ("p3_b_deeplabv3", "last.ckpt"),
                     ("p3_b_deeplabv3", "best.ckpt"), ("p3_b_deeplabv3", "model.pt"), ("p1_seed_a", "last.ckpt"),
                     ("p1_seed_a", "best.ckpt"), ("p1_seed_a", "model.pt"), ("p1_seed_a", "epoch_001.ckpt")]:
        assert expected in names, expected
    for f in files:
        torch.load(f, map_location="cpu", weights_only=True)  # raises on anything but plain data


class _Evil:
    """Unpickling this would create a folder (an arbitrary call): a safe loader must refuse it."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def _evil_file(path: Path, marker: Path, config: dict) -> Path:
    torch.save({"config": config, "state_dict": {}, "payload": _Evil(marker)}, path)
    return path


def test_arbitrary_pickle_is_refused_by_every_entry_point(demo_root, p1_run, tmp_path, capsys, monkeypatch):
    marker = tmp_path / "pickle_code_ran"
    evil = _evil_file(tmp_path / "evil.pt", marker, {"task": "classify", "dataset": "p1"})

    def refused(argv, code=2):
        assert cli_main(argv) == code
        err = capsys.readouterr().err
        assert "arbitrary pickle" in err and "refused" in err, err
        assert not marker.exists()
        return err

    refused(["evaluate", str(evil)])
    refused(["predict", "p1", str(evil), str(demo_root / "p1_data" / "test"), str(tmp_path / "p1.csv")])
    office = demo_root / "p2_data" / "office"
    refused(["predict", "p2", str(evil), str(office / "test.csv"), str(office / "test"), str(tmp_path / "p2.csv")])
    refused(["predict", "p3", str(evil), str(demo_root / "p3_data" / "test"), str(tmp_path / "p3")])
    # --resume: a last.ckpt that needs pickle code
    run = tmp_path / "runs" / "p1_seed_a"
    (run / "checkpoints").mkdir(parents=True)
    _evil_file(run / "checkpoints" / "last.ckpt", marker, {})
    refused(["train", *P1_ARGS, f"data.root={demo_root}", f"run.dir={tmp_path / 'runs'}", "--resume"])
    # model.pretrained=<file>: fine-tuning from it
    refused(["train", "configs/demo/p2_finetune.yaml", f"data.root={demo_root}", f"run.dir={tmp_path / 'runs'}",
             f"model.pretrained={evil}", "trainer.epochs=1", "trainer.progress=false"])
    refused(["train", *SEG_ARGS, f"data.root={demo_root}", f"run.dir={tmp_path / 'runs'}", f"model.pretrained={evil}"])
    # hw1_download_ckpt.sh (fetch-checkpoints) checks what it fetched before putting it in place
    monkeypatch.setenv("DLCV_P1_URL", str(evil))
    monkeypatch.setenv("DLCV_P1_CKPT", str(tmp_path / "fetched" / "p1_model.pt"))
    refused(["fetch-checkpoints", "p1"], code=1)
    assert not (tmp_path / "fetched" / "p1_model.pt").exists()


def test_foreign_state_dicts_get_a_readable_report(demo_root, p1_run, byol_runs, tmp_path, capsys):
    import torchvision

    from dlcv.io import export_model, load_model_file

    # a torchvision resnet50 state dict (the format of pretrain_model_SL.pt) ...
    sl = tmp_path / "pretrain_model_SL.pt"
    torch.save(torchvision.models.resnet50(weights=None).state_dict(), sl)
    # ... given to a resnet18 fine-tuning: missing / unexpected / wrong shape, in a few lines
    assert cli_main(["train", "configs/demo/p2_finetune.yaml", f"data.root={demo_root}", f"run.dir={tmp_path}",
                     f"model.pretrained={sl}", "trainer.epochs=1", "trainer.progress=false"]) == 2
    err = capsys.readouterr().err
    assert str(sl) in err and "does not fit" in err and ("unexpected" in err or "wrong shape" in err)
    assert len(err) < 3000 and err.count("\n") < 12
    # ... given to `dlcv evaluate`: not a dlcv checkpoint (no config inside)
    assert cli_main(["evaluate", str(sl)]) == 2
    assert "not a dlcv checkpoint" in capsys.readouterr().err
    # a BYOL checkpoint is a dlcv checkpoint, but of a run with nothing to evaluate
    assert cli_main(["evaluate", str(byol_runs["full"] / "checkpoints" / "last.ckpt")]) == 2
    assert "'byol' run has no evaluation" in capsys.readouterr().err
    # a model.pt whose weights are another architecture than its config says
    model = p1_run["run"] / "model.pt"
    if not model.exists():
        _train(*p1_run["args"], "--resume")
    config, _ = load_model_file(model)
    wrong = export_model(tmp_path / "wrong", config, torchvision.models.resnet18(weights=None).state_dict())
    assert cli_main(["predict", "p1", str(wrong), str(demo_root / "p1_data" / "test"), str(tmp_path / "p.csv")]) == 2
    err = capsys.readouterr().err
    assert str(wrong) in err and "missing" in err and "unexpected" in err and err.count("\n") < 12
    assert cli_main(["evaluate", str(wrong)]) == 2
    assert "missing" in capsys.readouterr().err
    # a P1 model given to hw1_2.sh (P2): refused by kind, never 50-class labels for Office images
    office = demo_root / "p2_data" / "office"
    assert cli_main(["predict", "p2", str(model), str(office / "test.csv"), str(office / "test"),
                     str(tmp_path / "p2.csv")]) == 2
    assert "needs a classifier trained on 'office'" in capsys.readouterr().err
    assert not (tmp_path / "p2.csv").exists()


# ------------------------------------------------------------------------------------ non-finite loss
def _nan_after(monkeypatch, target, attr: str, calls: int, key=None):
    """Make target.attr's loss NaN from its (calls + 1)-th call in training on (a stand-in for a
    blow-up; validation calls, without autograd, are neither counted nor changed)."""
    original = getattr(target, attr)
    count = [0]

    def patched(*args, **kwargs):
        out = original(*args, **kwargs)
        if not torch.is_grad_enabled():
            return out
        count[0] += 1
        if count[0] > calls:
            if key is None:
                return out * float("nan")
            out = dict(out)
            out[key] = out[key] * float("nan")
        return out

    monkeypatch.setattr(target, attr, patched)


def _check_stopped(run: Path, err: str, step: int, exported: str) -> None:
    assert "non-finite loss" in err and f"step {step}" in err and "last good checkpoint is kept" in err, err
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["epoch"] == 0 and last["global_step"] == step  # epoch 1's checkpoint, untouched
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values() if v.is_floating_point())
    assert not (run / exported).exists()


def test_byol_non_finite_loss_stops_with_exit_3(demo_root, tmp_path, capsys, monkeypatch):
    from dlcv.models.byol import BYOL

    _nan_after(monkeypatch, BYOL, "forward", 4, key="loss")  # epoch 1 = 4 steps, then NaN at step 4
    code = cli_main(["train", *BYOL_ARGS, f"data.root={demo_root}", f"run.dir={tmp_path}", "byol.knn_every=0"])
    assert code == 3
    _check_stopped(tmp_path / "p2_byol", capsys.readouterr().err, 4, "backbone.pt")


def test_segmentation_non_finite_loss_stops_with_exit_3(demo_root, tmp_path, capsys, monkeypatch):
    import dlcv.tasks.segmentation as seg

    _nan_after(monkeypatch, seg, "segmentation_loss", 3 * 2)  # 3 steps x (main + aux loss) = epoch 1
    code = cli_main(["train", *SEG_ARGS, f"data.root={demo_root}", f"run.dir={tmp_path}", "masks.enabled=false"])
    assert code == 3
    _check_stopped(tmp_path / "p3_b_deeplabv3", capsys.readouterr().err, 3, "model.pt")


@pytest.mark.filterwarnings("ignore:Encountered `nan` values")  # the point of the test
def test_non_finite_weights_at_an_epoch_end_never_replace_last_ckpt(demo_root, tmp_path, capsys, monkeypatch):
    """A finite loss with an infinite gradient on an epoch's last step: the loss guard cannot see it
    before the checkpoint; the checkpoint callback refuses to save such weights."""
    from dlcv.callbacks import SeedEachStep

    def poison(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.current_epoch == 1 and batch_idx + 1 == trainer.num_training_batches:
            with torch.no_grad():
                next(pl_module.parameters()).add_(float("inf"))

    monkeypatch.setattr(SeedEachStep, "on_train_batch_end", poison, raising=False)
    code = cli_main(["train", *P1_ARGS, f"data.root={demo_root}", f"run.dir={tmp_path}"])
    assert code == 3
    err = capsys.readouterr().err
    assert "non-finite weights" in err and "end of epoch 2" in err
    last = torch.load(tmp_path / "p1_seed_a" / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["epoch"] == 0
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values() if v.is_floating_point())
