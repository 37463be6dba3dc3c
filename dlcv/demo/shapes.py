"""A small procedural renderer for the P1 and P2 demo images (numpy + PIL only).

A scene is a background (smooth colour noise, optional distractor shapes) with one or more textured
objects on it. Everything is drawn at ``ss`` times the output size and then downsampled with an
antialiasing filter, after which brightness/contrast jitter, Gaussian noise and occasional blur are
applied. An object class is an :class:`ObjectSpec` (shape, colour, texture); the per-image
randomness (position, scale, rotation, aspect, colour jitter, clutter, noise) comes from the
``numpy.random.Generator`` passed in, so a fixed generator seed gives identical pixels.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

__all__ = ["SHAPES", "COLORS", "TEXTURES", "STYLES", "ObjectSpec", "check_choices", "render_scene", "smooth_noise",
           "pixel_noise", "shape_mask", "texture_fill"]


def _circle(n: int = 40, r: float = 1.0, dx: float = 0.0, dy: float = 0.0) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([dx + r * np.cos(t), dy + r * np.sin(t)], axis=1)


def _regular(n: int, r: float = 1.0, phase: float = -np.pi / 2) -> np.ndarray:
    t = phase + np.arange(n) * 2 * np.pi / n
    return np.stack([r * np.cos(t), r * np.sin(t)], axis=1)


def _star(points: int = 5, r_out: float = 1.08, r_in: float = 0.45) -> np.ndarray:
    t = -np.pi / 2 + np.arange(2 * points) * np.pi / points
    r = np.where(np.arange(2 * points) % 2 == 0, r_out, r_in)
    return np.stack([r * np.cos(t), r * np.sin(t)], axis=1)


def _heart() -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, 48, endpoint=False)
    x = 16 * np.sin(t) ** 3
    y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
    pts = np.stack([x, y + 2.5], axis=1) / 16.0
    return pts


_W = 0.34  # half width of the cross arms
# unit-size outlines (radius about 1, centred at 0); holes are drawn with fill 0 afterwards
_OUTLINES: dict[str, tuple[np.ndarray, tuple[np.ndarray, ...]]] = {
    "circle": (_circle(), ()),
    "square": (_regular(4, 1.05, np.pi / 4), ()),
    "triangle": (_regular(3, 1.15) + [0.0, 0.18], ()),
    "star": (_star(), ()),
    "ring": (_circle(), (_circle(r=0.55),)),
    "cross": (np.array([[-_W, -1], [_W, -1], [_W, -_W], [1, -_W], [1, _W], [_W, _W], [_W, 1], [-_W, 1],
                        [-_W, _W], [-1, _W], [-1, -_W], [-_W, -_W]], float), ()),
    "hexagon": (_regular(6, 1.0, 0.0), ()),
    "diamond": (np.array([[0, -1.15], [0.62, 0], [0, 1.15], [-0.62, 0]], float), ()),
    "crescent": (_circle(), (_circle(r=0.82, dx=0.48),)),
    "arrow": (np.array([[-1, -0.26], [0.15, -0.26], [0.15, -0.68], [1.05, 0], [0.15, 0.68], [0.15, 0.26],
                        [-1, 0.26]], float), ()),
    "pentagon": (_regular(5, 1.05), ()),
    "heart": (_heart(), ()),
}
SHAPES: tuple[str, ...] = tuple(_OUTLINES)

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (205, 40, 40),
    "orange": (235, 130, 35),
    "yellow": (225, 205, 45),
    "green": (55, 165, 60),
    "cyan": (40, 185, 200),
    "blue": (40, 70, 205),
    "purple": (135, 60, 175),
    "pink": (235, 120, 180),
    "white": (235, 235, 230),
    "brown": (125, 80, 45),
}
TEXTURES: tuple[str, ...] = ("solid", "stripes", "dots", "checker", "gradient", "rings")
STYLES: tuple[str, ...] = ("clutter", "plain", "flat", "painterly")


def check_choices(**values: str) -> None:
    """ValueError naming the first value that is not one of the renderer's (shape, colour, texture)."""
    known = {"shape": SHAPES, "colour": tuple(COLORS), "texture": TEXTURES}
    for kind, value in values.items():
        if value not in known[kind]:
            raise ValueError(f"unknown {kind} {value!r}; known: {', '.join(known[kind])}")


@dataclass(frozen=True)
class ObjectSpec:
    shape: str
    color: str
    texture: str

    def __post_init__(self) -> None:
        check_choices(shape=self.shape, colour=self.color, texture=self.texture)

    @property
    def name(self) -> str:
        return f"{self.color}-{self.texture}-{self.shape}"


def smooth_noise(rng: np.random.Generator, height: int, width: int, cells: int, channels: int = 1,
                 saturation: float = 1.0) -> np.ndarray:
    """Smooth random field in about [-1, 1]: a (cells+1)^2 random grid upsampled bicubically.

    saturation (3 channels only): < 1 pulls the channels of each grid point towards their mean.
    """
    cells = max(1, int(cells))
    if channels == 3:  # one 8-bit RGB resize: 3x cheaper, and 8 bits are plenty for colour noise
        grid = rng.integers(0, 256, size=(cells + 1, cells + 1, 3), dtype=np.uint8)
        if saturation != 1.0:
            grey = grid.mean(axis=2, keepdims=True)
            grid = np.clip(grey + (grid - grey) * saturation + 0.5, 0, 255).astype(np.uint8)
        img = Image.fromarray(grid).resize((width, height), Image.BICUBIC)
        out = np.asarray(img, dtype=np.float32)
        out *= 2.0 / 255.0
        out -= 1.0
        return out
    out = np.empty((height, width, channels), np.float32)
    grid = rng.uniform(-1, 1, size=(channels, cells + 1, cells + 1)).astype(np.float32)
    for c in range(channels):
        img = Image.fromarray(grid[c]).resize((width, height), Image.BICUBIC)
        out[..., c] = np.asarray(img)
    return out if channels > 1 else out[..., 0]


def pixel_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    """Zero-mean float32 noise of standard deviation `sigma`: triangular (the sum of two uniform
    random bytes), close enough to Gaussian for sensor noise and about 10x cheaper to draw."""
    n = int(np.prod(shape))
    raw = np.frombuffer(rng.bytes(2 * n), np.uint8)
    u = raw[:n].astype(np.float32)
    u += raw[n:]
    u -= 255.0
    u *= np.float32(sigma * math.sqrt(6.0) / 255.0)
    return u.reshape(shape)


def _transform(pts: np.ndarray, cx: float, cy: float, radius: float, angle: float, aspect: float) -> list[tuple]:
    x = pts[:, 0] * radius * aspect
    y = pts[:, 1] * radius
    c, s = math.cos(angle), math.sin(angle)
    return list(zip((cx + c * x - s * y).tolist(), (cy + s * x + c * y).tolist()))


def shape_mask(shape: str, width: int, height: int, cx: float, cy: float, radius: float, angle: float = 0.0,
               aspect: float = 1.0) -> np.ndarray:
    """Float mask (height, width) in {0, 1} of one shape drawn with PIL at this resolution."""
    outline, holes = _OUTLINES[shape]
    img = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(img)
    draw.polygon(_transform(outline, cx, cy, radius, angle, aspect), fill=255)
    for hole in holes:
        draw.polygon(_transform(hole, cx, cy, radius, angle, aspect), fill=0)
    mask = np.asarray(img, dtype=np.float32)
    mask *= np.float32(1.0 / 255.0)
    return mask


def _jitter_color(rng: np.random.Generator, rgb: Sequence[int], amount: float) -> np.ndarray:
    base = np.asarray(rgb, np.float32)
    gain = rng.uniform(1 - 0.25 * amount, 1 + 0.12 * amount)
    return np.clip(base * gain + rng.normal(0, 14 * amount, 3), 0, 255).astype(np.float32)


def texture_fill(texture: str, u: np.ndarray, v: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Brightness factor (float32, about 0.2..1.15) of a texture over object-local coordinates u, v
    (object radius = 1); the object's colour times this factor is its fill."""
    one, dark = np.float32(1.0), np.float32(rng.uniform(0.22, 0.42))
    if texture == "solid":
        f = one - np.float32(0.08) * (u + v)
    elif texture == "stripes":
        k = np.float32(2 * np.pi / rng.uniform(0.55, 0.7))
        f = np.where(np.sin(u * k) > 0, one, dark)
    elif texture == "dots":
        period = np.float32(rng.uniform(0.55, 0.7))
        du = np.mod(u, period) - period / 2
        dv = np.mod(v, period) - period / 2
        f = np.where(du * du + dv * dv < (np.float32(0.3) * period) ** 2, dark, one)
    elif texture == "checker":
        k = np.float32(1 / rng.uniform(0.5, 0.65))
        f = np.where((np.floor(u * k) + np.floor(v * k)) % 2 == 0, one, dark)
    elif texture == "gradient":
        f = np.clip(np.float32(0.7) + np.float32(0.55) * u, dark, np.float32(1.15))
    elif texture == "rings":
        k = np.float32(2 * np.pi / rng.uniform(0.4, 0.5))
        f = np.where(np.sin(np.sqrt(u * u + v * v) * k) > 0, one, dark)
    else:
        raise ValueError(f"unknown texture {texture!r}")
    return np.asarray(f, np.float32)


def _background(rng: np.random.Generator, w: int, h: int, style: str) -> np.ndarray:
    if style == "plain":  # product photo: light, nearly uniform, soft shadow
        bg = smooth_noise(rng, h, w, 2, 3, saturation=0.3)
        bg *= np.float32(12)
        bg += (rng.uniform(200, 250) + rng.normal(0, 6, 3)).astype(np.float32)
        return bg
    if style == "flat":  # clipart: one flat colour
        return np.broadcast_to(rng.uniform(20, 240, 3).astype(np.float32), (h, w, 3)).copy()
    sat = rng.uniform(0.3, 1.0)  # natural saturation, not a rainbow
    base = rng.uniform(25, 230, 3)
    base = (base.mean() + (base - base.mean()) * sat).astype(np.float32)
    bg = smooth_noise(rng, h, w, int(rng.integers(2, 6)), 3, saturation=sat)
    bg *= np.float32(rng.uniform(20, 70))
    bg += base
    if style == "painterly":
        bg += np.float32(25) * smooth_noise(rng, h, w, int(rng.integers(10, 20)), 3, saturation=sat)
    return bg


def _draw_object(canvas: np.ndarray, rng: np.random.Generator, spec: ObjectSpec, cx: float, cy: float,
                 radius: float, color_jitter: float, alpha: float = 1.0) -> None:
    h, w = canvas.shape[:2]
    angle = rng.uniform(0, 2 * np.pi)
    aspect = rng.uniform(0.8, 1.25)
    reach = radius * max(aspect, 1.0) * 1.25 + 2  # every outline lies within 1.2 radii of its centre
    x0, x1 = max(0, int(cx - reach)), min(w, int(cx + reach) + 1)
    y0, y1 = max(0, int(cy - reach)), min(h, int(cy + reach) + 1)
    if x0 >= x1 or y0 >= y1:
        return
    # draw in the box only (coordinates shifted), so the cost does not grow with the canvas
    mask = shape_mask(spec.shape, x1 - x0, y1 - y0, cx - x0, cy - y0, radius, angle, aspect)
    dx = (np.arange(x0, x1, dtype=np.float32) - np.float32(cx))[None, :]
    dy = (np.arange(y0, y1, dtype=np.float32) - np.float32(cy))[:, None]
    c, s = math.cos(angle), math.sin(angle)
    ru, rv = 1.0 / (radius * aspect), 1.0 / radius
    u = dx * np.float32(c * ru) + dy * np.float32(s * ru)  # object-local coordinates (radius 1)
    v = dy * np.float32(c * rv) - dx * np.float32(s * rv)
    color = _jitter_color(rng, COLORS[spec.color], color_jitter)
    fill = texture_fill(spec.texture, u, v, rng)[..., None] * color
    if alpha != 1.0:
        mask *= np.float32(alpha)
    region = canvas[y0:y1, x0:x1]
    fill -= region
    fill *= mask[..., None]
    region += fill  # region = region * (1 - mask) + fill * mask, in place


def _random_spec(rng: np.random.Generator) -> ObjectSpec:
    colors = tuple(COLORS)
    return ObjectSpec(SHAPES[rng.integers(len(SHAPES))], colors[rng.integers(len(colors))],
                      TEXTURES[rng.integers(len(TEXTURES))])


def render_scene(rng: np.random.Generator, size: tuple[int, int], objects: Sequence[ObjectSpec],
                 style: str = "clutter", ss: int = 3, max_render: int = 256,
                 scale: tuple[float, float] = (0.26, 0.42), distractors: tuple[int, int] = (0, 3),
                 occlude_p: float = 0.15, color_jitter: float = 1.0, noise: tuple[float, float] = (1.0, 8.0),
                 blur_p: float = 0.2, spread: float = 1.0) -> np.ndarray:
    """Render one scene; returns (height, width, 3) uint8.

    size: output (width, height). The scene is drawn at ``ss`` x the output size (capped so the
    longer side is at most ``max_render``) and resized to ``size`` with an antialiasing filter.
    objects: the first is the labelled object (placed near the centre, radius ``scale`` x the
    shorter side, its centre within ``spread`` x the free room around the image centre); further
    ones are placed anywhere at a similar scale.
    """
    out_w, out_h = int(size[0]), int(size[1])
    factor = min(float(ss), max_render / max(out_w, out_h))
    w, h = max(8, round(out_w * factor)), max(8, round(out_h * factor))
    short = min(w, h)
    canvas = _background(rng, w, h, style)
    n_distract = int(rng.integers(distractors[0], distractors[1] + 1)) if style in ("clutter", "painterly") else 0
    for _ in range(n_distract):
        _draw_object(canvas, rng, _random_spec(rng), rng.uniform(0, w), rng.uniform(0, h),
                     short * rng.uniform(0.08, 0.2), color_jitter=2.0, alpha=rng.uniform(0.5, 1.0))
    for k, spec in enumerate(objects):
        radius = short * rng.uniform(*scale) * (1.0 if k == 0 else rng.uniform(0.6, 1.0))
        if k == 0:
            margin_x, margin_y = min(radius * 0.8, w / 2), min(radius * 0.8, h / 2)
            room_x, room_y = spread * (w / 2 - margin_x), spread * (h / 2 - margin_y)
            cx, cy = w / 2 + rng.uniform(-room_x, room_x), h / 2 + rng.uniform(-room_y, room_y)
        else:
            cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        _draw_object(canvas, rng, spec, cx, cy, radius, color_jitter)
    if style in ("clutter", "painterly") and rng.random() < occlude_p:  # something in front of the object
        _draw_object(canvas, rng, _random_spec(rng), rng.uniform(0, w), rng.uniform(0, h),
                     short * rng.uniform(0.1, 0.2), color_jitter=2.0)
    img = Image.fromarray(np.clip(canvas + 0.5, 0, 255).astype(np.uint8))
    if (w, h) != (out_w, out_h):
        k = w // out_w
        if k * out_w == w and k * out_h == h:  # integer factor: exact box average, the cheapest antialiasing
            img = img.reduce(k)
        else:
            img = img.resize((out_w, out_h), Image.BOX if w >= out_w else Image.BICUBIC)
    if rng.random() < blur_p:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.9) * max(1.0, out_w / 64)))
    arr = np.asarray(img, dtype=np.float32)
    contrast, bright = rng.uniform(0.8, 1.15), rng.uniform(-20, 20)
    arr *= contrast
    arr += 128 * (1 - contrast) + bright + 0.5
    sigma = rng.uniform(*noise)
    if sigma > 0:
        arr += pixel_noise(rng, arr.shape, sigma)
    np.clip(arr, 0, 255, out=arr)
    return arr.astype(np.uint8)
