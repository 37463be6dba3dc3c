"""The classification job (P1 A/B, P2 fine-tuning), top to bottom: data, fit, evaluate, figures."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from dlcv import runfolder
from dlcv.analysis.architecture import draw_run_architecture
from dlcv.analysis.classification_eval import write_evaluation
from dlcv.analysis.features import FeatureDump, feature_figures
from dlcv.callbacks import milestone_epochs
from dlcv.config import to_dict
from dlcv.data.cache import cache_dir
from dlcv.data.sets import BatchDataset, ImageSet
from dlcv.engine import ArrayDataModule, build_trainer, prepare_run_dir, resume_path, seed_run, validate_best
from dlcv.io import export_model, load_weights
from dlcv.tasks.classification import ClassificationTask


def load_sets(cfg) -> tuple[ImageSet, ImageSet]:
    root = Path(cfg.data.root)
    if cfg.dataset == "p1":
        from dlcv.data.p1 import load_p1_folder

        train = load_p1_folder(root / "p1_data" / "train_50", cache_dir=cache_dir(cfg), num_classes=cfg.model.num_classes)
        val = load_p1_folder(root / "p1_data" / "val_50", cache_dir=cache_dir(cfg), num_classes=cfg.model.num_classes)
    elif cfg.dataset == "office":
        from dlcv.data.office import load_office_split

        train = load_office_split(root / "p2_data" / "office", "train", cache_dir=cache_dir(cfg))
        val = load_office_split(root / "p2_data" / "office", "val", cache_dir=cache_dir(cfg))
    else:
        raise ValueError(f"unknown dataset {cfg.dataset!r}; use p1 | office")
    return train.subset(cfg.data.limit), val


def datamodule(cfg, train: ImageSet, val: ImageSet) -> ArrayDataModule:
    return ArrayDataModule(BatchDataset(train.images, train.labels), BatchDataset(val.images, val.labels),
                           cfg.data.batch_size, cfg.data.eval_batch_size, cfg.data.num_workers, cfg.run.seed)


def fit(cfg, command: Sequence[str], resume: bool = False, overwrite: bool = False) -> dict:
    run_dir = prepare_run_dir(cfg, command, resume, overwrite)
    seed_run(cfg)
    train, val = load_sets(cfg)
    task = ClassificationTask(to_dict(cfg))
    callbacks = []
    if cfg.features.enabled:
        epochs = milestone_epochs(cfg.trainer.epochs, cfg.features.epochs)
        callbacks.append(FeatureDump(run_dir, epochs, val.images, val.labels, cfg.features.max_points, cfg.run.seed))
    trainer = build_trainer(cfg, run_dir, monitor="val/acc", mode="max", callbacks=callbacks)
    dm = datamodule(cfg, train, val)
    trainer.fit(task, datamodule=dm, ckpt_path=resume_path(run_dir) if resume else None, weights_only=True)

    ckpt = validate_best(trainer, task, dm, run_dir)  # by validation accuracy; rank 0 writes below
    if not trainer.is_global_zero:
        return {}
    summary = {
        "task": "classify", "dataset": cfg.dataset, "model": cfg.model.name,
        "pretrained": task.model.pretrained, "freeze": cfg.model.freeze,
        "best_epoch": int(ckpt["epoch"]) + 1, "epochs": cfg.trainer.epochs,
        "params": sum(p.numel() for p in task.model.parameters()),
        "trainable_params": sum(p.numel() for p in task.model.parameters() if p.requires_grad),
    }
    evaluation = write_evaluation(run_dir / "eval", task.last_confusion.numpy(), f"{cfg.run.name} (validation)")
    summary["val_acc"] = evaluation["accuracy"]
    summary["val_images"] = evaluation["images"]
    export_model(run_dir, to_dict(cfg), task.state_dict(), {"summary": summary})
    if cfg.dataset == "p1":  # the report's P1 architecture figures (1.1)
        draw_run_architecture(task.model, int(val.images.shape[-1]), run_dir)
    if cfg.features.enabled:
        figures = feature_figures(run_dir, cfg.features.tsne_perplexity, cfg.run.seed, cfg.model.num_classes)
        summary["figures"] = sorted(str(p.relative_to(run_dir)) for p in figures.values())
    runfolder.write_summary(run_dir, summary)
    print(f"{cfg.run.name}: validation accuracy {summary['val_acc']:.2%} (best epoch {summary['best_epoch']}) "
          f"-> {run_dir}", flush=True)
    return summary


def evaluate(config: dict, state_dict: dict, out_dir: Path, trainer_overrides: dict,
             source: str = "checkpoint") -> dict:
    """Accuracy / per-class accuracy / confusion matrix of given weights on the validation set."""
    from dlcv.config import from_dict

    cfg = from_dict(config)
    for k, v in trainer_overrides.items():
        setattr(cfg.trainer, k, v)
    task = ClassificationTask(to_dict(cfg), inference=True)
    load_weights(task, state_dict, source)
    _, val = load_sets(cfg)
    dm = ArrayDataModule(None, BatchDataset(val.images, val.labels), cfg.data.batch_size,
                         cfg.data.eval_batch_size, cfg.data.num_workers, cfg.run.seed)
    trainer = build_trainer(cfg, out_dir, monitor=None, fitting=False)
    trainer.validate(task, datamodule=dm, verbose=False)
    if not trainer.is_global_zero:
        return {}
    result = write_evaluation(out_dir, task.last_confusion.numpy(), f"{cfg.run.name} (validation)")
    print(f"validation accuracy {result['accuracy']:.4%} on {result['images']} images -> {out_dir}", flush=True)
    return result
