"""BYOL's two views (Grill et al. 2020, Table 6), drawn independently per sample."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from dlcv.data.augment._draw import Size, _check_rgb
from dlcv.data.augment.geometric import random_resized_crop_flip
from dlcv.data.augment.photometric import color_jitter, gaussian_blur, random_grayscale, solarize


@dataclass(frozen=True)
class ByolAugmentConfig:
    """The BYOL paper's two augmentation pipelines (Grill et al. 2020, Table 6).

    Each pair is (view 1, view 2). Both views: random resized crop + flip, colour jitter with
    probability 0.8, grayscale with 0.2; they differ in blur (1.0 vs 0.1) and solarize (0 vs 0.2).
    blur_sigma is in pixels of the VIEW: the paper's 0.1-2.0 are for 224 px views; smaller views
    blur the same share of the object with sigma x size / 224 (`scaled_blur_sigma`).
    """
    jitter_p: tuple[float, float] = (0.8, 0.8)
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.2
    hue: float = 0.1
    grayscale_p: tuple[float, float] = (0.2, 0.2)
    blur_p: tuple[float, float] = (1.0, 0.1)
    solarize_p: tuple[float, float] = (0.0, 0.2)
    blur_sigma: tuple[float, float] = (0.1, 2.0)


def scaled_blur_sigma(view_size: int, paper: tuple[float, float] = (0.1, 2.0)) -> tuple[float, float]:
    """The paper's blur sigma range for 224 px views, scaled to `view_size` px views."""
    return tuple(round(s * view_size / 224, 3) for s in paper)


def _byol_view(x: torch.Tensor, generator: torch.Generator, out_size: Size,
               crop_scale: tuple[float, float], cfg: ByolAugmentConfig, view: int) -> torch.Tensor:
    v = random_resized_crop_flip(x, out_size, generator, scale=crop_scale)
    v = color_jitter(v, generator, cfg.brightness, cfg.contrast, cfg.saturation, cfg.hue,
                     p=cfg.jitter_p[view])
    v = random_grayscale(v, generator, p=cfg.grayscale_p[view])
    v = gaussian_blur(v, generator, p=cfg.blur_p[view], sigma=cfg.blur_sigma)
    return solarize(v, generator, p=cfg.solarize_p[view])


def byol_views(x: torch.Tensor, generator: torch.Generator, out_size: Size = 128,
               crop_scale: tuple[float, float] = (0.08, 1.0),
               config: ByolAugmentConfig = ByolAugmentConfig()) -> tuple[torch.Tensor, torch.Tensor]:
    """Two augmented views (v1, v2) of an RGB batch for BYOL, drawn independently per sample.

    The views come from the paper's asymmetric pipelines (see ByolAugmentConfig); they are
    drawn one after the other from the same generator, so they are independent of each other.
    The result is in [0, 1]; normalisation (e.g. ImageNet mean/std) is the caller's step.
    Differences from the paper: bilinear instead of bicubic resizing, fixed jitter order.
    """
    _check_rgb(x, "byol_views")
    v1 = _byol_view(x, generator, out_size, crop_scale, config, 0)
    v2 = _byol_view(x, generator, out_size, crop_scale, config, 1)
    return v1, v2
