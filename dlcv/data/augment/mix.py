"""MixUp (Zhang et al. 2018) and CutMix (Yun et al. 2019) on a whole batch, with soft targets.

Semantics of torchvision.transforms.v2 `MixUp` / `CutMix`: one mixing weight lam ~ Beta(alpha,
alpha) per batch, each image mixed with its neighbour in the batch (`roll(1)`), targets mixed with
the same weight. MixUp: x = lam * x + (1 - lam) * x_rolled. CutMix: a box of area (1 - lam) * H * W
(centre uniform, clipped at the border) is pasted from the rolled batch, and lam is then corrected
to the area actually kept, 1 - box area / (H * W). When both are on, one of them is chosen per
batch (`switch_prob` = the chance of CutMix), as timm's Mixup does.

Every random number comes from the caller's generator (through one drawn seed for the Beta
draw, which torch cannot take from a generator), so exact resume stays exact.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def _seeded_rng(generator: torch.Generator) -> np.random.Generator:
    seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device).item())
    return np.random.default_rng(seed)


def soft_targets(y: torch.Tensor, num_classes: int) -> torch.Tensor:
    return F.one_hot(y, num_classes).float() if y.dim() == 1 else y.float()


def _blend(a: torch.Tensor, lam: float) -> torch.Tensor:
    """lam * a + (1 - lam) * a rolled by one sample (two products and a sum, as torchvision rounds)."""
    return a.roll(1, 0).mul_(1.0 - lam).add_(a.mul(lam))


def mixup(x: torch.Tensor, targets: torch.Tensor, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    return _blend(x, lam), _blend(targets, lam)


def cutmix_box(height: int, width: int, lam: float, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) of a box of area about (1 - lam) * H * W around a uniform centre,
    clipped at the image border (torchvision's rule)."""
    cy, cx = int(rng.integers(0, height)), int(rng.integers(0, width))
    ratio = 0.5 * float(np.sqrt(1.0 - lam))
    half_h, half_w = int(ratio * height), int(ratio * width)
    return max(cy - half_h, 0), max(cx - half_w, 0), min(cy + half_h, height), min(cx + half_w, width)


def cutmix(x: torch.Tensor, targets: torch.Tensor, box: tuple[int, int, int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    top, left, bottom, right = box
    x = x.clone()
    x[..., top:bottom, left:right] = x.roll(1, 0)[..., top:bottom, left:right]
    kept = 1.0 - (bottom - top) * (right - left) / (x.shape[-2] * x.shape[-1])
    return x, _blend(targets, kept)


def mix_batch(x: torch.Tensor, y: torch.Tensor, num_classes: int, generator: torch.Generator,
              mixup_alpha: float = 0.0, cutmix_alpha: float = 0.0, prob: float = 1.0,
              switch_prob: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """(images, soft targets (N, num_classes)) of a float batch and its labels; with probability
    1 - prob (or both alphas 0) the batch is unchanged and the targets are one-hot."""
    targets = soft_targets(y, num_classes)
    rng = _seeded_rng(generator)  # drawn whatever happens: the stream never depends on the outcome
    use_cutmix = cutmix_alpha > 0 and (mixup_alpha <= 0 or rng.random() < switch_prob)
    alpha = cutmix_alpha if use_cutmix else mixup_alpha
    if alpha <= 0 or rng.random() >= prob:
        return x, targets
    lam = float(rng.beta(alpha, alpha))
    if use_cutmix:
        return cutmix(x, targets, cutmix_box(x.shape[-2], x.shape[-1], lam, rng))
    return mixup(x, targets, lam)


def describe_mix(mix_cfg) -> str:
    """What mix_batch does with a MixConfig, in one phrase (for the report); "" when off."""
    parts = []
    if mix_cfg.mixup_alpha > 0:
        parts.append(f"MixUp (lam ~ Beta({mix_cfg.mixup_alpha:g}, {mix_cfg.mixup_alpha:g}))")
    if mix_cfg.cutmix_alpha > 0:
        parts.append(f"CutMix (lam ~ Beta({mix_cfg.cutmix_alpha:g}, {mix_cfg.cutmix_alpha:g}))")
    if not parts:
        return ""
    text = " or ".join(parts)
    if len(parts) == 2:
        text += f" (CutMix with p {mix_cfg.switch_prob:g})"
    return text + f" on a batch with p {mix_cfg.prob:g}, soft targets"
