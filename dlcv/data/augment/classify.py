"""The classifiers' training augmentations (`augment:` in a classification config), one registry.

Each entry holds the parameters it runs with and renders its own description from them, so the
report states exactly what trained (change a number here and the report changes with it).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

import torch

from dlcv.data.augment.autoaugment import RandAugment, TrivialAugmentWide
from dlcv.data.augment.geometric import pad_crop_flip, random_resized_crop_flip
from dlcv.data.augment.photometric import color_jitter


@dataclass(frozen=True)
class Jitter:
    """RandomApply([ColorJitter(brightness, contrast, saturation, hue)], p), drawn per sample."""
    brightness: float = 0.3
    contrast: float = 0.3
    saturation: float = 0.3
    hue: float = 0.05
    p: float = 0.8

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return color_jitter(x, generator, self.brightness, self.contrast, self.saturation, self.hue, p=self.p)

    def describe(self) -> str:
        return (f"colour jitter (brightness {self.brightness:g}, contrast {self.contrast:g}, "
                f"saturation {self.saturation:g}, hue {self.hue:g}; p {self.p:g})")


@dataclass(frozen=True)
class ClassifyAugment:
    """Geometry (none | pad-and-crop | random resized crop, each with a horizontal flip), then an
    optional automatic policy (TrivialAugmentWide or RandAugment, as torchvision's CIFAR/ImageNet
    recipes place it: after crop and flip), then an optional colour jitter; every sample draws its
    own parameters."""
    crop: str = "none"  # none | pad | rrc
    pad_fraction: float = 1 / 8  # crop == "pad": zero-pad this fraction of the side (CIFAR: 4 px of 32)
    rrc_area: tuple[float, float] = (0.35, 1.0)  # crop == "rrc": the crop's area as a fraction of the image
    flip_p: float = 0.5
    jitter: Optional[Jitter] = None
    auto: Optional[Union[TrivialAugmentWide, RandAugment]] = None

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """x: float images in [0, 1], (N, C, H, W)."""
        if self.crop == "pad":
            x = pad_crop_flip(x, generator, pad=max(1, int(x.shape[-1] * self.pad_fraction)), flip_p=self.flip_p)
        elif self.crop == "rrc":
            x = random_resized_crop_flip(x, tuple(x.shape[-2:]), generator, scale=self.rrc_area, flip_p=self.flip_p)
        if self.auto is not None:
            x = self.auto(x, generator)
        return self.jitter(x, generator) if self.jitter is not None else x

    def describe(self) -> str:
        flip = f"horizontal flip p {self.flip_p:g}"
        parts = {"none": [],
                 "pad": [f"zero-pad {self.pad_fraction:g} of the side + random crop back, {flip}"],
                 "rrc": [f"random resized crop (area {self.rrc_area[0]:g}-{self.rrc_area[1]:g}), {flip}"]}[self.crop]
        if self.auto is not None:
            parts.append(self.auto.describe())
        if self.jitter is not None:
            parts.append(self.jitter.describe())
        return "; ".join(parts) + " (drawn per sample)" if parts else "none"


AUGMENTS: dict[str, ClassifyAugment] = {
    "none": ClassifyAugment(),
    "crop": ClassifyAugment("pad", flip_p=0.0),  # translation only: for images whose mirror is not the same class
    "crop_flip": ClassifyAugment("pad"),  # the CIFAR recipe
    "crop_flip_jitter": ClassifyAugment("pad", jitter=Jitter()),
    "rrc_flip": ClassifyAugment("rrc"),
    "rrc_flip_jitter": ClassifyAugment("rrc", jitter=Jitter()),
    # torchvision's classification references: crop + flip, then TrivialAugmentWide / RandAugment(2, 9)
    "crop_flip_ta": ClassifyAugment("pad", auto=TrivialAugmentWide()),
    "crop_flip_ra": ClassifyAugment("pad", auto=RandAugment()),
    "rrc_flip_ta": ClassifyAugment("rrc", auto=TrivialAugmentWide()),
}


def classify_augment(name: str) -> ClassifyAugment:
    if name not in AUGMENTS:
        raise ValueError(f"unknown augment {name!r}; known: {', '.join(AUGMENTS)}")
    return AUGMENTS[name]
