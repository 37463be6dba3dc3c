"""Resolved-config values as the short phrases the report's implementation tables show."""
from __future__ import annotations

import functools
import json

from dlcv.report.runs import Run

def typed(run: Run):
    """The run's resolved config read back into its typed schema (defaults fill keys an older run
    lacks), or None when it no longer validates."""
    return _typed(json.dumps(run.config, sort_keys=True)) if run.config else None


@functools.lru_cache(maxsize=64)
def _typed(config_json: str):  # a report asks ~30 phrases of each run: validate its config once
    from dlcv.config import load_config

    try:
        return load_config(base=json.loads(config_json))
    except Exception:  # noqa: BLE001 - an unreadable config is "?" in a table, never a crash
        return None


def model(run: Run) -> str:
    cfg = typed(run)
    if cfg is None:
        return "?"
    if cfg.task == "classify":
        from dlcv.models.classifiers import describe_classifier

        return describe_classifier(cfg.model)
    if cfg.task == "segment":
        from dlcv.models.segmentation import describe_segmenter

        return describe_segmenter(cfg.model)
    return str(run.cfg("model.backbone", "?"))  # BYOL: its backbone


def optimizer(run: Run) -> str:
    from dlcv.optim import describe_optimizer

    cfg = typed(run)
    return describe_optimizer(cfg.optim) if cfg is not None else "?"


def schedule(run: Run) -> str:
    from dlcv.schedules import describe_schedule

    cfg = typed(run)
    return describe_schedule(cfg.optim, cfg.trainer.epochs) if cfg is not None else "?"


def loss(run: Run) -> str:
    if run.cfg("task") == "segment":
        name = run.cfg("loss.name", "ce")
        text = f"focal loss (gamma {run.cfg('loss.focal_gamma', 2.0):g})" if name == "focal" else "pixel-wise cross entropy"
        aux = run.cfg("model.aux_loss_weight", 0) or 0
        return text + (f" + {aux:g} × auxiliary-head loss" if aux else "")
    if run.cfg("task") == "byol":
        return "2 - 2 cos(q(z1), z2'), symmetrised over the two views"
    smooth = run.cfg("label_smoothing", 0) or 0
    return "cross entropy" + (f", label smoothing {smooth:g}" if smooth else "")


def augment(run: Run) -> str:
    task = run.cfg("task")
    if task == "classify":
        from dlcv.data.augment.classify import AUGMENTS
        from dlcv.data.augment.mix import describe_mix

        cfg = typed(run)
        if cfg is None or cfg.augment not in AUGMENTS:
            return str(run.cfg("augment", "?"))
        return "; ".join(t for t in (AUGMENTS[cfg.augment].describe(), describe_mix(cfg.mix)) if t)
    if task == "segment":
        a = run.cfg("augment", {}) or {}
        if not a.get("enabled", True):
            return "none"
        parts = []
        if a.get("scale"):
            parts.append(f"zoom {a['scale'][0]:g}-{a['scale'][1]:g} (log-uniform)")
        if a.get("hflip"):
            parts.append(f"h-flip p {a['hflip']:g}")
        if a.get("vflip"):
            parts.append(f"v-flip p {a['vflip']:g}")
        if a.get("rot90"):
            parts.append("random 90° rotations")
        if a.get("jitter"):
            parts.append(f"colour jitter {a['jitter']:g} (p {a.get('jitter_p', 0.8):g}, image only)")
        crop = run.cfg("data.crop") or 0
        if crop:
            parts.append(f"{crop}×{crop} crops")
        return ", ".join(parts) + " (image and mask together)"
    if task == "byol":
        b = run.cfg("byol", {}) or {}

        def pair(key):
            v = b.get(key) or []
            return "/".join(f"{x:g}" for x in v)

        return (f"two views per image, drawn per sample: random resized crop (area {b.get('crop_scale_min', 0.08):g}-1) "
                f"to {b.get('image_size')} px + horizontal flip; colour jitter (brightness {b.get('brightness', 0):g}, "
                f"contrast {b.get('contrast', 0):g}, saturation {b.get('saturation', 0):g}, hue {b.get('hue', 0):g}) "
                f"p {pair('jitter_p')}; grayscale p {pair('grayscale_p')}; Gaussian blur p {pair('blur_p')} "
                f"(sigma {pair('blur_sigma') or '0.1/2'} px); "
                f"solarize p {pair('solarize_p')} (view 1/view 2)")
    return "?"


def input_pipeline(run: Run) -> str:
    """What the model's own Preprocess does (dlcv.models.classifiers.Preprocess)."""
    size, resize = run.cfg("model.input_size", 0) or 0, run.cfg("model.resize", 0) or 0
    native = "32×32" if run.cfg("dataset") == "p1" else "the images'"
    name = str(run.cfg("model.name", ""))
    if resize:
        geo = f"{native} images resized (shorter side) to {resize} px, centre crop {size or 224}"
    elif size:
        geo = f"{native} images resized to {size}×{size}"
    elif name.startswith(("convnext_", "efficientnet")):
        geo = f"{native} images resized to 224×224"
    else:
        geo = f"{native} images at native size"
    return geo + ", ImageNet mean/std normalisation"


def freeze(run: Run) -> str:
    rule = str(run.cfg("model.freeze", "none"))
    if rule == "none":
        return "none: every parameter trains"
    if rule == "backbone":
        return "backbone frozen (no gradient, BatchNorm statistics fixed): only the classifier trains"
    if rule == "last_stage":
        try:
            from dlcv.models.classifiers import MODELS

            stage = MODELS[str(run.cfg("model.name"))].last_stage
            return ("the seed's rule: everything frozen except the last stage (" +
                    ", ".join(f"`{p}`" for p in stage) + ") and the classifier head")
        except Exception:  # noqa: BLE001 - an unknown model name: still say what the rule is
            return "the seed's rule: everything frozen except the last stage and the classifier"
    return rule


def precision(run: Run) -> str:
    p = str(run.cfg("trainer.precision", "auto"))
    if p != "auto":
        return p
    return "auto (bf16/fp16 mixed on GPU, fp32 on CPU): " + ("GPU" if run.meta.get("gpu") else "fp32 (CPU)")


def epochs_trained(run: Run) -> str:
    configured = run.cfg("trainer.epochs")
    trained = [row for row in run.epochs if isinstance(row.get("epoch"), (int, float)) and row["epoch"] >= 1]
    if trained and configured and len(trained) != configured:
        return f"{len(trained)} of {configured} (unfinished?)"
    return str(configured if configured is not None else len(trained) or "?")
