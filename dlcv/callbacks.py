"""The engine's own Lightning callbacks: what Lightning's pieces do not do for a run folder.

  EpochLog        epochs.csv / log.txt (dlcv.runfolder), one row per epoch, rows kept in the checkpoint
  StepLoss        the training loss of every step, for the live curves of Lightning's loggers
  RunCheckpoints  last / best / epoch_XXX.ckpt: one write per epoch, hard links, finite-weights guard
  WeightEMA       Lightning's EMAWeightAveraging, with the device, warm-up and final-evaluation fixes
  SeedEachStep    torch's global RNG reseeded per step (exact resume of dropout / stochastic depth)

Order between them is Lightning's, not the list's: RunCheckpoints is a `Checkpoint`, and Lightning
runs checkpoint callbacks' epoch-end hooks after every other callback's and the LightningModule's,
so an epoch's log row (and everything logged up to then) exists before its checkpoint is written.
"""
from __future__ import annotations

import math
import os
import shutil
import time
from pathlib import Path
from typing import Optional, Sequence

import lightning.pytorch as L
import torch
from lightning.pytorch.callbacks import Checkpoint, EMAWeightAveraging
from lightning.pytorch.trainer.states import TrainerFn

from dlcv import runfolder
from dlcv.errors import NonFiniteLossError
from dlcv.seeding import derive_seed


def milestone_epochs(epochs: int, chosen: Sequence[int] = ()) -> list[int]:
    """1-based epochs for "first, middle, last" (e.g. 100 -> 1, 50, 100), or the chosen ones."""
    if chosen:
        return sorted({e for e in chosen if 1 <= e <= epochs})
    return sorted({1, (epochs + 1) // 2, epochs})


def _scalar(v) -> float:
    return float(v.detach().cpu()) if isinstance(v, torch.Tensor) else float(v)


class EpochLog(L.Callback):
    """`epochs.csv` and `log.txt` (written by dlcv.runfolder): one row per epoch with every epoch
    metric logged up to the callbacks' `on_train_epoch_end`, the lr, the epoch time, the time spent
    waiting for data and the training images/s. The rows live in the checkpoint, so a resumed run
    rewrites exactly the log of the uninterrupted one.

    Lightning's CSVLogger cannot be this file: it writes one line per logging event (steps and
    epochs mixed), keeps no state in the checkpoint (a resumed run repeats the steps redone after a
    kill) and empties a log folder it reopens.

    A LightningModule may define `metrics_before_training() -> dict` (e.g. BYOL's kNN accuracy of
    the random-init backbone): called on rank 0 when a run starts from step 0, it becomes the
    "epoch 0" row, the reference the trained epochs are compared with, and goes to the loggers too."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.rows: list[dict] = []
        self._t_epoch = self._t_last = 0.0
        self._data_time = 0.0
        self._images = 0

    def state_dict(self):
        return {"rows": self.rows}

    def load_state_dict(self, state):
        self.rows = list(state.get("rows", []))

    def on_train_start(self, trainer, pl_module):
        if trainer.global_step > 0 or not trainer.is_global_zero:
            return  # a resumed run has its epoch-0 row in the checkpoint
        before = getattr(pl_module, "metrics_before_training", dict)()
        if not before:
            return
        row = {"epoch": 0, "step": 0, **before}
        self.rows = [row]
        for logger in trainer.loggers:
            logger.log_metrics(before, step=0)
        runfolder.write_epochs(self.run_dir, self.rows)
        print(runfolder.format_epoch(row) + "   (before training, for reference)", flush=True)

    def on_train_epoch_start(self, trainer, pl_module):
        self._t_epoch = self._t_last = time.perf_counter()
        self._data_time, self._images = 0.0, 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        now = time.perf_counter()
        self._data_time += now - self._t_last  # waiting for the loader (and the host->device copy)
        self._images += len(batch[0])

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        # callbacks' batch-end hooks run before the LightningModule's, so a monitor that the module
        # runs there (BYOL's kNN) is not training time
        self._t_last = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module):
        row = {"epoch": trainer.current_epoch + 1, "step": trainer.global_step}
        for k, v in sorted(trainer.callback_metrics.items()):
            # lr-*: the LR monitor's per-group curves (40 groups under layer-wise decay) belong in
            # the live logs; this row keeps one "lr"
            if "/" in k and not k.endswith("_step") and not k.startswith("lr-"):
                row[k.removesuffix("_epoch")] = round(_scalar(v), 6)
        if trainer.optimizers:  # the largest group's: the head's under layer-wise decay, the schedule's value
            row["lr"] = max(g["lr"] for g in trainer.optimizers[0].param_groups)
        row["epoch_time_s"] = round(time.perf_counter() - self._t_epoch, 3)  # training + validation + hooks
        row["data_time_s"] = round(self._data_time, 3)
        train_time = self._t_last - self._t_epoch  # up to the end of the last training step
        row["images_per_s"] = round(self._images * trainer.world_size / max(train_time, 1e-9), 1)
        self.rows = [r for r in self.rows if r["epoch"] < row["epoch"]] + [row]
        if trainer.is_global_zero:
            runfolder.write_epochs(self.run_dir, self.rows)
            print(runfolder.format_epoch(row), flush=True)


class StepLoss(L.Callback):
    """`train/loss_step`: the loss of every training step, for the loggers' live curves (every
    `trainer.log_every_n_steps` steps), whatever the task logs per epoch."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if isinstance(loss, torch.Tensor):
            # Lightning hands back the loss divided by the accumulation count: undo it
            pl_module.log("train/loss_step", loss.detach() * trainer.accumulate_grad_batches,
                          on_step=True, on_epoch=False, batch_size=len(batch[0]))


class RunCheckpoints(Checkpoint):
    """`checkpoints/last.ckpt` every epoch, `best.ckpt` when the monitored metric improves, and
    `epoch_XXX.ckpt` at the milestone epochs; writes are atomic (AtomicCheckpointIO), weights with
    a non-finite value are never saved.

    Not Lightning's ModelCheckpoint, which writes each of these files separately (a 1.6 GB FCN32s
    checkpoint three times on a milestone epoch that improves; its save_last="link" is a symlink
    made by remove-then-create, so a kill in between leaves no last.ckpt), has no list of epochs to
    keep, and keeps absolute paths in its checkpoint state (a moved run folder forgets its best
    score on resume). Here an epoch is written once and best / milestones are hard links to it."""

    def __init__(self, run_dir: Path, epochs: Sequence[int], monitor: Optional[str], mode: str = "max"):
        self.dir = Path(run_dir) / runfolder.CHECKPOINTS
        self.epochs = set(epochs)
        self.monitor, self.mode = monitor, mode
        self.best: Optional[float] = None

    def state_dict(self):
        return {"best": self.best}

    def load_state_dict(self, state):
        self.best = state.get("best")

    def _improved(self, trainer) -> bool:
        if not self.monitor or self.monitor not in trainer.callback_metrics:
            return False
        value = _scalar(trainer.callback_metrics[self.monitor])
        if not math.isfinite(value) or (self.best is not None and
                                        (value <= self.best if self.mode == "max" else value >= self.best)):
            return False
        self.best = value
        return True

    def on_train_epoch_end(self, trainer, pl_module):
        epoch = trainer.current_epoch + 1
        _check_finite_weights(pl_module, epoch, trainer.global_step)
        improved = self._improved(trainer)  # before the save: the best value is part of the checkpoint
        last = self.dir / "last.ckpt"
        trainer.save_checkpoint(last, weights_only=False)
        # The next epoch's last.ckpt is a new file (atomic rename), so these links stay valid.
        if trainer.is_global_zero:
            if improved:
                _link(last, self.dir / "best.ckpt")
            if epoch in self.epochs:
                _link(last, self.dir / f"epoch_{epoch:03d}.ckpt")
        trainer.strategy.barrier("checkpoint-links")


def _check_finite_weights(module: torch.nn.Module, epoch: int, step: int) -> None:
    """The loss guard (Task.check_finite) sees a blow-up one step late: the last step of an epoch
    can have a finite loss and an infinite gradient. Never let such weights replace last.ckpt."""
    for name, t in list(module.named_parameters()) + list(module.named_buffers()):
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise NonFiniteLossError(
                f"non-finite weights ({name}) at the end of epoch {epoch}, step {step}; training stopped, the "
                f"last good checkpoint is kept. Lower optim.lr, enable trainer.grad_clip, or use "
                f"trainer.precision=32-true to find the cause.")


def _link(src: Path, dest: Path) -> None:
    """dest becomes the same file as src, atomically (a copy where hard links are unsupported)."""
    tmp = dest.with_name(f".{dest.name}.link")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dest)


def warmup_ema_avg_fn(decay: float):
    """AveragedModel's avg_fn for an EMA whose decay warms up: d_k = min(decay, k / (9 + k)) at the
    k-th update (k = num_averaged + 1 >= 2; the first update copies), the rule of TensorFlow's
    ExponentialMovingAverage(num_updates). A constant decay keeps decay^k of the first, barely
    trained weights after k steps (28% after 128 steps at 0.99): a short run's average is then a
    blend of an untrained and a trained network, which is no network at all (measured on the demo's
    8-epoch, 128-step fastnet run, benchmarks/ablation_demo.py: 2.6% validation accuracy with a
    constant 0.99 against 52.4% without EMA)."""
    @torch.no_grad()
    def ema_update(ema_param: torch.Tensor, current_param: torch.Tensor, num_averaged: torch.Tensor):
        k = num_averaged.to(ema_param.dtype) + 1
        d = torch.clamp(k / (9 + k), max=decay)
        return d * ema_param + (1 - d) * current_param

    return ema_update


class WeightEMA(EMAWeightAveraging):
    """An exponential moving average of the weights and buffers (Lightning's EMAWeightAveraging with
    a warm-up of the decay: e_1 = w_1, e_k = d_k * e_(k-1) + (1 - d_k) * w_k after optimizer step k,
    d_k = min(decay, k / (9 + k)), `warmup_ema_avg_fn`). Validation during
    training and every checkpoint's `state_dict` are the averaged weights (the raw ones are in
    `current_model_state`, the AveragedModel's counter in `averaging_state`), so best.ckpt and the
    model.pt exported from it are EMA weights; resume restores both. Four changes to Lightning's:
      - the decay warms up (above);
      - the average lives on the training device (Lightning's `setup` runs before the strategy
        moves the module, so its default would be the CPU: a device-to-host copy every step);
      - during the first `warmup_epochs` epochs the average just copies the weights (AveragedModel
        copies while its counter is 0); an early validation never sees the initial weights either;
      - a `trainer.validate()` after fit evaluates the weights it was given, not the average."""

    def __init__(self, decay: float, warmup_epochs: int = 0):
        super().__init__(decay=decay)  # validates decay
        self._kwargs["avg_fn"] = warmup_ema_avg_fn(decay)  # what AveragedModel is built with in setup
        self.warmup_epochs = warmup_epochs

    def setup(self, trainer, pl_module, stage):
        if self._device is None:
            self._device = trainer.strategy.root_device
        super().setup(trainer, pl_module, stage)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.current_epoch < self.warmup_epochs and self._average_model is not None:
            self._average_model.n_averaged.zero_()
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def on_validation_epoch_start(self, trainer, pl_module):
        if trainer.state.fn == TrainerFn.FITTING:
            super().on_validation_epoch_start(trainer, pl_module)

    def on_validation_epoch_end(self, trainer, pl_module):
        if trainer.state.fn == TrainerFn.FITTING:
            super().on_validation_epoch_end(trainer, pl_module)


class SeedEachStep(L.Callback):
    """Reseed torch's global RNG (dropout, stochastic depth) from (seed, step, rank) before every
    training step. Per step, not per epoch: Lightning may create the data iterator (which draws
    from the global RNG) before or after the epoch-start hooks, differently in a resumed run."""

    def __init__(self, seed: int):
        self.seed = seed

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        torch.manual_seed(derive_seed(self.seed, trainer.global_step, trainer.global_rank))
