"""What every augmentation shares: sizes, random draws from the caller's generator, per-sample selection."""
from __future__ import annotations

from typing import Sequence, Union

import torch

Size = Union[int, Sequence[int]]


def _pair(size: Size) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    h, w = size
    return int(h), int(w)


def _check_batch(x: torch.Tensor, generator: torch.Generator) -> None:
    if x.dim() != 4 or not x.is_floating_point():
        raise ValueError(f"expected a float batch (N, C, H, W), got {tuple(x.shape)} {x.dtype}")
    if generator.device.type != x.device.type:
        raise ValueError(f"generator is on {generator.device} but the batch is on {x.device}; "
                         "create the generator on the batch's device")


def _check_rgb(x: torch.Tensor, what: str) -> None:
    if x.shape[1] != 3:
        raise ValueError(f"{what} needs RGB images (C=3), got C={x.shape[1]}")


def _rand(shape, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """Uniform [0, 1) float32 numbers; float32 whatever x's dtype, so the stream is dtype-free."""
    return torch.rand(shape, generator=generator, device=device, dtype=torch.float32)


def _uniform(shape, low: float, high: float, generator, device) -> torch.Tensor:
    return low + (high - low) * _rand(shape, generator, device)


def _coin(n: int, p: float, generator, device) -> torch.Tensor:
    """Per-sample Bernoulli(p) as a bool (n,) tensor."""
    return _rand(n, generator, device) < p


def _select(apply: torch.Tensor, changed: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    """Per sample: `changed` where apply[i] else `original`."""
    return torch.where(apply.view(-1, *([1] * (original.dim() - 1))), changed, original)


def _per_sample(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A (N,) vector shaped (N, 1, 1, 1) in like's dtype, to broadcast over an image batch."""
    return v.to(like.dtype).view(-1, 1, 1, 1)
