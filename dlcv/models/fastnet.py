"""An airbench-style small CNN for the fast P1 A recipe (configs/p1/fast_a.yaml).

After Keller Jordan's airbench (CIFAR-10 to 94% in 3.3 s on an A100; github.com/KellerJordan/cifar10-airbench)
and Page's ResNet-9 before it: a 3x3 stem, then three blocks of conv -> 2x2 max-pool -> BN -> GELU ->
conv -> BN -> GELU, halving the resolution each time (32 -> 16 -> 8 -> 4), then a global max-pool. All
the compute sits at low resolution and in a few wide layers, which is what a large batch and a
short, high-LR schedule need. Differences from airbench94: a 3x3 learned stem instead of its
data-dependent 2x2 whitening layer, BatchNorm with learned scale (airbench freezes it at 1), torch's
default initialisation (airbench's identity init of the convolutions is left out), and the widths
scale with one number (`width` = the first block's channels; the others are 4x: airbench94 is
width 64: 64-256-256).

Plain PyTorch only: the graded scripts rebuild it under the course's packages.
"""
from __future__ import annotations

import torch
from torch import nn

BN_MOMENTUM = 0.4  # airbench's 0.6 in its own convention: running statistics settle within a few steps


def _conv_bn(c_in: int, c_out: int, pool: bool) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)]
    if pool:
        layers.append(nn.MaxPool2d(2))  # pool before the norm: the norm and GELU run on 1/4 of the pixels
    return layers + [nn.BatchNorm2d(c_out, momentum=BN_MOMENTUM), nn.GELU()]


class FastNet(nn.Module):
    """stem (3x3 conv, BN, GELU) -> 3 x [conv, max-pool, BN, GELU, conv, BN, GELU] -> global max-pool.
    `features` = the pooled channels of the last block (the penultimate layer)."""

    def __init__(self, width: int = 64, stem: int = 0):
        super().__init__()
        stem = stem or max(8, width // 2)
        widths = (width, 4 * width, 4 * width)
        self.stem = nn.Sequential(*_conv_bn(3, stem, pool=False))
        blocks, c_in = [], stem
        for c in widths:
            blocks.append(nn.Sequential(*_conv_bn(c_in, c, pool=True), *_conv_bn(c, c, pool=False)))
            c_in = c
        self.blocks = nn.Sequential(*blocks)
        self.num_features = widths[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x))
        return torch.amax(x, dim=(-2, -1))  # global max-pool (airbench): the strongest response per channel


def fastnet_layer_id(name: str) -> tuple:
    """stem < blocks.0 < blocks.1 < blocks.2 < the head (for layer-wise LR decay)."""
    if name.startswith("backbone.stem."):
        return (0,)
    if name.startswith("backbone.blocks."):
        return (1 + int(name.split(".")[2]),)
    return (100,)


def describe_fastnet(width: int, head: str) -> str:
    stem = max(8, width // 2)
    return (f"airbench-style CNN: 3×3 stem ({stem} channels), 3 blocks of [conv, 2×2 max-pool, BN, GELU, conv, BN, "
            f"GELU] with {width}-{4 * width}-{4 * width} channels (32→16→8→4 px), global max-pool, {head}")
