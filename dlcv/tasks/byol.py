"""BYOL pre-training as a Lightning task, with the monitors that show whether it works.

Per step (see `dlcv.models.byol` for the method itself):
  1. `on_after_batch_transfer`: the uint8 batch, already on the training device, becomes two views
     per image with `byol_views` (crop/flip/colour/blur/solarize drawn independently per sample,
     from a generator seeded by (seed, step, rank)), then ImageNet mean/std normalisation -- the
     same normalisation the fine-tuning classifiers apply, so the exported backbone sees the input
     statistics it was trained on.
  2. `training_step`: symmetrised 2 - 2 cos loss; the collapse monitor on the online projections.
  3. `optimizer_step`: the optimizer step, then the target EMA with tau[k] (k = the step index),
     precomputed together with the LR multipliers in `configure_optimizers`.

Monitors, one value per epoch in epochs.csv:
  train/loss          the symmetrised BYOL loss (0..8: two terms of 2 - 2cos; it falls, but is not
                      comparable across tau schedules)
  train/collapse_std  std over the batch of L2-normalised online projections, averaged over the
                      d dimensions: -> 0 on collapse, ~1/sqrt(d) (0.0625 for d = 256) when healthy
  train/tau           the EMA rate at the epoch's last step
  knn/acc             kNN accuracy of BACKBONE features (the thing fine-tuning gets), Office-Home
                      train as the memory bank -> Office-Home val; rank 0 only, every
                      `byol.knn_every` epochs and at the last one. An "epoch 0" row holds the
                      random-init backbone's kNN accuracy, the reference BYOL must beat
                      (`metrics_before_training`).
The engine's `images_per_s` column counts source images (each gives two views) per second of
training steps, all ranks; the kNN monitor runs after the last step's timing, so it is excluded.

kNN rule: features in eval mode (BN running statistics), L2-normalised; the k nearest bank images
by cosine similarity vote for their class. `knn_weighting=cosine` (default) weighs each vote by
exp(cos / T), T = `knn_temperature` (0.07), the weighted kNN of Wu et al. 2018 that DINO and
solo-learn report; `majority` counts votes, ties going to the class with the larger summed
similarity. Validation images are only ever queries, never trained on or used to pick a checkpoint.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torchmetrics import MeanMetric

from dlcv.data.augment import ByolAugmentConfig, byol_views
from dlcv.models.byol import BYOL, collapse_std
from dlcv.models.classifiers import Preprocess
from dlcv.schedules import plot_schedules, tau_schedule
from dlcv.tasks.base import Task

BACKBONES = ("resnet18", "resnet34", "resnet50")
KNN_WEIGHTINGS = ("cosine", "majority")


def build_backbone(name: str) -> tuple[nn.Module, int]:
    """A torchvision ResNet with `fc = Identity`, ALWAYS randomly initialised (BYOL pre-trains from
    scratch; ImageNet weights would defeat the point), and its feature width."""
    if name not in BACKBONES:
        raise ValueError(f"unknown BYOL backbone {name!r}; known: {', '.join(BACKBONES)}")
    net = getattr(torchvision.models, name)(weights=None)
    dim = net.fc.in_features
    net.fc = nn.Identity()
    return net, dim


def augment_config(section) -> ByolAugmentConfig:
    """The `byol` config section's augmentation fields as a ByolAugmentConfig (same names)."""
    values = {}
    for f in dataclasses.fields(ByolAugmentConfig):
        v = getattr(section, f.name)
        values[f.name] = tuple(float(p) for p in v) if isinstance(f.default, tuple) else float(v)
    return ByolAugmentConfig(**values)


# ----------------------------------------------------------------------------------------------
# kNN monitor


@torch.no_grad()
def embed(backbone: nn.Module, preprocess: nn.Module, images: np.ndarray, device: torch.device,
          batch_size: int = 256, channels_last: bool = False) -> torch.Tensor:
    """L2-normalised backbone features (N, D) float32 of uint8 (N, 3, H, W) images, eval mode."""
    was_training = backbone.training
    backbone.eval()
    out = []
    use_bf16 = device.type == "cuda"
    try:
        for i in range(0, len(images), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(images[i:i + batch_size])).to(device, non_blocking=True)
            x = preprocess(x)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                out.append(F.normalize(backbone(x).float(), dim=1))
    finally:
        backbone.train(was_training)
    return torch.cat(out)


def knn_predict(bank: torch.Tensor, bank_labels: torch.Tensor, queries: torch.Tensor, k: int,
                num_classes: int, weighting: str = "cosine", temperature: float = 0.07,
                chunk: int = 1024) -> torch.Tensor:
    """Class predictions of L2-normalised `queries` (M, D) from the k nearest rows of `bank` (N, D)."""
    if weighting not in KNN_WEIGHTINGS:
        raise ValueError(f"unknown kNN weighting {weighting!r}; known: {', '.join(KNN_WEIGHTINGS)}")
    k = max(1, min(int(k), len(bank)))
    preds = []
    for i in range(0, len(queries), chunk):
        sims, idx = (queries[i:i + chunk] @ bank.T).topk(k, dim=1)
        labels = bank_labels[idx]
        if weighting == "cosine":
            weights = (sims / temperature).exp()
        else:  # one vote each, plus < 1e-3 in all from the similarities: it only breaks ties
            weights = 1.0 + 1e-3 * (sims + 1.0) / (2.0 * k)
        votes = torch.zeros(len(labels), num_classes, device=bank.device).scatter_add_(1, labels, weights)
        preds.append(votes.argmax(1))
    return torch.cat(preds)


@dataclasses.dataclass
class KnnData:
    """Office-Home images for the monitor: train = the memory bank, val = the queries."""

    bank_images: np.ndarray
    bank_labels: np.ndarray
    query_images: np.ndarray
    query_labels: np.ndarray
    num_classes: int = 65


# ----------------------------------------------------------------------------------------------


class ByolTask(Task):
    def __init__(self, config: dict, knn: Optional[KnnData] = None):
        super().__init__(config)
        mcfg, bcfg = self.cfg.model, self.cfg.byol
        backbone, dim = build_backbone(mcfg.backbone)
        self.byol = BYOL(backbone, dim, mcfg.hidden_dim, mcfg.proj_dim)
        self.normalize = Preprocess()  # ImageNet mean/std on [0, 1] views (no resize)
        self.knn_input = Preprocess(size=bcfg.image_size)  # Office images -> the pre-training size
        self.augment = augment_config(bcfg)
        if bcfg.knn_weighting not in KNN_WEIGHTINGS:
            raise ValueError(f"unknown byol.knn_weighting {bcfg.knn_weighting!r}; known: {KNN_WEIGHTINGS}")
        self.knn = knn  # plain arrays, not module state: never in a checkpoint
        self.tau: Optional[np.ndarray] = None  # per step, set in configure_optimizers
        self.train_loss, self.collapse = MeanMetric(), MeanMetric()

    # -- data -----------------------------------------------------------------------------
    def on_after_batch_transfer(self, batch, dataloader_idx):
        """uint8 images on the device -> two normalised views, drawn per sample."""
        x, _ = batch
        b = self.cfg.byol
        v1, v2 = byol_views(x.float().div_(255), self.augment_generator(x.device), b.image_size,
                            (b.crop_scale_min, 1.0), self.augment)
        return self.to_device_format(self.normalize(v1)), self.to_device_format(self.normalize(v2))

    # -- optimisation -----------------------------------------------------------------------
    def configure_optimizers(self):
        setup = super().configure_optimizers()  # also precomputes self.lr_multipliers per step
        self.tau = tau_schedule(len(self.lr_multipliers), self.cfg.byol.tau_base)
        return setup

    def tau_at(self, step: int) -> float:
        return float(self.tau[min(step, len(self.tau) - 1)])

    def training_step(self, batch, batch_idx):
        v1, v2 = batch
        out = self.byol(v1, v2)
        loss = out["loss"]
        self.check_finite(loss)
        self.train_loss.update(loss.detach(), weight=len(v1))
        self.collapse.update(torch.tensor(collapse_std(out["online_z"]), device=loss.device), weight=len(v1))
        self.log("train/loss", self.train_loss, on_step=False, on_epoch=True)
        self.log("train/collapse_std", self.collapse, on_step=False, on_epoch=True)
        self.log("train/tau", self.tau_at(self.global_step), on_step=False, on_epoch=True, reduce_fx="max",
                 batch_size=len(v1))
        return loss

    def optimizer_step(self, epoch, batch_idx, optimizer, optimizer_closure=None):
        step = self.global_step  # index of the step being taken (Lightning increments it inside)
        super().optimizer_step(epoch, batch_idx, optimizer, optimizer_closure)
        self.byol.update_target(self.tau_at(step))

    # -- monitors -----------------------------------------------------------------------------
    def knn_accuracy(self) -> float:
        """kNN accuracy of the online backbone's features (see the module docstring)."""
        k = self.knn
        channels_last = self.cfg.trainer.channels_last
        bank = embed(self.byol.backbone, self.knn_input, k.bank_images, self.device, channels_last=channels_last)
        queries = embed(self.byol.backbone, self.knn_input, k.query_images, self.device, channels_last=channels_last)
        bank_labels = torch.as_tensor(k.bank_labels, device=self.device)
        preds = knn_predict(bank, bank_labels, queries, self.cfg.byol.knn_k, k.num_classes,
                            self.cfg.byol.knn_weighting, self.cfg.byol.knn_temperature)
        return float((preds.cpu() == torch.as_tensor(k.query_labels)).float().mean())

    def _knn_due(self, epoch: int) -> bool:
        every = self.cfg.byol.knn_every
        return self.knn is not None and every > 0 and (epoch % every == 0 or epoch == self.trainer.max_epochs)

    def metrics_before_training(self) -> dict:
        """The random-init backbone's kNN accuracy: the reference every later epoch is compared with."""
        if self.knn is None or self.cfg.byol.knn_every <= 0:
            return {}
        return {"knn/acc": round(self.knn_accuracy(), 6)}

    def on_train_start(self):
        if self.trainer.is_global_zero:
            self._plot_schedules()

    def on_train_batch_end(self, outputs, batch, batch_idx):
        if batch_idx + 1 != self.trainer.num_training_batches:
            return
        # the epoch's last step is done (and the target updated). Logged here, not at the epoch's
        # end: the engine's per-epoch row takes what is logged before the callbacks' epoch-end hooks.
        epoch = self.current_epoch + 1
        if self._knn_due(epoch) and self.trainer.is_global_zero:  # rank 0 alone: each image once
            t0 = time.perf_counter()
            self.log("knn/acc", self.knn_accuracy(), on_step=False, on_epoch=True, rank_zero_only=True, batch_size=1)
            self.log("knn/time_s", round(time.perf_counter() - t0, 2), on_step=False, on_epoch=True,
                     rank_zero_only=True, batch_size=1)

    def _plot_schedules(self) -> None:
        lr = float(self.cfg.optim.lr) * np.asarray(self.lr_multipliers)
        plot_schedules(Path(self.trainer.default_root_dir) / "figures" / "schedules.png",
                       title=f"{self.cfg.run.name}: per-step LR ({self.cfg.optim.name}) and BYOL tau",
                       lr=lr, tau=self.tau)

    def setup(self, stage: str) -> None:
        super().setup(stage)
        if self.cfg.trainer.compile and stage == "fit":
            self.byol.backbone.compile()  # in place: parameter names (and backbone.pt) stay the same
            self.byol.target_backbone.compile()


__all__ = ["BACKBONES", "ByolTask", "KnnData", "augment_config", "build_backbone", "embed", "knn_predict"]
