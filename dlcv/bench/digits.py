"""Real images at P1's layout for benchmarks and tests: scikit-learn's bundled 8x8 handwritten digits
(1,797 images, 10 classes), upscaled to 32x32 RGB and written as `p1_data/{train_50,val_50}/{label}_{i}.png`.
Real data that is always there (no download), so recipes can be compared on it offline."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

MARKER = "DIGITS.json"


def write_digits_p1(root: Path, n_val: int = 297, size: int = 32) -> Path:
    """scikit-learn's bundled 8x8 digits (real data) written in the P1 layout, upscaled to 32x32 RGB;
    the first `n_val` of a fixed permutation are the validation set. Reused when already complete."""
    from PIL import Image
    from sklearn.datasets import load_digits

    root = Path(root)
    spec = {"n_val": n_val, "size": size, "version": 1}
    try:
        if json.loads((root / MARKER).read_text()) == spec:
            return root
    except (OSError, ValueError):
        pass
    digits = load_digits()
    images = (digits.images * (255 / 16)).astype(np.uint8)
    order = np.random.default_rng(0).permutation(len(images))
    for split, idx in (("val_50", order[:n_val]), ("train_50", order[n_val:])):
        folder = root / "p1_data" / split
        folder.mkdir(parents=True, exist_ok=True)
        for i in idx:
            img = Image.fromarray(images[i]).resize((size, size), Image.BILINEAR).convert("RGB")
            img.save(folder / f"{digits.target[i]}_{i}.png")
    (root / MARKER).write_text(json.dumps(spec) + "\n")
    return root
