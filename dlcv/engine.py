"""The one training engine: Lightning's Trainer, configured the same way for every job.

Lightning owns the training loop, devices (CPU / one GPU / many GPUs / many nodes through DDP),
mixed precision, gradient clipping and accumulation, resuming from a checkpoint, the live curves
(its CSVLogger and TensorBoardLogger under runs/<name>/logs/, its LearningRateMonitor) and the
weight EMA (its EMAWeightAveraging). The engine adds what a run folder needs on top
(dlcv.callbacks): seeding per step, the per-epoch log, the checkpoint files, atomic writes.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import platform
import shutil
import sys
import warnings
from pathlib import Path
from typing import Any, Optional, Sequence

import lightning.pytorch as L
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader, DistributedSampler

from dlcv import runfolder, runlock
from dlcv.callbacks import EpochLog, RunCheckpoints, SeedEachStep, StepLoss, WeightEMA, milestone_epochs
from dlcv.config import to_yaml
from dlcv.data.sets import BatchDataset, passthrough_collate
from dlcv.errors import ConfigError
from dlcv.io import atomic_path, load_torch
from dlcv.seeding import seed_global


# Lightning notices that are expected in this project, silenced while the Trainer runs (and only then):
_EXPECTED_NOTICES = [
    # augmentation is the LightningModule's on_after_batch_transfer on purpose (batched, on the
    # training device), and the data come from a DataModule: using the module's hook is what we want
    dict(message=r"You have overridden `on_after_batch_transfer` in `LightningModule` but have passed in a "
                 r"`LightningDataModule`"),
    # torch 2.14 deprecates LeafSpec, which Lightning 2.6's own pytree helper still builds
    dict(message=r"`isinstance\(treespec, LeafSpec\)` is deprecated", category=FutureWarning),
    # log_every_n_steps counts global steps, so short epochs still get their points across epochs
    dict(message=r"The number of training batches \(\d+\) is smaller than the logging interval"),
]


@contextlib.contextmanager
def _expected_notices_silenced():
    with warnings.catch_warnings():
        for notice in _EXPECTED_NOTICES:  # raised from Lightning's own modules, nowhere else
            warnings.filterwarnings("ignore", module=r"lightning\.pytorch\.", **notice)
        yield


class Trainer(L.Trainer):
    """Lightning's Trainer; `fit` and `validate` run with _EXPECTED_NOTICES silenced, and a
    `validate` (a job's final evaluation of its best checkpoint) logs nothing to the loggers: it is
    not a point of the training curves."""

    def fit(self, *args, **kwargs):
        with _expected_notices_silenced():
            return super().fit(*args, **kwargs)

    def validate(self, *args, **kwargs):
        loggers, self.loggers = self.loggers, []
        try:
            with _expected_notices_silenced():
                return super().validate(*args, **kwargs)
        finally:
            self.loggers = loggers


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
        # bf16 tensor cores from compute capability 8 (Ampere) on; recent torch reports bf16 as
        # "supported" on a 2080 Ti (7.5) too, emulated and slow, so ask the hardware, not torch
        return "bf16-mixed" if torch.cuda.get_device_capability()[0] >= 8 else "16-mixed"
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
        # Only the loaders that exist are defined, as Lightning's own LightningDataModule.from_datasets
        # does: a training-only set (BYOL, no validation_step) then has no val loader to warn about.
        if train is not None:
            self.train_dataloader = self._train_loader
        if val is not None:
            self.val_dataloader = self._val_loader

    def _world(self) -> tuple[int, int]:
        t = self.trainer
        return (t.world_size, t.global_rank) if t is not None else (1, 0)

    def _loader(self, dataset, sampler, batch_size, drop_last):
        workers = self.num_workers
        return DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=drop_last,
                          num_workers=workers, collate_fn=passthrough_collate,
                          pin_memory=torch.cuda.is_available(), persistent_workers=workers > 0)

    def _train_loader(self):
        world, rank = self._world()
        sampler = DistributedSampler(self.train_set, num_replicas=world, rank=rank, shuffle=True, seed=self.seed)
        per_rank = len(sampler)
        drop_last = self.drop_last and per_rank > self.batch_size  # never drop a whole tiny set
        return self._loader(self.train_set, sampler, self.batch_size, drop_last)

    def _val_loader(self):
        world, rank = self._world()
        sampler = UnrepeatedDistributedSampler(self.val_set, num_replicas=world, rank=rank, shuffle=False)
        return self._loader(self.val_set, sampler, self.eval_batch_size, False)


def _check(t) -> None:
    if t.sync_batchnorm and not _uses_gpu(t):
        raise ConfigError("trainer.sync_batchnorm needs GPUs: torch's SyncBatchNorm has no CPU kernels")
    if not 0.0 <= t.ema_decay < 1.0:
        raise ConfigError(f"trainer.ema_decay must be in [0, 1) (0 = off), got {t.ema_decay}")
    if t.ema_warmup_epochs < 0 or t.log_every_n_steps < 1:
        raise ConfigError("trainer.ema_warmup_epochs must be >= 0 and trainer.log_every_n_steps >= 1")


def _fit_callbacks(cfg, run_dir: Path, monitor: Optional[str], mode: str) -> list[L.Callback]:
    t = cfg.trainer
    callbacks = [SeedEachStep(cfg.run.seed), EpochLog(run_dir), StepLoss(),
                 LearningRateMonitor(logging_interval="step"),
                 RunCheckpoints(run_dir, milestone_epochs(t.epochs, t.checkpoint_epochs), monitor, mode)]
    if t.ema_decay > 0:
        callbacks.append(WeightEMA(t.ema_decay, t.ema_warmup_epochs))
    return callbacks


def _loggers(run_dir: Path) -> list:
    """Live curves, per step and per epoch: TensorBoard (`tensorboard --logdir runs`) and CSV."""
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    logs = run_dir / runfolder.LOGS
    # One TensorBoard run per run folder: a resumed run continues it, and purge_step hides the
    # events of the steps a killed session took after its last checkpoint (they are redone).
    tensorboard = TensorBoardLogger(logs, name="", version="tensorboard", default_hp_metric=False,
                                    purge_step=_checkpoint_step(run_dir), flush_secs=10)
    # CSVLogger empties a folder it reopens: one version_<k>/metrics.csv per session instead
    return [tensorboard, CSVLogger(logs, name="csv", flush_logs_every_n_steps=1)]


def _checkpoint_step(run_dir: Path) -> Optional[int]:
    """The optimizer step last.ckpt was saved at (a run is resumed exactly when it exists), else None."""
    last = resume_path(run_dir)
    if last is None:
        return None
    try:  # mmap: the step only, not gigabytes of weights
        return int(torch.load(last, map_location="cpu", weights_only=True, mmap=True)["global_step"])
    except Exception:  # an unreadable last.ckpt is reported, clearly, by the resume itself
        return None


def _quiet_lightning_info() -> None:
    # Lightning's INFO lines (tips, "GPU available", ...) would drown the per-epoch log
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)


def build_trainer(cfg, run_dir: Path, monitor: Optional[str], mode: str = "max",
                  callbacks: Sequence[L.Callback] = (), fitting: bool = True) -> L.Trainer:
    """The Trainer of a job. fitting=True: a training run of `run_dir`, with the engine's callbacks,
    its checkpoints and the loggers; False: evaluation (or a benchmark), nothing written."""
    t = cfg.trainer
    _check(t)
    if t.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    _quiet_lightning_info()
    all_callbacks = (_fit_callbacks(cfg, run_dir, monitor, mode) if fitting else []) + list(callbacks)

    def limit(v):
        return int(v) if v > 1 else float(v)

    return Trainer(
        accelerator=t.accelerator, devices=_devices(t), num_nodes=t.num_nodes, strategy=t.strategy,
        # "warn" as in seed_run: Lightning's True would make ops without a deterministic CUDA kernel
        # (adaptive_avg_pool2d / bilinear interpolate backward: every ResNet, DeepLab) raise mid-run
        precision=resolve_precision(t), sync_batchnorm=t.sync_batchnorm,
        deterministic="warn" if t.deterministic else False,
        max_epochs=t.epochs, gradient_clip_val=t.grad_clip or None, accumulate_grad_batches=t.accumulate,
        limit_train_batches=limit(t.limit_train_batches), limit_val_batches=limit(t.limit_val_batches),
        check_val_every_n_epoch=t.val_every, num_sanity_val_steps=0,
        callbacks=all_callbacks, logger=_loggers(run_dir) if fitting else False, log_every_n_steps=t.log_every_n_steps,
        enable_checkpointing=fitting,  # RunCheckpoints is the checkpoint callback (no default ModelCheckpoint)
        enable_progress_bar=t.progress, enable_model_summary=False, use_distributed_sampler=False,
        plugins=[AtomicCheckpointIO()], default_root_dir=str(run_dir),
    )


def prepare_run_dir(cfg, command: Sequence[str], resume: bool, overwrite: bool) -> Path:
    """Create runs/<name>/ with config.yaml and meta.json, locked for this process (dlcv.runlock:
    a run another live process trains is refused before anything is touched, --overwrite and
    --resume included); refuse to clobber a finished run."""
    run_dir = Path(cfg.run.dir) / cfg.run.name
    runlock.acquire(run_dir, command)
    checkpoints = run_dir / runfolder.CHECKPOINTS
    if run_dir.exists() and not resume and not overwrite and any(checkpoints.glob("*.ckpt")):
        raise FileExistsError(f"{run_dir} already holds checkpoints; pass --resume to continue it, "
                              f"--overwrite to start again, or run.name=<another name>")
    if overwrite and not resume and run_dir.exists():
        for stale in list(checkpoints.glob("*.ckpt")) + [run_dir / runfolder.EPOCHS, run_dir / runfolder.LOG]:
            stale.unlink(missing_ok=True)
    if resume_path(run_dir) is None:  # training starts from step 0: earlier curves are stale
        shutil.rmtree(run_dir / runfolder.LOGS, ignore_errors=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    # a run killed while writing a checkpoint leaves its temp file (the checkpoint itself is intact:
    # atomic rename); nothing writes checkpoints yet, so the leftovers can go
    for leftover in list(checkpoints.glob(".*.tmp")) + list(checkpoints.glob(".*.link")):
        leftover.unlink(missing_ok=True)
    runfolder.write_config(run_dir, to_yaml(cfg))
    runfolder.write_meta(run_dir, run_metadata(cfg, command))
    return run_dir


def validate_best(trainer, task, datamodule, run_dir: Path) -> dict:
    """Load the best epoch's weights (last.ckpt when nothing was monitored) into `task` and validate
    them on every rank; returns the checkpoint. With trainer.ema_decay > 0 a checkpoint's
    state_dict holds the EMA weights (the raw ones are its current_model_state): what was
    validated during training is what is evaluated here and exported in model.pt."""
    best = run_dir / runfolder.CHECKPOINTS / "best.ckpt"
    ckpt = load_torch(best if best.is_file() else run_dir / runfolder.CHECKPOINTS / "last.ckpt")
    task.load_state_dict(ckpt["state_dict"])
    trainer.validate(task, datamodule=datamodule, verbose=False)
    return ckpt


def resume_path(run_dir: Path) -> Optional[str]:
    last = Path(run_dir) / runfolder.CHECKPOINTS / "last.ckpt"
    return str(last) if last.is_file() else None


def seed_run(cfg) -> None:
    seed_global(cfg.run.seed)
    if cfg.trainer.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
