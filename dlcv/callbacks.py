"""Lightning callbacks shared by every job: the per-epoch log, checkpoints, seeding, timing."""
from __future__ import annotations

import csv
import io
import math
import os
import shutil
import time
from pathlib import Path
from typing import Optional, Sequence

import lightning.pytorch as L
import torch

from dlcv.errors import NonFiniteLossError
from dlcv.io import write_text
from dlcv.seeding import derive_seed


def milestone_epochs(epochs: int, chosen: Sequence[int] = ()) -> list[int]:
    """1-based epochs for "first, middle, last" (e.g. 100 -> 1, 50, 100), or the chosen ones."""
    if chosen:
        return sorted({e for e in chosen if 1 <= e <= epochs})
    return sorted({1, (epochs + 1) // 2, epochs})


def _scalar(v) -> float:
    return float(v.detach().cpu()) if isinstance(v, torch.Tensor) else float(v)


class EpochLog(L.Callback):
    """`epochs.csv` (one row per epoch: every logged epoch metric, lr, epoch/data time, img/s) and
    `log.txt` (the same as one readable line). The rows live in the checkpoint too, so a resumed
    run rewrites exactly the log of the uninterrupted one."""

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

    def add_row(self, row: dict) -> None:
        """A row from elsewhere (e.g. BYOL's epoch-0 reference), replacing one of the same epoch."""
        self.rows = sorted([r for r in self.rows if r["epoch"] != row["epoch"]] + [row], key=lambda r: r["epoch"])

    def on_train_epoch_start(self, trainer, pl_module):
        self._t_epoch = self._t_last = time.perf_counter()
        self._data_time, self._images = 0.0, 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        now = time.perf_counter()
        self._data_time += now - self._t_last  # waiting for the loader (and the host->device copy)
        self._images += len(batch[0])

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self._t_last = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.sanity_checking:
            return
        elapsed = time.perf_counter() - self._t_epoch
        row = {"epoch": trainer.current_epoch + 1, "step": trainer.global_step}
        for k, v in sorted(trainer.callback_metrics.items()):
            if "/" in k and not k.endswith("_step"):
                row[k.removesuffix("_epoch")] = round(_scalar(v), 6)
        opt = trainer.optimizers[0] if trainer.optimizers else None
        if opt is not None:
            row["lr"] = opt.param_groups[0]["lr"]
        row["epoch_time_s"] = round(elapsed, 3)  # training + validation + end-of-epoch hooks
        row["data_time_s"] = round(self._data_time, 3)
        train_time = self._t_last - self._t_epoch  # up to the end of the last training step
        row["images_per_s"] = round(self._images * trainer.world_size / max(train_time, 1e-9), 1)
        self.rows = [r for r in self.rows if r["epoch"] < row["epoch"]] + [row]
        if trainer.is_global_zero:
            self._write()
            print(self.format(row), flush=True)

    @staticmethod
    def format(row: dict) -> str:
        parts = [f"epoch {row['epoch']}"]
        for k, v in row.items():
            if k in ("epoch", "step"):
                continue
            parts.append(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}")
        return " | ".join(parts)

    def _write(self):
        columns: list[str] = []
        for r in self.rows:
            columns += [k for k in r if k not in columns]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        write_text(self.run_dir / "epochs.csv", buf.getvalue())
        write_text(self.run_dir / "log.txt", "".join(self.format(r) + "\n" for r in self.rows))


class RunCheckpoints(L.Callback):
    """`checkpoints/last.ckpt` every epoch, `best.ckpt` when the monitored metric improves, and
    `epoch_XXX.ckpt` at the milestone epochs. All writes are atomic (see AtomicCheckpointIO)."""

    def __init__(self, run_dir: Path, epochs: Sequence[int], monitor: Optional[str], mode: str = "max"):
        self.dir = Path(run_dir) / "checkpoints"
        self.epochs = set(epochs)
        self.monitor, self.mode = monitor, mode
        self.best: Optional[float] = None

    def state_dict(self):
        return {"best": self.best}

    def load_state_dict(self, state):
        self.best = state.get("best")

    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.sanity_checking:
            return
        epoch = trainer.current_epoch + 1
        _check_finite_weights(pl_module, epoch, trainer.global_step)
        improved = False
        if self.monitor and self.monitor in trainer.callback_metrics:
            value = _scalar(trainer.callback_metrics[self.monitor])
            if math.isfinite(value) and (self.best is None or
                                         (value > self.best if self.mode == "max" else value < self.best)):
                self.best, improved = value, True
        # the state above is saved inside these checkpoints, so save after updating it
        last = self.dir / "last.ckpt"
        trainer.save_checkpoint(last, weights_only=False)
        # best / milestone copies of the same epoch are hard links: a 1.6 GB FCN32s checkpoint is
        # written once. The next epoch's last.ckpt is a new file (atomic rename), so links stay valid.
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


class SeedEachStep(L.Callback):
    """Reseed torch's global RNG (dropout, stochastic depth) from (seed, step, rank) before every
    training step. Per step, not per epoch: Lightning may create the data iterator (which draws
    from the global RNG) before or after the epoch-start hooks, differently in a resumed run."""

    def __init__(self, seed: int):
        self.seed = seed

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        torch.manual_seed(derive_seed(self.seed, trainer.global_step, trainer.global_rank))
