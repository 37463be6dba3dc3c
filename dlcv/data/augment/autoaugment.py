"""TrivialAugmentWide (Müller & Hutter 2021) and RandAugment (Cubuk et al. 2020) on a whole batch,
drawn per sample, with the semantics of torchvision.transforms.v2 (its op lists, magnitude bins,
signs, nearest interpolation and zero fill), output for output on uint8 images.

Why batched per op rather than torchvision's transform per image: a Python loop over 128 images
costs a few kernel launches per image (slow on a GPU, where these recipes train). Here every
sample draws its op, magnitude bin and sign from the caller's generator; the samples are then
grouped by kernel (one affine warp for all shear/translate/rotate samples, one call per colour
op) and each kernel runs once on its group with per-sample parameters.

Why a parameter table: torchvision turns a magnitude into an op argument in Python doubles
(e.g. the inverse affine matrix, `1.0 + magnitude`, `255 * magnitude`) and casts it to float32
inside the op. The table (op x bin x sign) holds exactly those float32 arguments, computed once
per image size the same way, so a batched kernel sees the numbers torchvision would use.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import functional as TF

from dlcv.data.augment._draw import _check_batch, _rand

Magnitudes = Optional[Callable[[int, int, int], torch.Tensor]]


def _lin(low: float, high: float) -> Callable[[int, int, int], torch.Tensor]:
    return lambda bins, h, w: torch.linspace(low, high, bins)


def _posterize(top: int, span: int) -> Callable[[int, int, int], torch.Tensor]:
    return lambda bins, h, w: (top - (torch.arange(bins) / ((bins - 1) / span))).round().int()


# name -> (magnitudes(bins, height, width) or None, signed): torchvision v2's spaces, in its order
# (the op index drawn below indexes these keys, as torchvision's _get_random_item does)
TRIVIAL_AUGMENT_WIDE_SPACE: dict[str, tuple[Magnitudes, bool]] = {
    "Identity": (None, False),
    "ShearX": (_lin(0.0, 0.99), True),
    "ShearY": (_lin(0.0, 0.99), True),
    "TranslateX": (_lin(0.0, 32.0), True),
    "TranslateY": (_lin(0.0, 32.0), True),
    "Rotate": (_lin(0.0, 135.0), True),
    "Brightness": (_lin(0.0, 0.99), True),
    "Color": (_lin(0.0, 0.99), True),
    "Contrast": (_lin(0.0, 0.99), True),
    "Sharpness": (_lin(0.0, 0.99), True),
    "Posterize": (_posterize(8, 6), False),
    "Solarize": (_lin(1.0, 0.0), False),
    "AutoContrast": (None, False),
    "Equalize": (None, False),
}

RANDAUGMENT_SPACE: dict[str, tuple[Magnitudes, bool]] = {
    **TRIVIAL_AUGMENT_WIDE_SPACE,
    "ShearX": (_lin(0.0, 0.3), True),
    "ShearY": (_lin(0.0, 0.3), True),
    "TranslateX": (lambda bins, h, w: torch.linspace(0.0, 150.0 / 331.0 * w, bins), True),
    "TranslateY": (lambda bins, h, w: torch.linspace(0.0, 150.0 / 331.0 * h, bins), True),
    "Rotate": (_lin(0.0, 30.0), True),
    "Brightness": (_lin(0.0, 0.9), True),
    "Color": (_lin(0.0, 0.9), True),
    "Contrast": (_lin(0.0, 0.9), True),
    "Sharpness": (_lin(0.0, 0.9), True),
    "Posterize": (_posterize(8, 4), False),
}

SPACES = {"trivial_augment_wide": TRIVIAL_AUGMENT_WIDE_SPACE, "randaugment": RANDAUGMENT_SPACE}
AFFINE = ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate")
# rotate's fast paths in torchvision (no warp): slot 6 of a Rotate row
_FAST_NONE, _FAST_COPY, _FAST_ROT180, _FAST_ROT90, _FAST_ROT270 = range(5)


# ---------------------------------------------------------------------------- the op arguments

def inverse_affine_matrix(center, angle, translate, shear) -> list[float]:
    """torchvision's _get_inverse_affine_matrix at scale 1, the same double arithmetic in the same
    order (so the float32 matrix it becomes is the same)."""
    rot, sx, sy = math.radians(angle), math.radians(shear[0]), math.radians(shear[1])
    cx, cy = center
    tx, ty = translate
    cos_sy, tan_sx = math.cos(sy), math.tan(sx)
    rot_minus_sy, cx_plus_tx, cy_plus_ty = rot - sy, cx + tx, cy + ty
    a = math.cos(rot_minus_sy) / cos_sy
    b = -(a * tan_sx + math.sin(rot))
    c = math.sin(rot_minus_sy) / cos_sy
    d = math.cos(rot) - c * tan_sx
    matrix = [d / 1.0, -b / 1.0, 0.0, -c / 1.0, a / 1.0, 0.0]
    matrix[2] += cx - matrix[0] * cx_plus_tx - matrix[1] * cy_plus_ty
    matrix[5] += cy - matrix[3] * cx_plus_tx - matrix[4] * cy_plus_ty
    return matrix


def _affine_row(op: str, m: float, h: int, w: int) -> list[float]:
    """The 6 matrix entries torchvision's F.affine / F.rotate build for op at magnitude m, and the
    rotate fast path it takes instead (square images turn by 90 degrees without a warp)."""
    corner = [-w * 0.5, -h * 0.5]  # center=[0, 0] (the top-left pixel), in torchvision's frame
    if op == "ShearX":
        return inverse_affine_matrix(corner, 0.0, [0.0, 0.0], [math.degrees(math.atan(m)), 0.0]) + [_FAST_NONE]
    if op == "ShearY":
        return inverse_affine_matrix(corner, 0.0, [0.0, 0.0], [0.0, math.degrees(math.atan(m))]) + [_FAST_NONE]
    if op in ("TranslateX", "TranslateY"):
        shift = [float(int(m)), 0.0] if op == "TranslateX" else [0.0, float(int(m))]
        return inverse_affine_matrix([0.0, 0.0], 0.0, shift, [0.0, 0.0]) + [_FAST_NONE]
    angle = m % 360  # Rotate, as F.rotate (whose matrix turns the other way than F.affine's)
    fast = {0: _FAST_COPY, 180: _FAST_ROT180}.get(angle, _FAST_NONE)
    if h == w and angle in (90, 270):
        fast = _FAST_ROT90 if angle == 90 else _FAST_ROT270
    return inverse_affine_matrix([0.0, 0.0], -angle, [0.0, 0.0], [0.0, 0.0]) + [fast]


def _op_row(op: str, m: float, h: int, w: int) -> list[float]:
    """What the op's kernel reads, as torchvision computes it from the magnitude (8 slots)."""
    if op in AFFINE:
        row = _affine_row(op, m, h, w)
    elif op == "Brightness":
        row = [1.0 + m]
    elif op in ("Color", "Contrast", "Sharpness"):
        row = [1.0 + m, 1.0 - (1.0 + m)]  # the factor and _blend's alpha, both from doubles
    elif op == "Posterize":
        row = [float(int(m))]
    elif op == "Solarize":
        row = [255 * m]  # bound * magnitude
    else:
        row = []
    return row + [0.0] * (8 - len(row))


@lru_cache(maxsize=32)
def op_table(space: str, bins: int, height: int, width: int) -> torch.Tensor:
    """(ops, bins, 2, 8) float32: the arguments of op i at magnitude bin b with sign s (0: +, 1: -)."""
    rows = []
    for op, (magnitudes, signed) in SPACES[space].items():
        values = magnitudes(bins, height, width) if magnitudes is not None else None
        per_bin = []
        for b in range(bins):
            m = float(values[b]) if values is not None else 0.0
            per_bin.append([_op_row(op, m, height, width), _op_row(op, -m if signed else m, height, width)])
        rows.append(per_bin)
    return torch.tensor(rows, dtype=torch.float32)


# ---------------------------------------------------------------------------- batched kernels (uint8)

def _affine(x: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """torchvision's _affine_grid + _apply_grid_transform (nearest, zero fill), one matrix per sample."""
    n, _, h, w = x.shape
    theta = p[:, :6].reshape(n, 2, 3)
    base = torch.empty(1, h, w, 3, dtype=torch.float32, device=x.device)
    base[..., 0].copy_(torch.linspace((1.0 - w) * 0.5, (w - 1.0) * 0.5, steps=w, device=x.device))
    base[..., 1].copy_(torch.linspace((1.0 - h) * 0.5, (h - 1.0) * 0.5, steps=h, device=x.device).unsqueeze_(-1))
    base[..., 2].fill_(1)
    scaled = theta.transpose(1, 2).div(torch.tensor([0.5 * w, 0.5 * h], device=x.device))
    grid = base.view(1, h * w, 3).expand(n, -1, -1).bmm(scaled).view(n, h, w, 2)
    out = F.grid_sample(x.float(), grid, mode="nearest", padding_mode="zeros", align_corners=False)
    out = out.round_().to(x.dtype)
    fast = p[:, 6].long().view(-1, 1, 1, 1)
    turns = [(_FAST_COPY, 0), (_FAST_ROT180, 2)] + ([(_FAST_ROT90, 1), (_FAST_ROT270, 3)] if h == w else [])
    for code, k in turns:  # torch.where, not indexing: no host sync on a GPU
        out = torch.where(fast == code, torch.rot90(x, k, (-2, -1)), out)
    return out


def _col(v: torch.Tensor) -> torch.Tensor:
    return v.view(-1, 1, 1, 1)


def _blend(x: torch.Tensor, other: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """torchvision's _blend: x * ratio + other * (1 - ratio) (one fused multiply-add, as add_ with
    alpha), clamped, truncated to uint8."""
    return torch.addcmul(x.float() * _col(p[:, 0]), other, _col(p[:, 1])).clamp_(0, 255).to(x.dtype)


def _gray(x: torch.Tensor) -> torch.Tensor:
    r, g, b = x.unbind(dim=-3)
    return r.mul(0.2989).add_(g, alpha=0.587).add_(b, alpha=0.114).unsqueeze(-3).floor_()


def _brightness(x, p):
    return (x.float() * _col(p[:, 0])).clamp_(0, 255).to(x.dtype)


def _color(x, p):
    return _blend(x, _gray(x), p) if x.shape[1] == 3 else x


def _contrast(x, p):
    gray = _gray(x) if x.shape[1] == 3 else x.float()
    return _blend(x, gray.mean(dim=(-3, -2, -1), keepdim=True), p)


def _sharpness(x, p):
    """torchvision's adjust_sharpness: a 3x3 smoothing kernel (5 in the middle) blended into the
    interior; the border pixels stay."""
    n, c, h, w = x.shape
    if h <= 2 or w <= 2:
        return x
    a, b = 1.0 / 13.0, 5.0 / 13.0
    kernel = torch.tensor([[a, a, a], [a, b, a], [a, a, a]], device=x.device).expand(c, 1, 3, 3)
    out = x.float()
    blurred = F.conv2d(out, kernel, groups=c).round_()
    inner = out[..., 1:-1, 1:-1]
    out[..., 1:-1, 1:-1] = torch.addcmul(inner, blurred - inner, _col(p[:, 1]))
    return out.clamp_(0, 255).to(x.dtype)


def _posterize_kernel(x, p):
    bits = p[:, 0].long()
    mask = (((1 << bits) - 1) << (8 - bits)).to(torch.uint8)
    return x & _col(mask)


def _solarize(x, p):
    return torch.where(x >= _col(p[:, 0]), 255 - x, x)


KERNELS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    **{op: _affine for op in AFFINE},
    "Brightness": _brightness, "Color": _color, "Contrast": _contrast, "Sharpness": _sharpness,
    "Posterize": _posterize_kernel, "Solarize": _solarize,
    "AutoContrast": lambda x, p: TF.autocontrast(x), "Equalize": lambda x, p: TF.equalize(x),
}


def apply_ops(x: torch.Tensor, ops: torch.Tensor, params: torch.Tensor, names: tuple[str, ...]) -> torch.Tensor:
    """x: uint8 (N, C, H, W); ops (N,) indices into `names`; params (N, 8) their arguments. The samples
    are sorted by kernel and each kernel runs once on its group (one host sync for the group sizes)."""
    kernels = list(dict.fromkeys(KERNELS.get(name) for name in names))  # None = Identity
    kernel_of = torch.tensor([kernels.index(KERNELS.get(name)) for name in names], device=x.device)
    group = kernel_of[ops]
    order = torch.argsort(group, stable=True)
    out = x.clone()
    start = 0
    for kernel, count in zip(kernels, torch.bincount(group, minlength=len(kernels)).tolist()):
        idx = order[start:start + count]
        start += count
        if count and kernel is not None:
            out[idx] = kernel(x[idx], params[idx])
    return out


# ---------------------------------------------------------------------------- the two policies

def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] floats -> uint8 as the images were decoded (exact for values k / 255)."""
    return x.mul(255).round_().clamp_(0, 255).to(torch.uint8)


@dataclass(frozen=True)
class TrivialAugmentWide:
    """torchvision.transforms.v2.TrivialAugmentWide(num_magnitude_bins, "nearest", fill 0), drawn per
    sample: one op uniform over the 14 of its space (Identity included), a magnitude bin uniform
    over `bins`, a negative sign with probability 1/2 for the signed ops."""
    bins: int = 31

    def draw(self, n: int, generator: torch.Generator, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(ops (N, 1), bins (N, 1), negative (N, 1)): every value drawn whatever the outcome."""
        ops = torch.randint(len(TRIVIAL_AUGMENT_WIDE_SPACE), (n, 1), generator=generator, device=device)
        bins = torch.randint(self.bins, (n, 1), generator=generator, device=device)
        return ops, bins, _rand((n, 1), generator, device) <= 0.5

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return _run(x, generator, self.draw, "trivial_augment_wide", self.bins)

    def describe(self) -> str:
        return (f"TrivialAugmentWide (one of {len(TRIVIAL_AUGMENT_WIDE_SPACE)} ops per sample, magnitude "
                f"uniform over {self.bins} bins)")


@dataclass(frozen=True)
class RandAugment:
    """torchvision.transforms.v2.RandAugment(num_ops, magnitude, num_magnitude_bins, "nearest", fill 0),
    drawn per sample: `num_ops` ops in a row, each uniform over the 14 of its space, all at bin
    `magnitude`, each signed op negative with probability 1/2."""
    num_ops: int = 2
    magnitude: int = 9
    bins: int = 31

    def draw(self, n: int, generator: torch.Generator, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        ops = torch.randint(len(RANDAUGMENT_SPACE), (n, self.num_ops), generator=generator, device=device)
        bins = torch.full((n, self.num_ops), self.magnitude, dtype=torch.long, device=device)
        return ops, bins, _rand((n, self.num_ops), generator, device) <= 0.5

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if not 0 <= self.magnitude < self.bins:
            raise ValueError(f"RandAugment magnitude {self.magnitude} is not a bin of {self.bins}")
        return _run(x, generator, self.draw, "randaugment", self.bins)

    def describe(self) -> str:
        return (f"RandAugment ({self.num_ops} ops per sample of {len(RANDAUGMENT_SPACE)}, magnitude "
                f"{self.magnitude} of {self.bins} bins)")


def _run(x: torch.Tensor, generator: torch.Generator, draw, space: str, bins: int) -> torch.Tensor:
    """A float [0, 1] batch through the drawn ops (in uint8, as torchvision on decoded images)."""
    _check_batch(x, generator)
    n, _, h, w = x.shape
    ops, magnitude_bins, negative = draw(n, generator, x.device)
    table = op_table(space, bins, h, w).to(x.device)
    names = tuple(SPACES[space])
    out = _to_uint8(x)
    for k in range(ops.shape[1]):  # RandAugment's ops one after the other
        params = table[ops[:, k], magnitude_bins[:, k], negative[:, k].long()]
        out = apply_ops(out, ops[:, k], params, names)
    return out.to(x.dtype).div_(255)
