"""Batched, per-sample random augmentation that runs on the batch's own device.

Why batched: the training data live in decoded uint8 caches and reach the model as whole batches.
Augmenting the batch where it already is (usually the GPU) costs almost nothing there, and on a
CPU it avoids a Python loop over images. Every function below therefore takes a float batch
`x` of shape (N, C, H, W) with values in [0, 1] and returns a batch of the same kind.

Why an explicit generator: every random number is drawn from `generator` (a torch.Generator on
x's device), never from the global RNG. The caller seeds it from (seed, step, rank)
(`dlcv.seeding.generator_for`), so a training run is exactly reproducible and a resumed run
replays the same augmentations. Each call draws a fixed number of values per sample whatever the
outcome (e.g. a colour jitter that is skipped still consumes its factors), so the stream never
depends on the data.

Why per sample: each image gets its own independently drawn parameters (crop box, flip, colour
factors, blur sigma, ...). One draw for the whole batch would make all views of a batch alike,
which for BYOL removes most of the signal.

Geometry is one affine warp per sample (`affine_grid_sample`); colour ops are elementwise or a
depthwise convolution, with a per-sample coin (probability p) choosing between the transformed and
the original image (`torch.where`, no data-dependent indexing, so no GPU synchronisation).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F

Size = Union[int, Sequence[int]]

__all__ = [
    "ByolAugmentConfig",
    "affine_grid_sample",
    "byol_views",
    "color_jitter",
    "gaussian_blur",
    "joint_geometric",
    "pad_crop_flip",
    "random_grayscale",
    "random_resized_crop_flip",
    "solarize",
]

# ITU-R 601-2 luma weights, as torchvision.transforms.functional.rgb_to_grayscale uses them.
_LUMA = (0.2989, 0.587, 0.114)


# --------------------------------------------------------------------------------------------
# small helpers: sizes, random draws, per-sample selection
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# geometry
# --------------------------------------------------------------------------------------------

def affine_grid_sample(x: torch.Tensor, theta: torch.Tensor, out_size: Size,
                       mode: str = "bilinear", padding_value: float = 0.0) -> torch.Tensor:
    """Warp each sample with its own 2x3 affine matrix.

    theta (N, 2, 3) maps OUTPUT normalised coordinates to INPUT normalised coordinates (the
    F.affine_grid convention, align_corners=False: -1 and +1 are the outer edges of the image,
    pixel centres sit at (2k + 1) / size - 1). The identity matrix reproduces the input exactly.

    x is either a float image batch (N, C, H, W), or an integer mask batch (N, H, W) or
    (N, C, H, W) of class indices, which needs mode="nearest": it is sampled as float (class
    indices are exact in float32) and converted back to its own dtype.

    Outside the source image the output is `padding_value` (e.g. 0 for images, the "unknown"
    class for masks). The edge is hard: a sample point inside the image reads the border-clamped
    interpolation (like F.interpolate at the edges), a point outside reads padding_value, with no
    blend in between. That makes an image and its mask warped with the same theta agree exactly
    on which output pixels are "outside", whatever the two interpolation modes.
    """
    out_h, out_w = _pair(out_size)
    is_mask = not x.is_floating_point()
    if is_mask and mode != "nearest":
        raise ValueError("integer tensors (masks) must be warped with mode='nearest'")
    if x.dim() not in (3, 4):
        raise ValueError(f"expected (N, C, H, W) or an (N, H, W) mask, got {tuple(x.shape)}")
    src = x.unsqueeze(1) if x.dim() == 3 else x
    if is_mask:
        src = src.float()
    n, c = src.shape[:2]
    if theta.shape != (n, 2, 3):
        raise ValueError(f"theta must be ({n}, 2, 3), got {tuple(theta.shape)}")

    grid = F.affine_grid(theta.to(device=src.device, dtype=src.dtype), [n, c, out_h, out_w],
                         align_corners=False)
    # "border" so that points just inside the edge (less than half a pixel from it) read the edge
    # pixel instead of fading into zeros; points outside are replaced below.
    out = F.grid_sample(src, grid, mode=mode, padding_mode="border", align_corners=False)
    inside = (grid.abs() <= 1).all(dim=-1).unsqueeze(1)  # (N, 1, out_h, out_w)
    out = torch.where(inside, out, torch.as_tensor(padding_value, dtype=out.dtype,
                                                   device=out.device))
    if is_mask:
        out = out.round().to(x.dtype)
    return out.squeeze(1) if x.dim() == 3 else out


def _box_theta(cx: torch.Tensor, cy: torch.Tensor, half_w: torch.Tensor, half_h: torch.Tensor,
               linear: Optional[torch.Tensor], height: int, width: int) -> torch.Tensor:
    """Affine matrices that map the output frame onto a box of the source image.

    The box has centre (cx, cy) and half sizes (half_w, half_h), all in source pixels (pixel k
    spans [k, k + 1]). `linear` (N, 2, 2), if given, is applied to the output coordinates first
    (flips, rotations); it must be a signed permutation so it keeps the [-1, 1] square.
    """
    n = cx.shape[0]
    theta = torch.zeros(n, 2, 3, device=cx.device, dtype=torch.float32)
    scale = torch.stack([half_w * 2 / width, half_h * 2 / height], dim=1)  # (N, 2)
    if linear is None:
        linear = torch.eye(2, device=cx.device).expand(n, 2, 2)
    theta[:, :, :2] = scale.unsqueeze(2) * linear  # diag(scale) @ linear
    theta[:, 0, 2] = cx * 2 / width - 1
    theta[:, 1, 2] = cy * 2 / height - 1
    return theta


def _hflip_linear(flip: torch.Tensor) -> torch.Tensor:
    """(N, 2, 2) diag(-1 or 1, 1): a horizontal mirror of the output where flip is True."""
    sign = 1 - 2 * flip.float()
    linear = torch.zeros(flip.shape[0], 2, 2, device=flip.device)
    linear[:, 0, 0] = sign
    linear[:, 1, 1] = 1
    return linear


def _sample_crop_boxes(n: int, height: int, width: int, scale: tuple[float, float],
                       ratio: tuple[float, float], generator, device):
    """torchvision RandomResizedCrop.get_params for n samples at once.

    Ten tries per sample are drawn together; each sample keeps its first try whose box fits in
    the image, and samples with no fitting try fall back to torchvision's central crop. Box sizes
    are whole pixels and box offsets uniform integers, as in torchvision. Returns float tensors
    (top, left, h, w) of shape (N,).
    """
    tries = 10
    area = height * width
    target_area = area * _uniform((n, tries), scale[0], scale[1], generator, device)
    log_ratio = _uniform((n, tries), math.log(ratio[0]), math.log(ratio[1]), generator, device)
    aspect = torch.exp(log_ratio)
    w = torch.round(torch.sqrt(target_area * aspect))
    h = torch.round(torch.sqrt(target_area / aspect))
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = fits.to(torch.uint8).argmax(dim=1, keepdim=True)  # index of the first fitting try
    w = w.gather(1, first).squeeze(1)
    h = h.gather(1, first).squeeze(1)

    # torchvision's fallback: the largest central crop whose aspect ratio is within `ratio`
    in_ratio = width / height
    if in_ratio < min(ratio):
        fb_w, fb_h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        fb_w, fb_h = int(round(height * max(ratio))), height
    else:
        fb_w, fb_h = width, height
    any_fits = fits.any(dim=1)
    w = torch.where(any_fits, w, torch.full_like(w, fb_w))
    h = torch.where(any_fits, h, torch.full_like(h, fb_h))

    # offsets: uniform integers in [0, size - box], like torch.randint; central for the fallback
    u = _rand((n, 2), generator, device)
    top = torch.minimum(torch.floor(u[:, 0] * (height - h + 1)), height - h)
    left = torch.minimum(torch.floor(u[:, 1] * (width - w + 1)), width - w)
    top = torch.where(any_fits, top, torch.full_like(top, (height - fb_h) // 2))
    left = torch.where(any_fits, left, torch.full_like(left, (width - fb_w) // 2))
    return top, left, h, w


def random_resized_crop_flip(x: torch.Tensor, out_size: Size, generator: torch.Generator,
                             scale: tuple[float, float] = (0.08, 1.0),
                             ratio: tuple[float, float] = (3 / 4, 4 / 3),
                             flip_p: float = 0.5) -> torch.Tensor:
    """RandomResizedCrop + RandomHorizontalFlip, drawn independently for each sample.

    Semantics follow torchvision: the crop's area is a fraction in `scale` of the image, its
    aspect ratio log-uniform in `ratio`, it lies fully inside the image (10 tries, then a central
    crop), and it is resized to out_size (int or (h, w)); then a horizontal flip with
    probability flip_p. Crop, resize and flip are one affine warp per sample, with bilinear
    sampling.

    One small difference: torchvision crops, then resizes the crop, clamping at the crop's edge;
    the warp reads the image's real pixels just outside the box there instead (the output's
    outermost half pixel can differ slightly; a whole-image crop matches exactly).

    Known wart: unlike torchvision's antialiased resize, bilinear grid sampling reads only the
    2x2 nearest pixels, so a crop shrunk by a large factor (e.g. a whole 512 px image to 64 px)
    aliases. At the sizes used here (84 px -> 128 px for BYOL, 32 px CIFAR-like images) crops
    are mostly enlarged, where this makes no difference.
    """
    _check_batch(x, generator)
    n, _, height, width = x.shape
    out_h, out_w = _pair(out_size)
    top, left, h, w = _sample_crop_boxes(n, height, width, scale, ratio, generator, x.device)
    flip = _coin(n, flip_p, generator, x.device)
    theta = _box_theta(left + w / 2, top + h / 2, w / 2, h / 2, _hflip_linear(flip),
                       height, width)
    return affine_grid_sample(x, theta, (out_h, out_w), mode="bilinear")


def pad_crop_flip(x: torch.Tensor, generator: torch.Generator, pad: int = 4,
                  flip_p: float = 0.5) -> torch.Tensor:
    """CIFAR augmentation: zero-pad by `pad`, random crop back to (H, W), horizontal flip.

    Exact: each output is its input shifted by whole pixels (dy, dx in [-pad, pad]) and maybe
    mirrored, with zeros where the shift uncovers the padding; nothing is interpolated. Done as
    one gather with per-sample source indices rather than padding and slicing each sample.
    Order as in torchvision: crop first, then flip.
    """
    _check_batch(x, generator)
    n, c, h, w = x.shape
    dev = x.device
    shift = torch.randint(0, 2 * pad + 1, (n, 2), generator=generator, device=dev) - pad
    flip = _coin(n, flip_p, generator, dev)

    rows = torch.arange(h, device=dev).unsqueeze(0) + shift[:, :1]          # (N, H) source rows
    cols = torch.arange(w, device=dev).unsqueeze(0).expand(n, w)
    cols = torch.where(flip.unsqueeze(1), w - 1 - cols, cols) + shift[:, 1:]  # (N, W) source cols
    valid = ((rows >= 0) & (rows < h)).unsqueeze(2) & ((cols >= 0) & (cols < w)).unsqueeze(1)
    index = rows.clamp(0, h - 1).unsqueeze(2) * w + cols.clamp(0, w - 1).unsqueeze(1)  # (N,H,W)
    out = x.reshape(n, c, h * w).gather(2, index.reshape(n, 1, h * w).expand(n, c, h * w))
    out = out.reshape(n, c, h, w)
    return out * valid.unsqueeze(1).to(x.dtype)


# The four rotations by multiples of 90 degrees, as 2x2 matrices on (x, y) coordinates.
_ROT90 = torch.tensor([[[1, 0], [0, 1]], [[0, -1], [1, 0]],
                       [[-1, 0], [0, -1]], [[0, 1], [-1, 0]]], dtype=torch.float32)


def joint_geometric(images: torch.Tensor, masks: Optional[torch.Tensor],
                    generator: torch.Generator, out_size: Optional[Size] = None,
                    scale: tuple[float, float] = (0.5, 2.0), hflip_p: float = 0.5,
                    vflip_p: float = 0.5, rot90: bool = True, mask_fill: int = 6):
    """Segmentation augmentation: the same random geometry for an image and its mask.

    Per sample: the image is zoomed by a factor s drawn log-uniformly in `scale` (so zooming in
    by 2 is as likely as zooming out by 2), a window of out_size pixels (default: the input
    size) is cut at a random position of the zoomed image, then flipped horizontally (hflip_p),
    vertically (vflip_p) and rotated by a random multiple of 90 degrees (if rot90). Where the
    zoomed image is smaller than the window, it lands at a random place inside it.

    All of that is one affine matrix per sample, applied to the image with bilinear sampling and
    to the mask (N, H, W, integer class indices, dtype kept) with nearest sampling. Outside the
    source image the image is 0 and the mask is `mask_fill` (6 = "unknown"). Window offsets are
    whole source pixels, so at s = 1 a crop is an exact copy of input pixels. On non-square
    outputs a 90-degree rotation uses a window of swapped shape, so pixels stay square.

    masks may be None; returns (images, masks) either way.
    """
    _check_batch(images, generator)
    n, _, height, width = images.shape
    dev = images.device
    out_h, out_w = _pair(out_size) if out_size is not None else (height, width)
    if masks is not None and masks.shape != (n, height, width):
        raise ValueError(f"masks must be {(n, height, width)}, got {tuple(masks.shape)}")

    zoom = torch.exp(_uniform(n, math.log(scale[0]), math.log(scale[1]), generator, dev))
    u = _rand((n, 2), generator, dev)
    hflip = _coin(n, hflip_p, generator, dev)
    vflip = _coin(n, vflip_p, generator, dev)
    k = torch.randint(0, 4, (n,), generator=generator, device=dev)
    if not rot90:
        k = torch.zeros_like(k)

    # linear part on the output frame: flips, then the rotation; a signed permutation matrix
    flips = torch.zeros(n, 2, 2, device=dev)
    flips[:, 0, 0] = 1 - 2 * hflip.float()
    flips[:, 1, 1] = 1 - 2 * vflip.float()
    linear = _ROT90.to(dev)[k] @ flips

    # window size in source pixels; an odd k turns the output's width into the window's height
    odd = (k % 2 == 1)
    win_w = torch.where(odd, float(out_h), float(out_w)) / zoom
    win_h = torch.where(odd, float(out_w), float(out_h)) / zoom
    # offset of the window's corner: anywhere from 0 to (image - window) (negative when the
    # window is larger than the image), rounded to whole source pixels and kept in that range
    left = _offset(u[:, 0], width - win_w)
    top = _offset(u[:, 1], height - win_h)
    theta = _box_theta(left + win_w / 2, top + win_h / 2, win_w / 2, win_h / 2, linear,
                       height, width)

    out_images = affine_grid_sample(images, theta, (out_h, out_w), mode="bilinear",
                                     padding_value=0.0)
    out_masks = None
    if masks is not None:
        out_masks = affine_grid_sample(masks, theta, (out_h, out_w), mode="nearest",
                                       padding_value=float(mask_fill))
    return out_images, out_masks


def _offset(u: torch.Tensor, room: torch.Tensor) -> torch.Tensor:
    """u * room rounded to a whole pixel, clamped to [min(0, room), max(0, room)]."""
    zero = torch.zeros_like(room)
    return torch.round(u * room).clamp(torch.minimum(room, zero), torch.maximum(room, zero))


# --------------------------------------------------------------------------------------------
# colour
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# BYOL
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ByolAugmentConfig:
    """The BYOL paper's two augmentation pipelines (Grill et al. 2020, Table 6).

    Each pair is (view 1, view 2). Both views: random resized crop + flip, colour jitter with
    probability 0.8, grayscale with 0.2; they differ in blur (1.0 vs 0.1) and solarize (0 vs 0.2).
    """
    jitter_p: tuple[float, float] = (0.8, 0.8)
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.2
    hue: float = 0.1
    grayscale_p: tuple[float, float] = (0.2, 0.2)
    blur_p: tuple[float, float] = (1.0, 0.1)
    solarize_p: tuple[float, float] = (0.0, 0.2)


def _byol_view(x: torch.Tensor, generator: torch.Generator, out_size: Size,
               crop_scale: tuple[float, float], cfg: ByolAugmentConfig, view: int) -> torch.Tensor:
    v = random_resized_crop_flip(x, out_size, generator, scale=crop_scale)
    v = color_jitter(v, generator, cfg.brightness, cfg.contrast, cfg.saturation, cfg.hue,
                     p=cfg.jitter_p[view])
    v = random_grayscale(v, generator, p=cfg.grayscale_p[view])
    v = gaussian_blur(v, generator, p=cfg.blur_p[view])
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
