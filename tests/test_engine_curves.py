"""Live curves: every training run writes Lightning's TensorBoard events and CSV metrics under
runs/<name>/logs/, per step and per epoch, while it trains; the engine leaves no warning filter
behind; a training-only DataModule defines no validation loader."""
from __future__ import annotations

import csv
import warnings
from pathlib import Path

import pytest
import torch

from dlcv.cli import main as cli_main

pytestmark = pytest.mark.slow

STEPS = 3
P1 = ["configs/demo/p1_seed_a.yaml", "trainer.epochs=1", "features.enabled=false", "trainer.progress=false",
      "data.batch_size=64", f"trainer.limit_train_batches={STEPS}", "trainer.log_every_n_steps=1"]


@pytest.fixture(scope="module")
def run(demo_root, tmp_path_factory) -> Path:
    from dlcv.engine import _EXPECTED_NOTICES

    runs = tmp_path_factory.mktemp("curves")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert cli_main(["train", *P1, f"data.root={demo_root}", f"run.dir={runs}", "run.name=curves"]) == 0
    finally:
        torch.set_num_threads(before)
    # the engine silences the Lightning notices it expects only while its Trainer runs
    ours = {notice["message"] for notice in _EXPECTED_NOTICES}
    assert not [f for f in warnings.filters if f[1] is not None and f[1].pattern in ours]
    return runs / "curves"


def test_tensorboard_events_hold_the_train_loss_of_every_step(run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = sorted((run / "logs" / "tensorboard").glob("events.out.tfevents.*"))
    assert events, "no TensorBoard event file under runs/<name>/logs/tensorboard"
    acc = EventAccumulator(str(run / "logs" / "tensorboard"))
    acc.Reload()
    scalars = acc.Tags()["scalars"]
    steps = [e.step for e in acc.Scalars("train/loss_step")]
    assert len(steps) == STEPS and steps == sorted(set(steps))
    assert all(torch.isfinite(torch.tensor(e.value)) for e in acc.Scalars("train/loss_step"))
    assert any(t.startswith("lr-") for t in scalars)  # LearningRateMonitor, per step
    # per epoch: the task's epoch metrics, once (the job's final evaluation is not a curve point)
    assert len(acc.Scalars("train/loss")) == 1 and len(acc.Scalars("val/acc")) == 1


def test_csv_logger_metrics_hold_the_train_loss_of_every_step(run):
    files = sorted((run / "logs" / "csv").glob("version_*/metrics.csv"))
    assert len(files) == 1
    with open(files[0], newline="") as fh:
        rows = list(csv.DictReader(fh))
    losses = [(int(r["step"]), float(r["train/loss_step"])) for r in rows if r.get("train/loss_step")]
    assert len(losses) == STEPS and [s for s, _ in losses] == sorted({s for s, _ in losses})
    assert sum(1 for r in rows if r.get("val/acc")) == 1


def test_epochs_csv_is_still_one_row_per_epoch(run):
    from dlcv import runfolder

    rows = runfolder.read_epochs(run)
    assert [r["epoch"] for r in rows] == [1] and "train/loss" in rows[0] and "train/loss_step" not in rows[0]


def test_a_training_only_datamodule_has_no_validation_loader():
    import lightning.pytorch as L
    from lightning.pytorch.utilities.model_helpers import is_overridden

    from dlcv.data.sets import BatchDataset
    from dlcv.engine import ArrayDataModule

    data = BatchDataset(torch.zeros(4, 3, 8, 8, dtype=torch.uint8).numpy(), torch.zeros(4).long().numpy())
    train_only = ArrayDataModule(data, None, batch_size=2)
    assert is_overridden("train_dataloader", train_only, L.LightningDataModule)
    assert not is_overridden("val_dataloader", train_only, L.LightningDataModule)
    both = ArrayDataModule(data, data, batch_size=2)
    assert is_overridden("val_dataloader", both, L.LightningDataModule)
