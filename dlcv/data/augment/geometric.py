"""Geometry: one affine warp per sample (random resized crop, pad-crop, flips, zoom, 90-degree turns),
for images alone or image/mask pairs."""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F

from dlcv.data.augment._draw import Size, _check_batch, _coin, _pair, _rand, _uniform


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
