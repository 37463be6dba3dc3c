"""P1 demo data: 50 classes of 32x32 PNGs = 5 shapes x 5 colours x 2 textures on cluttered backgrounds.

Layout (as the real ``hw1_data/p1_data``): ``train_50/{label}_{id}.png``, ``val_50/{label}_{id}.png``
(ids continue after the training ids, like the real 0..449 / 450..499), plus a test folder
``test/`` with arbitrary names and its truth ``test_gt.csv`` (``filename,label``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from dlcv.demo._common import Job, chunked, item_rng, save_png, write_csv
from dlcv.demo.shapes import ObjectSpec, render_scene

P1_SHAPES = ("circle", "square", "triangle", "star", "ring")
P1_COLORS = ("red", "orange", "green", "blue", "purple")
P1_TEXTURES = ("solid", "stripes")
P1_CLASSES: tuple[ObjectSpec, ...] = tuple(ObjectSpec(s, c, t) for s in P1_SHAPES for c in P1_COLORS
                                           for t in P1_TEXTURES)
NUM_CLASSES = len(P1_CLASSES)
IMAGE_SIZE = 32
assert NUM_CLASSES == 50

TRAIN_DIR, VAL_DIR, TEST_DIR, TEST_GT = "p1_data/train_50", "p1_data/val_50", "p1_data/test", "p1_data/test_gt.csv"


def render_p1(seed: int, split: str, index: int, label: int) -> np.ndarray:
    """One 32x32 RGB image of class `label` (deterministic in seed, split, index)."""
    rng = item_rng(seed, "p1", split, index)
    return render_scene(rng, (IMAGE_SIZE, IMAGE_SIZE), [P1_CLASSES[label]], style="clutter", ss=3,
                        scale=(0.28, 0.45), distractors=(0, 3), occlude_p=0.25, noise=(2.0, 10.0))


def _render_chunk(seed: int, split: str, items: list[tuple[int, int, str]]) -> int:
    for index, label, path in items:
        save_png(Path(path), render_p1(seed, split, index, label))
    return len(items)


def test_names(rng: np.random.Generator, n: int) -> list[str]:
    """Arbitrary, unique test file names: mostly hex, some with spaces, several dots or a fake label."""
    names: list[str] = []
    seen: set[str] = set()
    while len(names) < n:
        token = rng.bytes(5).hex()
        kind = rng.random()
        if kind < 0.05:
            name = f"img {token}.png"
        elif kind < 0.10:
            name = f"{token}.v2.final.png"
        elif kind < 0.12:  # looks like a {label}_{id} name but the prefix is not the label
            name = f"{int(rng.integers(0, 50))}_{int(rng.integers(0, 10**6))}.png"
        else:
            name = f"{token}.png"
        if name not in seen:
            seen.add(name)
            names.append(name)
    return names


def p1_jobs(root: Path, train_per_class: int, val_per_class: int, n_test: int, seed: int,
            chunk: int = 128) -> tuple[list[Job], dict]:
    """Create the folders, write test_gt.csv, and return the rendering jobs plus the planned counts."""
    dirs = {name: root / name for name in (TRAIN_DIR, VAL_DIR, TEST_DIR)}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    jobs: list[Job] = []
    for split, folder, first_id, per_class in (("train", dirs[TRAIN_DIR], 0, train_per_class),
                                               ("val", dirs[VAL_DIR], train_per_class, val_per_class)):
        items = []
        for label in range(NUM_CLASSES):
            for k in range(per_class):
                index = label * per_class + k
                items.append((index, label, str(folder / f"{label}_{first_id + k}.png")))
        jobs += [(_render_chunk, (seed, split, part)) for part in chunked(items, chunk)]

    plan = item_rng(seed, "p1", "plan", 0)
    labels = plan.permutation(np.arange(n_test) % NUM_CLASSES)
    names = test_names(plan, n_test)
    items = [(i, int(labels[i]), str(dirs[TEST_DIR] / names[i])) for i in range(n_test)]
    jobs += [(_render_chunk, (seed, "test", part)) for part in chunked(items, chunk)]
    write_csv(root / TEST_GT, ("filename", "label"), sorted((names[i], int(labels[i])) for i in range(n_test)))
    counts = {TRAIN_DIR: NUM_CLASSES * train_per_class, VAL_DIR: NUM_CLASSES * val_per_class, TEST_DIR: n_test}
    return jobs, counts


def p1_outputs() -> tuple[str, ...]:
    """Paths (relative to the root) this generator owns and may delete before regenerating."""
    return (TRAIN_DIR, VAL_DIR, TEST_DIR, TEST_GT)
