"""Resolved-config values as the short phrases the report's implementation tables show."""
from __future__ import annotations

from dlcv.report.runs import Run

CLASSIFY_AUGMENT = {
    "none": "none",
    "crop_flip": "pad 1/8 of the side + random crop, horizontal flip (drawn per sample)",
    "crop_flip_jitter": "pad 1/8 + random crop, horizontal flip, colour jitter (0.3/0.3/0.3, hue 0.05, p 0.8)",
    "rrc_flip": "random resized crop (area 0.35-1), horizontal flip (drawn per sample)",
    "rrc_flip_jitter": "random resized crop (area 0.35-1), horizontal flip, colour jitter (p 0.8)",
}

MODEL_TEXT = {
    "seed_a": "the seed's CNN: 2 conv blocks (3→32→64, 3×3, ReLU, 2×2 max-pool), FC 128 + ReLU, dropout 0.25, FC 50",
    "resnet18_cifar": "CIFAR-style ResNet-18 (3×3 stride-1 stem, no max-pool), global average pool, FC 50",
    "efficientnet_lite0": "EfficientNet-Lite0 (timm's architecture, plain PyTorch), classifier replaced by FC to the classes",
    "resnet18": "torchvision ResNet-18, fc replaced by the shared head",
    "resnet50": "torchvision ResNet-50, fc replaced by the shared head",
    "fcn32s": "VGG16-FCN32s: VGG16 conv1-5 + pools, fc6/fc7 as convolutions, 1×1 score, one 32× transposed conv",
    "deeplabv3_resnet50": "DeepLabv3 with a dilated ResNet-50 (output stride 8), ASPP head, bilinear upsampling",
}


def model(run: Run) -> str:
    name = str(run.cfg("model.name", "") or run.cfg("model.backbone", "") or "?")
    width = run.cfg("model.width", 0) or 0
    if name == "resnet18_cifar" and width and width != 64:
        return f"{MODEL_TEXT[name]}; width {width} (stages {width}-{8 * width} channels; the standard is 64-512)"
    if name.startswith("convnext_"):
        return f"torchvision ConvNeXt-{name.split('_', 1)[1].capitalize()}, classifier replaced by FC to the classes"
    return MODEL_TEXT.get(name, name)


def optimizer(run: Run) -> str:
    o = run.cfg("optim", {}) or {}
    name = str(o.get("name", "?"))
    parts = [f"lr {o.get('lr'):g}" if isinstance(o.get("lr"), (int, float)) else "lr ?"]
    if name in ("adam", "adamw") and o.get("betas"):
        parts.append("betas " + "/".join(f"{b:g}" for b in o["betas"]))
    if name in ("sgd", "lars") and o.get("momentum") is not None:
        parts.append(f"momentum {o['momentum']:g}")
    if o.get("weight_decay"):
        parts.append(f"weight decay {o['weight_decay']:g}")
    if name == "lars" and o.get("lars_eta") is not None:
        parts.append(f"trust coefficient {o['lars_eta']:g}, no decay/adaptation on biases and norms")
    label = {"adam": "Adam", "adamw": "AdamW", "sgd": "SGD", "lars": "LARS"}.get(name, name)
    return f"{label} ({', '.join(parts)})"


def schedule(run: Run) -> str:
    o = run.cfg("optim", {}) or {}
    kind = str(o.get("schedule", "constant"))
    epochs = run.cfg("trainer.epochs")
    warm = o.get("warmup_epochs") or 0
    warm_text = f", linear warm-up {warm:g} epoch{'s' if warm != 1 else ''}" if warm else ""
    if kind == "cosine":
        floor = o.get("min_lr_ratio") or 0
        return f"cosine per step over {epochs} epochs down to {floor:g}× lr{warm_text}"
    if kind == "step":
        return f"×{o.get('step_gamma', 0.1):g} at epochs {', '.join(str(e) for e in o.get('step_epochs') or [])}{warm_text}"
    return f"constant{warm_text}"


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
        a = str(run.cfg("augment", "none"))
        return CLASSIFY_AUGMENT.get(a, a)
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
                f"p {pair('jitter_p')}; grayscale p {pair('grayscale_p')}; Gaussian blur p {pair('blur_p')}; "
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
    if rule == "seed":
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
