"""Object-identity images: demo data on which BYOL's augmentations are the right invariances.

A class is an object IDENTITY: an outline (one of the renderer's SHAPES) with a surface pattern (one
of its TEXTURES), in an upright pose. Every image of it draws afresh the nuisances that BYOL's two
views are made to ignore (Grill et al. 2020, Table 6):

=====================  ==========================================  ============================
nuisance               drawn per image                             BYOL's view augmentation
=====================  ==========================================  ============================
position, scale        anywhere, radius 0.2-0.45 of the side       random resized crop
mirror                 left-right flip with probability 0.5        horizontal flip
colour                 the object's colour (any of 10), a global   colour jitter, grayscale
                       brightness / contrast / saturation / hue
                       cast
sharpness, noise       sensor noise, sometimes a slight blur       Gaussian blur
background             a random smooth colour field                (crops cut it; jitter)
=====================  ==========================================  ============================

The pose is upright within +-`tilt` degrees: rotation is NOT one of BYOL's augmentations, so a
free rotation would be a nuisance no view pair teaches it to ignore. Hence what a random-init
network's features follow (colour, brightness, where the object is, the background) says little
about the class, while what stays the same across BYOL's views (outline and pattern) is the class.

`render_identity` is the whole renderer; `dlcv.bench.byol_learns` (does BYOL learn?) draws its
unlabeled and labelled images with it. (The P2 demo set is drawn by `dlcv.demo.p2` from fixed
(shape, colour, texture) classes in cluttered scenes: there a random network already separates the
classes by colour, which BYOL's colour jitter is made to forget -- see the README.)
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

from dlcv.demo.shapes import COLORS, SHAPES, TEXTURES, check_choices, pixel_noise, shape_mask, smooth_noise, texture_fill

__all__ = ["ObjectIdentity", "IDENTITIES", "render_identity"]


@dataclass(frozen=True)
class ObjectIdentity:
    """What an object IS: its outline and its surface pattern (never its colour)."""

    shape: str
    texture: str

    def __post_init__(self) -> None:
        check_choices(shape=self.shape, texture=self.texture)

    @property
    def name(self) -> str:
        return f"{self.texture}-{self.shape}"


IDENTITIES: tuple[ObjectIdentity, ...] = tuple(ObjectIdentity(s, t) for s in SHAPES for t in TEXTURES)


def _background(rng: np.random.Generator, w: int, h: int, saturation: tuple[float, float]) -> np.ndarray:
    """A smooth random colour field, (h, w, 3) float32 in about 0..255."""
    sat = rng.uniform(*saturation)
    base = rng.uniform(40, 215, 3)
    base = (base.mean() + (base - base.mean()) * sat).astype(np.float32)
    bg = smooth_noise(rng, h, w, int(rng.integers(2, 5)), 3, saturation=sat)
    bg *= np.float32(rng.uniform(15, 45))
    bg += base
    return bg


def _draw(canvas: np.ndarray, rng: np.random.Generator, identity: ObjectIdentity, radius: float,
          tilt: float, spread: float, colours: tuple[str, ...]) -> None:
    """Paint the object into `canvas` (h, w, 3) float32, in place, at a random position: its centre
    within `spread` x the room there is around the image centre (at most about a quarter of the
    object may leave the frame)."""
    h, w = canvas.shape[:2]
    angle = math.radians(rng.uniform(-tilt, tilt))
    room_x, room_y = spread * max(0.0, w / 2 - 0.75 * radius), spread * max(0.0, h / 2 - 0.75 * radius)
    cx, cy = w / 2 + rng.uniform(-room_x, room_x), h / 2 + rng.uniform(-room_y, room_y)
    mask = shape_mask(identity.shape, w, h, cx, cy, radius, angle)
    dx = (np.arange(w, dtype=np.float32) - np.float32(cx))[None, :]
    dy = (np.arange(h, dtype=np.float32) - np.float32(cy))[:, None]
    c, s = math.cos(angle) / radius, math.sin(angle) / radius
    u = dx * np.float32(c) + dy * np.float32(s)  # object-local coordinates (radius 1)
    v = dy * np.float32(c) - dx * np.float32(s)
    colour = np.asarray(COLORS[colours[rng.integers(len(colours))]], np.float32)
    colour = np.clip(colour * rng.uniform(0.8, 1.1) + rng.normal(0, 12, 3), 0, 255).astype(np.float32)
    fill = texture_fill(identity.texture, u, v, rng)[..., None] * colour
    fill -= canvas
    fill *= mask[..., None]
    canvas += fill


def _colour_cast(img: Image.Image, rng: np.random.Generator, hue: float) -> np.ndarray:
    """Global photometric nuisance: hue shift (fraction of the colour wheel), saturation,
    contrast and brightness, as float32 (h, w, 3)."""
    if hue > 0:
        hsv = np.asarray(img.convert("HSV")).copy()
        hsv[..., 0] = (hsv[..., 0].astype(np.int16) + int(round(rng.uniform(-hue, hue) * 256))) % 256
        img = Image.fromarray(hsv, "HSV").convert("RGB")
    arr = np.asarray(img, dtype=np.float32)
    grey = arr.mean(axis=2, keepdims=True)
    arr = grey + (arr - grey) * np.float32(rng.uniform(0.6, 1.3))
    contrast = rng.uniform(0.7, 1.2)
    arr = arr.mean() + (arr - arr.mean()) * np.float32(contrast)
    arr *= np.float32(rng.uniform(0.75, 1.25))
    return arr


def render_identity(rng: np.random.Generator, size: tuple[int, int], identity: ObjectIdentity,
                    scale: tuple[float, float] = (0.2, 0.45), spread: float = 1.0, tilt: float = 15.0, hue: float = 0.1,
                    ss: int = 2, max_render: int = 192, noise: tuple[float, float] = (1.0, 6.0),
                    blur_p: float = 0.2, colours: tuple[str, ...] = tuple(COLORS),
                    bg_saturation: tuple[float, float] = (0.2, 0.8)) -> np.ndarray:
    """One image (height, width, 3) uint8 of `identity` with freshly drawn nuisances.

    size: output (width, height); drawn at `ss` x that size (longer side at most `max_render`) and
    box-filtered down. scale: object radius as a fraction of the shorter side. tilt: largest
    rotation from upright, degrees. hue: largest global hue shift, a fraction of the colour wheel.
    """
    out_w, out_h = int(size[0]), int(size[1])
    factor = min(float(ss), max_render / max(out_w, out_h))
    w, h = max(8, round(out_w * factor)), max(8, round(out_h * factor))
    canvas = _background(rng, w, h, bg_saturation)
    _draw(canvas, rng, identity, min(w, h) * rng.uniform(*scale), tilt, spread, tuple(colours))
    img = Image.fromarray(np.clip(canvas + 0.5, 0, 255).astype(np.uint8))
    if rng.random() < 0.5:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    img = img.resize((out_w, out_h), Image.BOX) if (w, h) != (out_w, out_h) else img
    if rng.random() < blur_p:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.8) * max(1.0, out_w / 64)))
    arr = _colour_cast(img, rng, hue)
    sigma = rng.uniform(*noise)
    if sigma > 0:
        arr += pixel_noise(rng, arr.shape, sigma)
    np.clip(arr + 0.5, 0, 255, out=arr)
    return arr.astype(np.uint8)
