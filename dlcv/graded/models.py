"""Inference models from a model.pt, with torch alone: the classifier of P1/P2, the segmenter of P3.

A model.pt holds the resolved training config as a plain dict and the training module's
state_dict (keys `model.*` for classifiers, `segmenter.*` for segmenters). The model is rebuilt
from the config's `model` section with the same builders training uses (dlcv.models), so the
graded scripts and training can never disagree about an architecture; the config is read as
plain values here because the graded environment has no OmegaConf.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dlcv.errors import CheckpointError
from dlcv.io import load_weights


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _section(config: dict, name: str) -> dict:
    value = config.get(name)
    if not isinstance(value, dict):
        raise CheckpointError(f"the checkpoint's config has no {name!r} section: not a dlcv model.pt")
    return value


def _load_under(module: nn.Module, attribute: str, state_dict: dict, source: str) -> nn.Module:
    """Load a training module's state_dict (its keys are `<attribute>.*`) into `module`; any other
    key is reported as unexpected, any absent one as missing."""
    prefix = attribute + "."
    load_weights(module, {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in state_dict.items()}, source)
    return module


def _device_format(module: nn.Module, config: dict, device: torch.device) -> tuple[nn.Module, bool]:
    channels_last = bool(config.get("trainer", {}).get("channels_last", False))
    module = module.to(device).eval()
    return (module.to(memory_format=torch.channels_last) if channels_last else module), channels_last


def load_classifier(config: dict, state_dict: dict, device: torch.device, source: str = "checkpoint"):
    """(Classifier in eval mode on `device`, channels_last) of a P1/P2 model.pt. Pretrained files
    are never read again: the weights are in the checkpoint."""
    from dlcv.models.classifier_config import ModelConfig
    from dlcv.models.classifiers import build_classifier

    model_cfg = ModelConfig.from_dict({**_section(config, "model"), "pretrained": "none"})
    model = _load_under(build_classifier(model_cfg), "model", state_dict, source)
    return _device_format(model, config, device)


def load_segmenter(config: dict, state_dict: dict, device: torch.device, source: str = "checkpoint"):
    """(Segmenter in eval mode on `device`, channels_last) of a P3 model.pt."""
    from dlcv.data.masks import NUM_CLASSES
    from dlcv.models.segmentation import build_segmenter

    if config.get("task") != "segment":
        raise CheckpointError(f"not a segmentation checkpoint (its task is {config.get('task')!r}); "
                              f"hw1_3.sh needs the model.pt of a `dlcv train configs/p3/...` run")
    model = _section(config, "model")
    segmenter = build_segmenter(model["name"], NUM_CLASSES, "none", aux_loss=model.get("aux_loss_weight", 0) > 0,
                                dropout=model.get("dropout", 0.5))
    return _device_format(_load_under(segmenter, "segmenter", state_dict, source), config, device)


def flip_tta_probabilities(model: nn.Module, x: torch.Tensor, dims: tuple[int, ...], dense: bool) -> torch.Tensor:
    """Flip test-time augmentation: the mean softmax over the image and its mirror along each of
    `dims`. dense=True: the output is a per-pixel map, flipped back into the image's frame (a flip
    is its own inverse); dense=False: per-image scores, which a mirror does not move."""
    probs = model(x).float().softmax(1)
    for dim in dims:
        mirrored = model(x.flip(dim)).float().softmax(1)
        probs += mirrored.flip(dim) if dense else mirrored
    return probs / (1 + len(dims))


@torch.inference_mode()
def predict_labels(config: dict, state_dict: dict, images: np.ndarray, batch_size: int = 256,
                   device: str = "auto", source: str = "checkpoint", tta: bool = False) -> np.ndarray:
    """Class ids for uint8 (N,3,H,W) images, batched. tta: mean softmax of the image and its
    horizontal mirror (the training augmentations flip horizontally only)."""
    dev = pick_device(device)
    model, channels_last = load_classifier(config, state_dict, dev, source)
    out = []
    with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
        for i in range(0, len(images), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(images[i:i + batch_size])).to(dev, non_blocking=True)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            scores = flip_tta_probabilities(model, x, (-1,), dense=False) if tta else model(x)
            out.append(scores.argmax(1).cpu())
    return torch.cat(out).numpy()


# ------------------------------------------------------------------ P3 test-time augmentation
TTA_MODES = ("none", "flip", "multiscale", "flip_multiscale")
DEFAULT_TTA_SCALES = (0.75, 1.0, 1.25)


def tta_views(mode: str, scales=DEFAULT_TTA_SCALES) -> list[tuple[float, int | None]]:
    """(scale, flipped dim or None) of each forward pass of a P3 TTA mode, in the order they run:
    flip = the image and its horizontal and vertical mirrors (the training augmentation flips both
    ways); multiscale = the image at each of `scales`; flip_multiscale = both (3 x len(scales))."""
    if mode not in TTA_MODES:
        raise ValueError(f"unknown TTA mode {mode!r}; known: {', '.join(TTA_MODES)}")
    flips = (None, -1, -2) if "flip" in mode else (None,)
    sizes = tuple(float(s) for s in scales) if "multiscale" in mode else (1.0,)
    if not sizes or min(sizes) <= 0:
        raise ValueError(f"TTA scales must be positive numbers, got {list(scales)}")
    return [(s, d) for s in sizes for d in flips]


def tta_cost(mode: str, scales=DEFAULT_TTA_SCALES) -> float:
    """Compute of a TTA mode in plain forward passes (a pass at scale s costs about s^2)."""
    return sum(s * s for s, _ in tta_views(mode, scales))


def describe_tta(mode: str, scales=DEFAULT_TTA_SCALES) -> str:
    """`flip_multiscale` -> 'flips (h, v) x scales 0.75/1/1.25: 9 passes, ~9.4x the compute'."""
    if mode == "none":
        return "none"
    parts = ["flips (h, v)"] if "flip" in mode else []
    if "multiscale" in mode:
        parts.append("scales " + "/".join(f"{float(s):g}" for s in scales))
    n, cost = len(tta_views(mode, scales)), tta_cost(mode, scales)
    return f"{' x '.join(parts)}: {n} passes, ~{cost:.3g}x the compute; mean softmax"


def _resized(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """x at `size` (bilinear, align_corners=False, no antialiasing: the training zoom's resampling);
    uint8 images become [0, 1] floats, which the Segmenter takes as well."""
    if tuple(x.shape[-2:]) == size:
        return x
    x = x if x.is_floating_point() else x.float().div(255)
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def segment_scores(segmenter: nn.Module, x: torch.Tensor, mode: str = "none",
                   scales=DEFAULT_TTA_SCALES) -> torch.Tensor:
    """Per-pixel class scores (N,C,H,W) of a batch (uint8 or [0, 1] float) for a P3 TTA mode.

    none: the logits (one pass). Otherwise the mean softmax over the views of :func:`tta_views`,
    each mapped back to the input's frame first: a view at scale s sees the image resized to
    round(s*H) x round(s*W) and its logits are resized back to H x W (bilinear) before the
    softmax; a mirrored view's logits are mirrored back (a flip is its own inverse). The softmax
    is taken in float32 whatever the autocast dtype.
    """
    if mode == "none":
        return segmenter(x)
    size = (int(x.shape[-2]), int(x.shape[-1]))
    views = tta_views(mode, scales)
    total = None
    for scale, dim in views:
        xs = _resized(x, tuple(max(1, round(n * scale)) for n in size))
        logits = segmenter(xs if dim is None else xs.flip(dim))
        logits = (logits if dim is None else logits.flip(dim)).float()
        if tuple(logits.shape[-2:]) != size:
            logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        probs = logits.softmax(1)
        total = probs if total is None else total.add_(probs)
    return total.div_(len(views))


@torch.inference_mode()
def predict_logits(segmenter: nn.Module, x: torch.Tensor, tta: bool | str = False,
                   scales=DEFAULT_TTA_SCALES) -> torch.Tensor:
    """Class scores for a batch (uint8 or [0, 1] float, on the segmenter's device).

    tta: False / "none": the logits. True / "flip": the mean softmax of the image, its horizontal
    mirror and its vertical mirror, each mapped back: 3 forward passes. "multiscale" /
    "flip_multiscale": see :func:`segment_scores` (``scales``).
    """
    mode = ("flip" if tta else "none") if isinstance(tta, bool) else str(tta)
    return segment_scores(segmenter, x, mode, scales)
