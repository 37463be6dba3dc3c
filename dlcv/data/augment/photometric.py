"""Colour: jitter (brightness, contrast, saturation, hue), grayscale, Gaussian blur, solarisation,
each applied per sample with probability p."""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from dlcv.data.augment._draw import _check_batch, _check_rgb, _coin, _per_sample, _select, _uniform

# ITU-R 601-2 luma weights, as torchvision.transforms.functional.rgb_to_grayscale uses them.
_LUMA = (0.2989, 0.587, 0.114)


def _grayscale(x: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W) luma of an RGB batch (a 1-channel batch is its own luma)."""
    if x.shape[1] == 1:
        return x
    r, g, b = x.unbind(dim=1)
    return (_LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b).unsqueeze(1)


def _blend(x: torch.Tensor, other: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """factor * x + (1 - factor) * other, clamped: torchvision's _blend with per-sample factors."""
    f = _per_sample(factor, x)
    return (f * x + (1 - f) * other).clamp(0, 1)


def _rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    """RGB (N, 3, H, W) in [0, 1] -> HSV with hue in [0, 1); torchvision's formulas."""
    r, g, b = x.unbind(dim=1)
    maxc = x.amax(dim=1)
    minc = x.amin(dim=1)
    chroma = maxc - minc
    gray = chroma == 0
    ones = torch.ones_like(maxc)
    sat = chroma / torch.where(gray, ones, maxc)
    safe = torch.where(gray, ones, chroma)  # hue is undefined (set to 0) for grays
    rc, gc, bc = (maxc - r) / safe, (maxc - g) / safe, (maxc - b) / safe
    is_r = maxc == r
    is_g = (maxc == g) & ~is_r
    is_b = ~is_r & ~is_g
    hue = is_r * (bc - gc) + is_g * (2.0 + rc - bc) + is_b * (4.0 + gc - rc)
    hue = torch.fmod(hue / 6.0 + 1.0, 1.0)
    return torch.stack([hue, sat, maxc], dim=1)


def _hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    """HSV -> RGB with the closed form channel_n = v - v s clamp(min(k, 4 - k), 0, 1),
    k = (n + 6 h) mod 6 with n = 5, 3, 1 for R, G, B: the same numbers as torchvision's
    six-sector table, without building it."""
    h, s, v = hsv.unbind(dim=1)
    n = torch.tensor([5.0, 3.0, 1.0], device=hsv.device, dtype=hsv.dtype).view(1, 3, 1, 1)
    k = torch.remainder(n + 6.0 * h.unsqueeze(1), 6.0)
    ramp = torch.minimum(k, 4.0 - k).clamp(0, 1)
    return v.unsqueeze(1) - (v * s).unsqueeze(1) * ramp


def _adjust_hue(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Rotate each sample's hue by factor[i] (a fraction of the colour wheel, in [-0.5, 0.5]),
    like torchvision.transforms.functional.adjust_hue but one factor per sample."""
    hsv = _rgb_to_hsv(x)
    hue = torch.remainder(hsv[:, 0] + factor.to(x.dtype).view(-1, 1, 1), 1.0)
    return _hsv_to_rgb(torch.stack([hue, hsv[:, 1], hsv[:, 2]], dim=1)).clamp(0, 1)


def color_jitter(x: torch.Tensor, generator: torch.Generator, brightness: float = 0.4,
                 contrast: float = 0.4, saturation: float = 0.2, hue: float = 0.1,
                 p: float = 0.8) -> torch.Tensor:
    """RandomApply([ColorJitter(brightness, contrast, saturation, hue)], p), per sample.

    Factors as in torchvision: brightness, contrast, saturation factors uniform in
    [max(0, 1 - s), 1 + s]; hue shift uniform in [-hue, hue] of the colour wheel. Brightness
    scales the image, contrast blends it with its mean luma, saturation blends it with its luma
    image, hue rotates it in HSV; each step clamps to [0, 1].

    Difference from torchvision: the order is always brightness, contrast, saturation, hue,
    where torchvision shuffles the four per call. A strength of 0 skips that step entirely, so
    all-zero strengths give back x exactly.
    """
    _check_batch(x, generator)
    if saturation or hue:
        _check_rgb(x, "saturation/hue jitter")
    n, dev = x.shape[0], x.device
    apply = _coin(n, p, generator, dev)
    # always draw every factor, so the random stream does not depend on the strengths' zeros
    f_bright = _uniform(n, max(0.0, 1 - brightness), 1 + brightness, generator, dev)
    f_contrast = _uniform(n, max(0.0, 1 - contrast), 1 + contrast, generator, dev)
    f_sat = _uniform(n, max(0.0, 1 - saturation), 1 + saturation, generator, dev)
    f_hue = _uniform(n, -hue, hue, generator, dev)

    out = x
    if brightness:
        out = (out * _per_sample(f_bright, out)).clamp(0, 1)
    if contrast:
        mean = _grayscale(out).mean(dim=(1, 2, 3), keepdim=True)
        out = _blend(out, mean, f_contrast)
    if saturation:
        out = _blend(out, _grayscale(out), f_sat)
    if hue:
        out = _adjust_hue(out, f_hue)
    return _select(apply, out, x)


def random_grayscale(x: torch.Tensor, generator: torch.Generator, p: float = 0.2) -> torch.Tensor:
    """RandomGrayscale(p): per sample, replace RGB by its ITU-R 601-2 luma on all 3 channels."""
    _check_batch(x, generator)
    _check_rgb(x, "random_grayscale")
    apply = _coin(x.shape[0], p, generator, x.device)
    return _select(apply, _grayscale(x).expand_as(x), x)


def _default_kernel_size(height: int, width: int) -> int:
    """About 10% of the image side, odd (the BYOL paper: 23 px at 224 px), at least 3."""
    k = int(0.1 * min(height, width))
    return max(3, k + 1 if k % 2 == 0 else k)


def gaussian_blur(x: torch.Tensor, generator: torch.Generator, p: float,
                  sigma: tuple[float, float] = (0.1, 2.0),
                  kernel_size: Optional[int] = None) -> torch.Tensor:
    """Gaussian blur with probability p and sigma uniform in `sigma`, both per sample.

    Separable: one vertical and one horizontal pass, each a depthwise convolution over the
    batch folded into channels (groups = N * C), so every sample uses its own kernel in one
    conv call. Reflect padding, kernel as torchvision's GaussianBlur. kernel_size defaults to
    ~10% of the image side; it is capped at 2 * side - 1, the most reflect padding allows.
    Like torchvision (and the BYOL paper), sigma is in pixels, not scaled with image size.
    """
    _check_batch(x, generator)
    n, c, h, w = x.shape
    dev = x.device
    apply = _coin(n, p, generator, dev)
    sig = _uniform(n, sigma[0], sigma[1], generator, dev)
    k = kernel_size if kernel_size is not None else _default_kernel_size(h, w)
    if k < 1 or k % 2 == 0:
        raise ValueError(f"kernel_size must be odd and positive, got {k}")
    k = min(k, 2 * min(h, w) - 1)
    half = (k - 1) // 2

    offsets = torch.linspace(-half, half, k, device=dev, dtype=x.dtype)
    kernel = torch.exp(-0.5 * (offsets / sig.to(x.dtype).unsqueeze(1)) ** 2)  # (N, k)
    kernel = (kernel / kernel.sum(dim=1, keepdim=True)).repeat_interleave(c, dim=0)  # (N*C, k)

    flat = x.reshape(1, n * c, h, w)
    flat = F.conv2d(F.pad(flat, (0, 0, half, half), mode="reflect"),
                    kernel.view(n * c, 1, k, 1), groups=n * c)
    flat = F.conv2d(F.pad(flat, (half, half, 0, 0), mode="reflect"),
                    kernel.view(n * c, 1, 1, k), groups=n * c)
    return _select(apply, flat.reshape(n, c, h, w), x)


def solarize(x: torch.Tensor, generator: torch.Generator, p: float,
             threshold: float = 0.5) -> torch.Tensor:
    """RandomSolarize(threshold, p): per sample, pixels >= threshold become 1 - x."""
    _check_batch(x, generator)
    apply = _coin(x.shape[0], p, generator, x.device)
    return _select(apply, torch.where(x >= threshold, 1 - x, x), x)
