"""The BYOL pre-training job (P2), top to bottom: config, data, fit, export the backbone.

    dlcv train configs/p2/byol.yaml [key=value ...]

Outputs in runs/<name>/ (besides the engine's config.yaml, meta.json, checkpoints/):
  epochs.csv / log.txt   loss, collapse std, tau, kNN accuracy (+ an epoch-0 row: random init) and
                         its time, lr, epoch time, images_per_s (source images per second of
                         training steps, each gives two views, kNN monitor excluded)
  figures/schedules.png  the per-step LR and tau curves
  backbone.pt            the online backbone of the LAST epoch as a torchvision ResNet state_dict
                         (no fc.*): `resnet50(weights=None).load_state_dict(sd, strict=False)`
                         misses only fc.weight/fc.bias, and fine-tuning takes it as
                         `model.pretrained=runs/<name>/backbone.pt`. The last epoch, not the "best":
                         BYOL's loss is not comparable across epochs (tau moves the target), and
                         picking by the kNN monitor would select on validation images. With
                         trainer.ema_decay > 0: the EMA of the weights (the engine's WeightEMA).
  summary.json           final numbers (what the demo and the report read)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from dlcv import runfolder
from dlcv.config import DataConfig, OptimConfig, RunConfig, TrainerConfig, to_dict
from dlcv.data.augment import ByolAugmentConfig
from dlcv.data.cache import cache_dir
from dlcv.data.sets import BatchDataset
from dlcv.engine import ArrayDataModule, build_trainer, prepare_run_dir, resume_path, seed_run
from dlcv.errors import ConfigError
from dlcv.io import save_torch

_AUG = ByolAugmentConfig()  # the paper's augmentation defaults, reused as this config's defaults


@dataclass
class ByolDataConfig(DataConfig):
    # 0 = mini's native size (84 px); > 0 = resize (shorter side + centre crop) when decoding
    image_size: int = 0


@dataclass
class ByolModelConfig:
    backbone: str = "resnet50"  # resnet50 (the assignment) | resnet18 / resnet34 (CPU demos); random init
    hidden_dim: int = 4096  # projector/predictor hidden width (paper: 4096)
    proj_dim: int = 256  # projection width (paper: 256)


@dataclass
class ByolSection:
    tau_base: float = 0.996  # target EMA rate at step 0; cosine up to 1 at the last step
    image_size: int = 128  # views are cropped and resized to this on the device
    crop_scale_min: float = 0.08  # RandomResizedCrop area fraction range [min, 1]
    # augmentation (view 1, view 2) probabilities and strengths: ByolAugmentConfig, paper Table 6
    jitter_p: list[float] = field(default_factory=lambda: list(_AUG.jitter_p))
    brightness: float = _AUG.brightness
    contrast: float = _AUG.contrast
    saturation: float = _AUG.saturation
    hue: float = _AUG.hue
    grayscale_p: list[float] = field(default_factory=lambda: list(_AUG.grayscale_p))
    blur_p: list[float] = field(default_factory=lambda: list(_AUG.blur_p))
    solarize_p: list[float] = field(default_factory=lambda: list(_AUG.solarize_p))
    blur_sigma: list[float] = field(default_factory=lambda: list(_AUG.blur_sigma))  # px of the view (low, high)
    # kNN monitor on Office-Home (train = bank, val = queries); 0 = off (no Office data needed)
    knn_every: int = 1
    knn_k: int = 20
    knn_weighting: str = "cosine"  # cosine (votes weighted exp(cos/T)) | majority
    knn_temperature: float = 0.07
    knn_max_bank: int = 0  # > 0: a fixed random subset of the bank (cheaper monitor)


@dataclass
class ByolConfig:
    task: str = "byol"
    run: RunConfig = field(default_factory=RunConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: ByolDataConfig = field(default_factory=ByolDataConfig)
    model: ByolModelConfig = field(default_factory=ByolModelConfig)
    byol: ByolSection = field(default_factory=ByolSection)


# ----------------------------------------------------------------------------------------------


def check_config(cfg) -> None:
    """Mistakes worth stopping for before any data is decoded (trainer.sync_batchnorm on CPU is the
    engine's check, common to every job)."""
    for name in ("jitter_p", "grayscale_p", "blur_p", "solarize_p"):
        if len(cfg.byol[name]) != 2:
            raise ConfigError(f"byol.{name} must hold two probabilities (view 1, view 2), got {list(cfg.byol[name])}")
    low, high = (list(cfg.byol.blur_sigma) + [0.0, 0.0])[:2]
    if len(cfg.byol.blur_sigma) != 2 or not 0 < low <= high:
        raise ConfigError(f"byol.blur_sigma must be two pixel values 0 < low <= high, got {list(cfg.byol.blur_sigma)}")
    if not 0 < cfg.byol.crop_scale_min <= 1:
        raise ConfigError(f"byol.crop_scale_min must be in (0, 1], got {cfg.byol.crop_scale_min}")
    if cfg.data.batch_size < 2:
        raise ConfigError("data.batch_size must be >= 2 (BatchNorm and the collapse monitor need a batch)")


def load_knn_data(cfg):
    """Office-Home train (memory bank, optionally subsampled) and val (queries) for the monitor."""
    from dlcv.data.office import NUM_CLASSES, load_office_split
    from dlcv.tasks.byol import KnnData

    office = Path(cfg.data.root) / "p2_data" / "office"
    train = load_office_split(office, "train", cache_dir=cache_dir(cfg))
    val = load_office_split(office, "val", cache_dir=cache_dir(cfg))
    bank_images, bank_labels = train.images, train.labels
    if 0 < cfg.byol.knn_max_bank < len(bank_labels):
        keep = np.sort(np.random.default_rng(cfg.run.seed).choice(len(bank_labels), cfg.byol.knn_max_bank,
                                                                  replace=False))
        bank_images, bank_labels = bank_images[keep], bank_labels[keep]
    return KnnData(bank_images, bank_labels, val.images, val.labels, NUM_CLASSES)


def fit(cfg, command: Sequence[str], resume: bool = False, overwrite: bool = False) -> dict:
    from dlcv.data.mini import load_mini_folder
    from dlcv.models.byol import backbone_state_dict
    from dlcv.tasks.byol import ByolTask

    check_config(cfg)
    run_dir = prepare_run_dir(cfg, command, resume, overwrite)
    if not resume:  # a fresh run must not leave a previous run's results looking current
        for stale in ("backbone.pt", "summary.json"):
            (run_dir / stale).unlink(missing_ok=True)
    seed_run(cfg)
    mini = load_mini_folder(Path(cfg.data.root) / "p2_data" / "mini" / "train", cache_dir(cfg),
                            cfg.data.image_size, cfg.data.limit)
    knn = load_knn_data(cfg) if cfg.byol.knn_every > 0 else None
    task = ByolTask(to_dict(cfg), knn)
    trainer = build_trainer(cfg, run_dir, monitor=None)
    dm = ArrayDataModule(BatchDataset(mini.images, mini.labels), None, cfg.data.batch_size,
                         cfg.data.eval_batch_size, cfg.data.num_workers, cfg.run.seed)
    trainer.fit(task, datamodule=dm, ckpt_path=resume_path(run_dir) if resume else None, weights_only=True)
    if not trainer.is_global_zero:
        return {}

    save_torch(backbone_state_dict(task.byol), run_dir / "backbone.pt")
    rows = runfolder.read_epochs(run_dir)
    trained = [r for r in rows if r.get("epoch", 0) >= 1]
    knn = {int(r["epoch"]): r["knn/acc"] for r in rows if r.get("knn/acc") is not None}
    last = trained[-1] if trained else {}
    summary = {
        "task": "byol", "backbone": cfg.model.backbone, "epochs": cfg.trainer.epochs,
        "images": len(mini), "image_size": cfg.byol.image_size, "batch_size": cfg.data.batch_size,
        "optimizer": cfg.optim.name, "lr": cfg.optim.lr, "schedule": cfg.optim.schedule,
        "hidden_dim": cfg.model.hidden_dim, "proj_dim": cfg.model.proj_dim,
        "final_loss": last.get("train/loss"), "final_collapse_std": last.get("train/collapse_std"),
        "collapse_std_healthy": round(1 / cfg.model.proj_dim ** 0.5, 6),
        "knn_acc": {str(e): a for e, a in sorted(knn.items())},
        "knn_random_init": knn.get(0), "knn_final": knn.get(max(knn)) if knn else None,
        "images_per_s": last.get("images_per_s"),  # last epoch, training steps only (no monitor)
        "backbone_file": str(run_dir / "backbone.pt"),
    }
    runfolder.write_summary(run_dir, summary)
    knn_note = (f"; kNN acc {summary['knn_random_init']:.2%} (random init) -> {summary['knn_final']:.2%}"
                if knn and summary["knn_random_init"] is not None else "")
    print(f"{cfg.run.name}: loss {summary['final_loss']}, collapse std {summary['final_collapse_std']} "
          f"(healthy ~{summary['collapse_std_healthy']}){knn_note} -> {run_dir / 'backbone.pt'}", flush=True)
    return summary


__all__ = ["ByolConfig", "ByolDataConfig", "ByolModelConfig", "ByolSection", "check_config", "fit"]
