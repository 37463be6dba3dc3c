"""What every job's LightningModule shares: config, optimizer + per-step LR schedule, seeded
batched augmentation, channels_last, the non-finite-loss guard."""
from __future__ import annotations

import math

import lightning.pytorch as L
import torch

from dlcv.config import from_dict
from dlcv.errors import NonFiniteLossError
from dlcv.optim import build_optimizer
from dlcv.schedules import lr_schedule_for
from dlcv.seeding import generator_for


class Task(L.LightningModule):
    def __init__(self, config: dict):
        super().__init__()
        # a plain dict, so checkpoints load with torch.load(weights_only=True)
        self.save_hyperparameters({"config": config})
        self.cfg = from_dict(config)
        self.lr_multipliers = None  # precomputed per step in configure_optimizers

    # -- inputs -----------------------------------------------------------------------------
    def to_device_format(self, x: torch.Tensor) -> torch.Tensor:
        if self.cfg.trainer.channels_last and x.dim() == 4:
            return x.contiguous(memory_format=torch.channels_last)
        return x

    def augment_generator(self, device: torch.device) -> torch.Generator:
        """Fresh per step: the augmentation of step k is a function of (seed, k, rank) alone."""
        return generator_for(device, self.cfg.run.seed, self.global_step, self.global_rank, 17)

    # -- optimisation -----------------------------------------------------------------------
    def configure_optimizers(self):
        optimizer = build_optimizer(self.cfg.optim, self.named_parameters())
        steps_per_epoch = max(1, math.ceil(self.trainer.estimated_stepping_batches / max(1, self.trainer.max_epochs)))
        self.lr_multipliers = lr_schedule_for(self.cfg.optim, self.trainer.max_epochs, steps_per_epoch)
        mult = self.lr_multipliers

        def at(step: int) -> float:
            return float(mult[min(step, len(mult) - 1)])

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, at)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def check_finite(self, loss: torch.Tensor) -> None:
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"non-finite loss ({loss.item()}) at epoch {self.current_epoch + 1}, step {self.global_step}; "
                f"training stopped, the last good checkpoint is kept. Lower optim.lr, enable "
                f"trainer.grad_clip, or use trainer.precision=32-true to find the cause.")

    def metrics_before_training(self) -> dict:
        """Metrics of the model before its first step: the "epoch 0" row of epochs.csv, written by
        the engine's EpochLog (rank 0, runs that start from step 0). None by default."""
        return {}

    def setup(self, stage: str) -> None:
        if self.cfg.trainer.channels_last:
            self.to(memory_format=torch.channels_last)
