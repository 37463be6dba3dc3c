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


@torch.inference_mode()
def predict_logits(segmenter: nn.Module, x: torch.Tensor, tta: bool = False) -> torch.Tensor:
    """Class scores for a batch (uint8 or [0, 1] float, on the segmenter's device).

    tta=False: the logits. tta=True: the mean softmax of the image, its horizontal mirror and its
    vertical mirror, each mapped back (the training augmentation flips both ways): 3 forward passes.
    """
    return flip_tta_probabilities(segmenter, x, (-1, -2), dense=True) if tta else segmenter(x)
