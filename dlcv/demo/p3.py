"""P3 demo data: satellite-like images with 7-class land-cover masks.

A class map is a power diagram of random seeds on domain-warped coordinates (smooth irregular
regions), sometimes crossed by a river; each region gets a class with frequencies like the real
data (agriculture most common, then urban, forest, rangeland, barren, water, a little unknown).
Each class has its own texture and colour distribution (urban: grey street grid with bright
roofs; agriculture: yellow-green parcels with parallel furrows; rangeland: mottled green/brown;
forest: dark blobby green; water: dark smooth blue with ripples; barren: sandy/grey noise;
unknown: black or cloud white). The colour ranges overlap a little (brownish fields vs rangeland
vs barren; dark water vs forest) so that texture matters. Texture scales are in pixels, as if a
smaller image were a crop of a 512x512 tile; the number of regions grows with the area.

Layout (as the real ``hw1_data/p3_data``): ``train/{xxxx}_sat.jpg`` + ``{xxxx}_mask.png``,
``validation/`` the same, plus ``test/{xxxx}_sat.jpg`` and ``test_gt/{xxxx}_mask.png``.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from dlcv.data.masks import write_mask
from dlcv.demo._common import Job, chunked, item_rng, save_jpg
from dlcv.demo.shapes import pixel_noise, smooth_noise

# region-level class probabilities: urban, agriculture, rangeland, forest, water, barren, unknown
CLASS_PROBS = np.array([0.15, 0.41, 0.12, 0.135, 0.07, 0.10, 0.015])
TRAIN_DIR, VAL_DIR, TEST_DIR, TEST_GT_DIR = "p3_data/train", "p3_data/validation", "p3_data/test", "p3_data/test_gt"


def _field(rng: np.random.Generator, h: int, w: int, feature_px: float, channels: int = 1) -> np.ndarray:
    """Smooth noise in about [-1, 1] whose blobs are about `feature_px` pixels wide."""
    return smooth_noise(rng, h, w, max(1, round(max(h, w) / feature_px)), channels)


def class_map(rng: np.random.Generator, size: int) -> np.ndarray:
    """(size, size) uint8 class ids 0..6 made of smooth irregular regions."""
    area = (size / 512.0) ** 2
    n = max(2, int(rng.poisson(3 + 15 * area)))
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    wx = 28 * _field(rng, size, size, 90) + 6 * _field(rng, size, size, 18)
    wy = 28 * _field(rng, size, size, 90) + 6 * _field(rng, size, size, 18)
    px, py = xx + wx, yy + wy
    seeds = rng.uniform(-0.1 * size, 1.1 * size, size=(n, 2)).astype(np.float32)
    weights = rng.uniform(0, (0.25 * size) ** 2, size=n).astype(np.float32)  # power diagram: varied region sizes
    best = np.full((size, size), np.inf, np.float32)
    region = np.zeros((size, size), np.int32)
    for k in range(n):
        d = (px - seeds[k, 0]) ** 2 + (py - seeds[k, 1]) ** 2 - weights[k]
        closer = d < best
        best = np.where(closer, d, best)
        region[closer] = k
    classes = rng.choice(7, size=n, p=CLASS_PROBS).astype(np.uint8)[region]
    if rng.random() < 0.25 * max(1.0, 4 * area) ** 0.5:  # a river
        theta = rng.uniform(0, np.pi)
        t = xx * math.cos(theta) + yy * math.sin(theta) - rng.uniform(0.2, 0.8) * size * (
            abs(math.cos(theta)) + abs(math.sin(theta)))
        t = t + 25 * _field(rng, size, size, 120)
        classes[np.abs(t) < rng.uniform(3, 10)] = 4
    return classes


def _urban(rng, h, w, xx, yy):
    theta = rng.uniform(0, np.pi / 2)
    a = xx * math.cos(theta) + yy * math.sin(theta) + rng.uniform(0, 100)
    b = -xx * math.sin(theta) + yy * math.cos(theta) + rng.uniform(0, 100)
    cell = rng.uniform(9, 16)
    street = rng.uniform(1.5, 3.0)
    ia, ib = np.floor(a / cell).astype(np.int64) % 61, np.floor(b / cell).astype(np.int64) % 59
    roof = rng.uniform(120, 235, size=(61, 59)).astype(np.float32)
    tint = rng.normal(0, 6, size=(61, 59, 3)).astype(np.float32)
    inside = (np.mod(a, cell) > street) & (np.mod(b, cell) > street)
    grey = np.where(inside, roof[ia, ib], rng.uniform(80, 110))[..., None]
    out = grey + np.where(inside[..., None], tint[ia, ib], 0) + np.array([0, 2, 6], np.float32)
    return out + 10 * _field(rng, h, w, 4, 3)


def _agriculture(rng, h, w, xx, yy):
    theta = rng.uniform(0, np.pi / 2)
    a = xx * math.cos(theta) + yy * math.sin(theta) + rng.uniform(0, 300)
    b = -xx * math.sin(theta) + yy * math.cos(theta) + rng.uniform(0, 300)
    pa, pb = rng.uniform(35, 90, size=2)
    ia, ib = np.floor(a / pa).astype(np.int64) % 37, np.floor(b / pb).astype(np.int64) % 41
    palette = np.array([[185, 180, 85], [150, 165, 70], [120, 150, 60], [175, 150, 95], [200, 190, 110]], np.float32)
    weights = rng.dirichlet(np.ones(len(palette)) * 0.6, size=37 * 41).astype(np.float32)
    mix = (weights[:, :, None] * palette[None]).sum(axis=1)  # no BLAS call: safe in forked workers
    angle = rng.uniform(0, np.pi, size=(37, 41))
    freq = (2 * np.pi) / rng.uniform(3, 7, size=(37, 41))  # one furrow direction and period per parcel
    fx, fy = (np.cos(angle) * freq).astype(np.float32), (np.sin(angle) * freq).astype(np.float32)
    cell = ia * 41 + ib
    furrow = np.sin(xx * fx.ravel()[cell] + yy * fy.ravel()[cell])
    amp = rng.uniform(8, 22)
    edge = (np.mod(a, pa) < 1.2) | (np.mod(b, pb) < 1.2)
    out = mix[cell] + (amp * furrow - np.where(edge, np.float32(25), np.float32(0)))[..., None]
    return out + 8 * _field(rng, h, w, 30, 3)


def _rangeland(rng, h, w, xx, yy):
    light, dark = np.array([165, 160, 110], np.float32), np.array([115, 135, 75], np.float32)
    m = np.clip(0.5 + 0.45 * _field(rng, h, w, 22) + 0.3 * _field(rng, h, w, 5), 0, 1)[..., None]
    return light * m + dark * (1 - m) + 12 * _field(rng, h, w, 3, 3)


def _forest(rng, h, w, xx, yy):
    base = np.array([50, 80, 42], np.float32) + rng.normal(0, 6, 3).astype(np.float32)
    crowns = _field(rng, h, w, 3.5)
    shade = np.where(crowns > 0.15, 18.0, -14.0) + 10 * _field(rng, h, w, 25)
    return base + shade[..., None] + 6 * _field(rng, h, w, 2, 3)


def _water(rng, h, w, xx, yy):
    base = np.array([28, 48, 88], np.float32) if rng.random() < 0.75 else np.array([45, 70, 70], np.float32)
    theta = rng.uniform(0, np.pi)
    ripple = np.sin((xx * math.cos(theta) + yy * math.sin(theta)) * (2 * np.pi / rng.uniform(5, 9)))
    return base + (3 * ripple + 8 * _field(rng, h, w, 60))[..., None] + 2 * _field(rng, h, w, 3, 3)


def _barren(rng, h, w, xx, yy):
    sandy, grey = np.array([195, 175, 140], np.float32), np.array([160, 155, 148], np.float32)
    m = np.clip(0.5 + 0.6 * _field(rng, h, w, 40), 0, 1)[..., None]
    return sandy * m + grey * (1 - m) + 18 * _field(rng, h, w, 8)[..., None] + 10 * _field(rng, h, w, 2.5, 3)


def _unknown(rng, h, w, xx, yy):
    if rng.random() < 0.7:
        return np.zeros((h, w, 3), np.float32) + rng.uniform(0, 8)
    cloud = np.clip(0.6 + 0.5 * _field(rng, h, w, 30), 0, 1)
    return (200 + 55 * cloud)[..., None] + np.zeros((1, 1, 3), np.float32)


_TEXTURES = (_urban, _agriculture, _rangeland, _forest, _water, _barren, _unknown)


def render_sat(rng: np.random.Generator, classes: np.ndarray) -> np.ndarray:
    """(H,W,3) uint8 satellite-like image for a class map."""
    h, w = classes.shape
    out = np.zeros((h, w, 3), np.float32)
    for cid, texture in enumerate(_TEXTURES):
        sel = classes == cid
        rows, cols = np.flatnonzero(sel.any(axis=1)), np.flatnonzero(sel.any(axis=0))
        if len(rows) == 0:
            continue
        y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1  # texture only the class's box
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        tex = texture(rng, y1 - y0, x1 - x0, xx, yy)
        np.copyto(out[y0:y1, x0:x1], tex, where=sel[y0:y1, x0:x1, None])
    gain = rng.uniform(0.85, 1.15)
    tint = rng.normal(0, 7, 3).astype(np.float32)
    haze = rng.uniform(0, 0.15)
    out = (out * gain + tint) * (1 - haze) + 200 * haze
    out += pixel_noise(rng, out.shape, rng.uniform(2, 5))
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def render_p3(seed: int, split: str, index: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    rng = item_rng(seed, "p3", split, index)
    classes = class_map(rng, size)
    return render_sat(rng, classes), classes


def _render_chunk(seed: int, split: str, size: int, items: list[tuple[int, str, str]]) -> int:
    for index, sat_path, mask_path in items:
        rng = item_rng(seed, "p3", split, index)
        classes = class_map(rng, size)
        sat = render_sat(rng, classes)
        save_jpg(Path(sat_path), sat, quality=int(rng.integers(85, 91)))
        write_mask(mask_path, classes)
    return len(items)


def p3_jobs(root: Path, n_train: int, n_val: int, n_test: int, size: int, seed: int,
            chunk: int | None = None) -> tuple[list[Job], dict]:
    if size < 16:
        raise ValueError(f"p3_size must be at least 16 pixels, got {size}")
    chunk = chunk or max(4, int(64 * (128 / size) ** 2))
    jobs: list[Job] = []
    counts: dict[str, int] = {}
    for split, folder, mask_folder, n in (("train", TRAIN_DIR, TRAIN_DIR, n_train),
                                          ("val", VAL_DIR, VAL_DIR, n_val),
                                          ("test", TEST_DIR, TEST_GT_DIR, n_test)):
        (root / folder).mkdir(parents=True, exist_ok=True)
        (root / mask_folder).mkdir(parents=True, exist_ok=True)
        items = [(i, str(root / folder / f"{i:04d}_sat.jpg"), str(root / mask_folder / f"{i:04d}_mask.png"))
                 for i in range(n)]
        jobs += [(_render_chunk, (seed, split, size, part)) for part in chunked(items, chunk)]
        if folder == mask_folder:
            counts[folder] = 2 * n
        else:
            counts[folder], counts[mask_folder] = n, n
    return jobs, counts


def p3_outputs() -> tuple[str, ...]:
    return (TRAIN_DIR, VAL_DIR, TEST_DIR, TEST_GT_DIR)
