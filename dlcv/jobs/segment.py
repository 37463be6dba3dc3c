"""The segmentation job (P3 models A and B), top to bottom: data, fit, evaluate, masks, figures.

`dlcv train configs/p3/<recipe>.yaml` -> runs/<name>/ with config.yaml, meta.json, epochs.csv
(train/loss, val/loss, val/miou, val/pixel_acc, val/iou_<class> per epoch), log.txt,
checkpoints/{last,best,epoch_XXX}.ckpt (best = highest val/miou), masks/epoch_XXX/*.png,
eval/{iou.md,metrics.json} (the best epoch's official per-class IoU and confusion matrix; with
`eval.tta` set, also eval/tta/ with test-time augmentation and `val_miou_tta` in summary.json),
figures/masks_over_epochs*.png, model.pt (for hw1_3.sh) and summary.json.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from dlcv import runfolder
from dlcv.analysis.architecture import draw_run_architecture
from dlcv.analysis.masks_over_epochs import MaskSnapshots, mask_figures
from dlcv.callbacks import milestone_epochs
from dlcv.config import DataConfig, OptimConfig, RunConfig, TrainerConfig, from_dict, to_dict
from dlcv.data.cache import cache_dir
from dlcv.data.masks import CLASS_NAMES, EVAL_CLASSES
from dlcv.data.satellite import load_satellite_split
from dlcv.data.sets import BatchDataset, ImageSet
from dlcv.engine import ArrayDataModule, build_trainer, prepare_run_dir, resume_path, seed_run, validate_best
from dlcv.errors import DataError
from dlcv.graded.models import describe_tta
from dlcv.io import export_model, load_weights
from dlcv.references import P3_MASK_IDS
from dlcv.seg_iou import format_iou_table, iou_from_confusion, write_iou_report
from dlcv.tasks.segmentation import SegmentationTask


# ------------------------------------------------------------------------------------ config
@dataclass
class SegModelConfig:
    name: str = "deeplabv3_resnet50"  # fcn32s (model A) | deeplabv3_resnet50 (model B)
    # "none" (random init) | "imagenet" (torchvision weights from the local cache: VGG16 for fcn32s,
    # the ResNet50 backbone for DeepLab; never a silent download) | a path to a local state dict
    pretrained: str = "none"
    aux_loss_weight: float = 0.0  # DeepLab: > 0 builds the auxiliary FCN head on layer3 (0.4 in the paper)
    dropout: float = 0.5  # FCN32s: element-wise dropout after fc6 and fc7 (the paper's)


@dataclass
class SegDataConfig(DataConfig):
    crop: int = 0  # square training crop in pixels (512 real, 128 demo); 0 = the images' own size


@dataclass
class SegAugmentConfig:
    enabled: bool = True
    scale: list[float] = field(default_factory=lambda: [0.5, 2.0])  # zoom, log-uniform
    hflip: float = 0.5
    vflip: float = 0.5
    rot90: bool = True  # satellite images have no "up"
    jitter: float = 0.0  # brightness/contrast/saturation strength (hue: jitter/8), image only; 0 = off
    jitter_p: float = 0.8


@dataclass
class SegLossConfig:
    name: str = "ce"  # ce | focal
    focal_gamma: float = 2.0


@dataclass
class SegEvalConfig:
    # test-time augmentation of the final evaluation (eval/tta/) and of `dlcv evaluate`; the
    # per-epoch validation is always plain. none | flip | multiscale | flip_multiscale
    # (dlcv.graded.models.segment_scores, what hw1_3.sh runs; its `auto` is flip_multiscale on a GPU)
    tta: str = "none"
    tta_scales: list[float] = field(default_factory=lambda: [0.75, 1.0, 1.25])  # also hw1_3.sh's scales


@dataclass
class MasksConfig:
    enabled: bool = True
    epochs: list[int] = field(default_factory=list)  # 1-based; empty = first, middle, last
    # validation ids; QUOTE them in YAML: an unquoted 0013 is read as the octal number 11
    ids: list[str] = field(default_factory=lambda: list(P3_MASK_IDS))
    alpha: float = 0.3  # fill opacity of the overlays


@dataclass
class SegmentConfig:
    task: str = "segment"
    run: RunConfig = field(default_factory=RunConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: SegDataConfig = field(default_factory=SegDataConfig)
    model: SegModelConfig = field(default_factory=SegModelConfig)
    augment: SegAugmentConfig = field(default_factory=SegAugmentConfig)
    loss: SegLossConfig = field(default_factory=SegLossConfig)
    eval: SegEvalConfig = field(default_factory=SegEvalConfig)
    masks: MasksConfig = field(default_factory=MasksConfig)


# ------------------------------------------------------------------------------------ data

def load_sets(cfg, train: bool = True) -> tuple[ImageSet | None, ImageSet]:
    """(train, validation) of <root>/p3_data; train is None when not asked for (evaluation)."""
    root = Path(cfg.data.root) / "p3_data"
    train_set = load_satellite_split(root / "train", cache_dir(cfg)).subset(cfg.data.limit) if train else None
    val_set = load_satellite_split(root / "validation", cache_dir(cfg))
    return train_set, val_set


def snapshot_items(cfg, val: ImageSet) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The validation ids chosen for masks-over-epochs, with their images and masks."""
    ids = [str(i) for i in cfg.masks.ids]
    index = {name: k for k, name in enumerate(val.names)}
    missing = [i for i in ids if i not in index]
    if missing:
        raise DataError(f"masks.ids {missing} are not in {val.root} (its ids run {val.names[0]}..{val.names[-1]}); "
                        f"choose ids that exist, or masks.enabled=false. Quote them: YAML reads an unquoted "
                        f"0013 as the octal number 11 (ids: [\"0013\"], or masks.ids=\"['0013']\" on the "
                        f"command line)")
    rows = [index[i] for i in ids]
    return ids, np.asarray(val.images[rows]), np.asarray(val.masks[rows])


def datamodule(cfg, train: ImageSet | None, val: ImageSet) -> ArrayDataModule:
    # drop_last (the engine's default) so BatchNorm never sees a batch of 1
    return ArrayDataModule(None if train is None else BatchDataset(train.images, train.masks),
                           BatchDataset(val.images, val.masks), cfg.data.batch_size, cfg.data.eval_batch_size,
                           cfg.data.num_workers, cfg.run.seed)


# ------------------------------------------------------------------------------------ fit
def fit(cfg, command: Sequence[str], resume: bool = False, overwrite: bool = False) -> dict:
    run_dir = prepare_run_dir(cfg, command, resume, overwrite)
    seed_run(cfg)
    train, val = load_sets(cfg)
    task = SegmentationTask(to_dict(cfg))
    callbacks = []
    if cfg.masks.enabled:
        ids, images, masks = snapshot_items(cfg, val)
        epochs = milestone_epochs(cfg.trainer.epochs, cfg.masks.epochs)
        callbacks.append(MaskSnapshots(run_dir, epochs, ids, images, masks, cfg.masks.alpha))
    trainer = build_trainer(cfg, run_dir, monitor="val/miou", mode="max", callbacks=callbacks)
    dm = datamodule(cfg, train, val)
    trainer.fit(task, datamodule=dm, ckpt_path=resume_path(run_dir) if resume else None, weights_only=True)

    ckpt = validate_best(trainer, task, dm, run_dir)  # by val/miou; rank 0 writes below
    if not trainer.is_global_zero:
        return {}
    best_epoch = int(ckpt["epoch"]) + 1
    result = iou_from_confusion(task.last_confusion)
    title = f"{cfg.run.name}: validation IoU at the best epoch ({best_epoch})"
    write_iou_report(run_dir / "eval", result, title, {"best_epoch": best_epoch, "images": len(val)})
    print(format_iou_table(result), flush=True)
    epoch_rows = runfolder.read_epochs(run_dir)
    summary = {
        "task": "segment", "model": cfg.model.name, "pretrained": task.segmenter.pretrained,
        "loss": cfg.loss.name, "crop": cfg.data.crop, "best_epoch": best_epoch, "epochs": cfg.trainer.epochs,
        "params": sum(p.numel() for p in task.segmenter.parameters()),
        "val_images": len(val), "val_miou": float(result["miou"]),
        "val_miou_official": float(result["miou_official"]),
        "val_iou": {CLASS_NAMES[i]: float(result["iou"][i]) for i in range(EVAL_CLASSES)},
        "absent_classes": [CLASS_NAMES[i] for i in result["absent_classes"]],
        "mean_epoch_time_s": _mean([r.get("epoch_time_s") for r in epoch_rows]),
        "train_images_per_s": _mean([r.get("images_per_s") for r in epoch_rows]),
    }
    if cfg.eval.tta != "none":
        summary.update(_tta_evaluation(cfg, trainer, task, dm, run_dir / "eval" / "tta", best_epoch, len(val)))
    summary = runfolder.finite_or_none(summary)  # a class absent from validation has no IoU: null, not NaN
    export_model(run_dir, to_dict(cfg), task.state_dict(), {"summary": summary})
    draw_run_architecture(task.segmenter, int(val.images.shape[-1]), run_dir)  # the report's 3.1 / 3.2
    if cfg.masks.enabled:
        figures = mask_figures(run_dir, cfg.run.name)
        summary["figures"] = sorted(str(p.relative_to(run_dir)) for p in figures.values())
    runfolder.write_summary(run_dir, summary)
    print(f"{cfg.run.name}: validation mIoU {result['miou']:.2%} (best epoch {best_epoch}) -> {run_dir}", flush=True)
    return summary


def _tta_evaluation(cfg, trainer, task, dm, out_dir: Path, best_epoch: int, images: int) -> dict:
    """The best epoch once more with the test-time augmentation of cfg.eval -> out_dir (iou.md,
    metrics.json) and the summary's `val_miou_tta` / `eval_tta` (run on every rank, rank 0 writes)."""
    tta = describe_tta(cfg.eval.tta, cfg.eval.tta_scales)
    task.eval_tta = cfg.eval.tta
    try:
        trainer.validate(task, datamodule=dm, verbose=False)
    finally:
        task.eval_tta = "none"
    if not trainer.is_global_zero:
        return {}
    result = iou_from_confusion(task.last_confusion)
    write_iou_report(out_dir, result, f"{cfg.run.name}: validation IoU at the best epoch ({best_epoch}), TTA {tta}",
                     {"best_epoch": best_epoch, "images": images, "tta": cfg.eval.tta,
                      "tta_scales": list(cfg.eval.tta_scales)})
    print(f"{cfg.run.name}: with TTA ({tta}): validation mIoU {result['miou']:.2%}", flush=True)
    return {"val_miou_tta": float(result["miou"]), "eval_tta": {"mode": cfg.eval.tta, "scales": list(
        cfg.eval.tta_scales), "text": tta}}


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return round(float(np.mean(values)), 3) if values else None


# ------------------------------------------------------------------------------------ evaluate
def evaluate(config: dict, state_dict: dict, out_dir: Path, trainer_overrides: dict,
             source: str = "checkpoint") -> dict:
    """Official per-class IoU and the confusion matrix of given weights on the validation set
    (any number of processes: the matrix is summed over ranks, every image counted once)."""
    cfg = from_dict(config)
    for k, v in trainer_overrides.items():
        setattr(cfg.trainer, k, v)
    task = SegmentationTask(to_dict(cfg), inference=True)
    task.eval_tta = cfg.eval.tta
    load_weights(task, state_dict, source)
    _, val = load_sets(cfg, train=False)
    trainer = build_trainer(cfg, out_dir, monitor=None, fitting=False)
    trainer.validate(task, datamodule=datamodule(cfg, None, val), verbose=False)
    if not trainer.is_global_zero:
        return {}
    result = iou_from_confusion(task.last_confusion)
    tta = describe_tta(cfg.eval.tta, cfg.eval.tta_scales)
    extra = {} if cfg.eval.tta == "none" else {"tta": cfg.eval.tta, "tta_scales": list(cfg.eval.tta_scales)}
    payload = write_iou_report(out_dir, result, f"{cfg.run.name}: validation IoU" + (f", TTA {tta}" if extra else ""),
                               {"images": len(val), "world_size": trainer.world_size, **extra})
    print(format_iou_table(result), flush=True)
    print(f"validation mIoU {result['miou']:.4%} on {len(val)} images ({trainer.world_size} process(es), "
          f"TTA {tta}) -> {out_dir}", flush=True)
    return payload
