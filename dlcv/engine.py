"""The one training engine: a Lightning Trainer configured the same way for every job.

It owns devices (CPU / one GPU / many GPUs / many nodes through DDP), mixed precision, seeding,
the run folder (resolved config, metadata, per-epoch log, checkpoints) and resuming.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import os
import platform
import sys
import warnings
from pathlib import Path
from typing import Any, Optional, Sequence

import lightning.pytorch as L
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader, DistributedSampler

from dlcv import runlock
from dlcv.callbacks import EpochLog, RunCheckpoints, SeedEachStep, milestone_epochs
from dlcv.config import to_yaml
from dlcv.data.sets import BatchDataset, passthrough_collate
from dlcv.errors import ConfigError
from dlcv.io import atomic_path, load_torch, write_text
from dlcv.seeding import seed_global

# Augmentation lives in the LightningModule's on_after_batch_transfer on purpose (it runs batched on
# the training device); Lightning warns about that whenever a DataModule is passed too.
warnings.filterwarnings("ignore", message=".*overridden `on_after_batch_transfer`.*")
warnings.filterwarnings("ignore", message=".*isinstance.treespec, LeafSpec.*")
# BYOL has no validation loop; ArrayDataModule always defines val_dataloader (empty there)
warnings.filterwarnings("ignore", message=".*passed in a `val_dataloader` but have no `validation_step`.*")
# Lightning's INFO lines (tips, "100% of batches will be used", ...) drown the per-epoch log
for _name in ("lightning.pytorch", "lightning.fabric"):
    logging.getLogger(_name).setLevel(logging.WARNING)




class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints are written to a temporary file and renamed (a kill mid-write leaves the previous
    checkpoint intact) and loaded with weights_only=True (no arbitrary pickle code)."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options: Optional[Any] = None) -> None:
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)

    def load_checkpoint(self, path, map_location: Optional[Any] = None, weights_only: Optional[bool] = None):
        return load_torch(path, map_location=map_location or "cpu")


def resolve_precision(tcfg) -> str:
    if tcfg.precision != "auto":
        return tcfg.precision
    if _uses_gpu(tcfg):
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "32-true"  # bf16 autocast is slower than fp32 on CPUs without AMX


def _uses_gpu(tcfg) -> bool:
    return tcfg.accelerator in ("gpu", "cuda") or (tcfg.accelerator == "auto" and torch.cuda.is_available())


def _devices(tcfg):
    if tcfg.devices == "auto":
        return "auto" if _uses_gpu(tcfg) else 1  # on CPU "auto" would mean one process per core
    return tcfg.devices


def run_metadata(cfg, command: Sequence[str]) -> dict:
    """Where a number came from: command, hardware, versions, data kind, date, seeding mode."""
    import lightning
    import numpy
    import PIL
    import torchmetrics
    import torchvision

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    data_root = Path(cfg.data.root)
    kind = cfg.run.data_kind
    if kind == "auto":
        kind = "demo" if (data_root / "DEMO_DATA").exists() else "real"
    return {
        "command": " ".join(_as_typed(command)),
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "host_cpu": platform.processor() or platform.machine(),
        "cpu_threads": torch.get_num_threads(),
        "gpu": gpu,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "lightning": lightning.__version__,
        "torchmetrics": torchmetrics.__version__,
        "numpy": numpy.__version__,
        "pillow": PIL.__version__,
        "cuda": torch.version.cuda if torch.cuda.is_available() else None,
        "data_root": str(data_root),
        "data_kind": kind,
        "seed": cfg.run.seed,
        # seeded: (seed, epoch/step, rank)-derived randomness, exact on CPU, fast kernels on GPU;
        # deterministic algorithms: also torch.use_deterministic_algorithms (warn-only: an op with
        # no deterministic kernel, e.g. CUDA adaptive_avg_pool2d backward, warns instead of failing)
        "seeding": "deterministic algorithms" if cfg.trainer.deterministic else "seeded",
        "deterministic_algorithms": bool(cfg.trainer.deterministic),
    }


def _as_typed(command: Sequence[str]) -> list[str]:
    """`python -m dlcv ...` arrives as [".../dlcv/__main__.py", ...]: record what a user types."""
    command = list(command)
    if command and Path(command[0]).name in ("__main__.py", "dlcv"):
        command[0] = "dlcv"
    return command


class ArrayDataModule(L.LightningDataModule):
    """Batches straight from in-memory/mapped arrays. Samplers are ours, not Lightning's: training
    shuffles with (seed, epoch) on every rank, and evaluation splits the set WITHOUT padding, so a
    validation image is never counted twice when the set does not divide by the number of GPUs."""

    def __init__(self, train: Optional[BatchDataset], val: Optional[BatchDataset], batch_size: int,
                 eval_batch_size: int = 0, num_workers: int = 0, seed: int = 0, drop_last: bool = True):
        super().__init__()
        self.train_set, self.val_set = train, val
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or 2 * batch_size
        self.num_workers, self.seed, self.drop_last = num_workers, seed, drop_last

    def _world(self) -> tuple[int, int]:
        t = self.trainer
        return (t.world_size, t.global_rank) if t is not None else (1, 0)

    def _loader(self, dataset, sampler, batch_size, drop_last):
        workers = self.num_workers
        return DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=drop_last,
                          num_workers=workers, collate_fn=passthrough_collate,
                          pin_memory=torch.cuda.is_available(), persistent_workers=workers > 0)

    def train_dataloader(self):
        world, rank = self._world()
        sampler = DistributedSampler(self.train_set, num_replicas=world, rank=rank, shuffle=True, seed=self.seed)
        per_rank = len(sampler)
        drop_last = self.drop_last and per_rank > self.batch_size  # never drop a whole tiny set
        return self._loader(self.train_set, sampler, self.batch_size, drop_last)

    def val_dataloader(self):
        if self.val_set is None:
            return []
        world, rank = self._world()
        sampler = UnrepeatedDistributedSampler(self.val_set, num_replicas=world, rank=rank, shuffle=False)
        return self._loader(self.val_set, sampler, self.eval_batch_size, False)


def build_trainer(cfg, run_dir: Path, monitor: Optional[str], mode: str = "max",
                  callbacks: Sequence[L.Callback] = (), fitting: bool = True) -> L.Trainer:
    t = cfg.trainer
    if t.sync_batchnorm and not _uses_gpu(t):
        raise ConfigError("trainer.sync_batchnorm needs GPUs: torch's SyncBatchNorm has no CPU kernels")
    if t.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    all_callbacks: list[L.Callback] = []
    if fitting:
        # order matters: the log row of an epoch must exist before that epoch's checkpoint is saved
        all_callbacks += [SeedEachStep(cfg.run.seed), EpochLog(run_dir),
                          RunCheckpoints(run_dir, milestone_epochs(t.epochs, t.checkpoint_epochs), monitor, mode)]
    all_callbacks += list(callbacks)

    def limit(v):
        return int(v) if v > 1 else float(v)

    return L.Trainer(
        accelerator=t.accelerator, devices=_devices(t), num_nodes=t.num_nodes, strategy=t.strategy,
        # "warn" as in seed_run: Lightning's True would make ops without a deterministic CUDA kernel
        # (adaptive_avg_pool2d / bilinear interpolate backward: every ResNet, DeepLab) raise mid-run
        precision=resolve_precision(t), sync_batchnorm=t.sync_batchnorm,
        deterministic="warn" if t.deterministic else False,
        max_epochs=t.epochs, gradient_clip_val=t.grad_clip or None, accumulate_grad_batches=t.accumulate,
        limit_train_batches=limit(t.limit_train_batches), limit_val_batches=limit(t.limit_val_batches),
        check_val_every_n_epoch=t.val_every, num_sanity_val_steps=0,
        callbacks=all_callbacks, logger=False, enable_checkpointing=False,
        enable_progress_bar=t.progress, enable_model_summary=False, use_distributed_sampler=False,
        plugins=[AtomicCheckpointIO()], default_root_dir=str(run_dir),
    )


def prepare_run_dir(cfg, command: Sequence[str], resume: bool, overwrite: bool) -> Path:
    """Create runs/<name>/ with config.yaml and meta.json, locked for this process (dlcv.runlock:
    a run another live process trains is refused before anything is touched, --overwrite and
    --resume included); refuse to clobber a finished run."""
    run_dir = Path(cfg.run.dir) / cfg.run.name
    runlock.acquire(run_dir, command)
    if run_dir.exists() and not resume and not overwrite and any((run_dir / "checkpoints").glob("*.ckpt")):
        raise FileExistsError(f"{run_dir} already holds checkpoints; pass --resume to continue it, "
                              f"--overwrite to start again, or run.name=<another name>")
    if overwrite and not resume and run_dir.exists():
        for stale in list((run_dir / "checkpoints").glob("*.ckpt")) + [run_dir / "epochs.csv", run_dir / "log.txt"]:
            stale.unlink(missing_ok=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    # a run killed while writing a checkpoint leaves its temp file (the checkpoint itself is intact:
    # atomic rename); nothing writes checkpoints yet, so the leftovers can go
    for leftover in list((run_dir / "checkpoints").glob(".*.tmp")) + list((run_dir / "checkpoints").glob(".*.link")):
        leftover.unlink(missing_ok=True)
    write_text(run_dir / "config.yaml", to_yaml(cfg))
    write_text(run_dir / "meta.json", json.dumps(run_metadata(cfg, command), indent=2) + "\n")
    return run_dir


def resume_path(run_dir: Path) -> Optional[str]:
    last = run_dir / "checkpoints" / "last.ckpt"
    return str(last) if last.is_file() else None


def seed_run(cfg) -> None:
    seed_global(cfg.run.seed)
    if cfg.trainer.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
