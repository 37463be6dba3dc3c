"""P2 demo data: an unlabeled 84x84 "mini" set and a 65-class "Office" set of various sizes.

Both come from the shape renderer. The Office classes are 65 fixed, distinct (shape, colour,
texture) combinations drawn once from the 12 x 10 x 6 grid (independent of the seed); each image
gets one of four "domains" (background styles: clutter, plain product shot, flat clipart,
painterly). The mini set holds 1-2 objects of ANY combination (Office ones included, most not)
in the same styles, so self-supervised pre-training on it learns features that transfer.

Layout (as the real ``hw1_data/p2_data``)::

    mini/train/n{idx:08d}.jpg                     84x84, unlabeled
    office/train/{label}_{id}.jpg, office/val/...  various sizes, labels 0..64
    office/train.csv, office/val.csv               id,filename,label
    office/test/{idx:04d}.jpg + office/test.csv (empty labels) + office/test_gt.csv
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from dlcv.demo._common import Job, chunked, item_rng, save_jpg, write_csv
from dlcv.demo.shapes import COLORS, SHAPES, STYLES, TEXTURES, ObjectSpec, render_scene

NUM_CLASSES = 65
MINI_SIZE = 84
OFFICE_SIZE_RANGE = (64, 300)
_CLASS_DEFINITION_SEED = 2023  # the class list is part of the format, not of the sample


def _office_classes() -> tuple[ObjectSpec, ...]:
    grid = [ObjectSpec(s, c, t) for s in SHAPES for c in COLORS for t in TEXTURES]
    pick = np.random.default_rng(_CLASS_DEFINITION_SEED).choice(len(grid), NUM_CLASSES, replace=False)
    return tuple(grid[i] for i in sorted(pick))


OFFICE_CLASSES: tuple[ObjectSpec, ...] = _office_classes()
assert len(set(OFFICE_CLASSES)) == NUM_CLASSES

MINI_DIR = "p2_data/mini/train"
OFFICE_TRAIN, OFFICE_VAL, OFFICE_TEST = "p2_data/office/train", "p2_data/office/val", "p2_data/office/test"
TRAIN_CSV, VAL_CSV = "p2_data/office/train.csv", "p2_data/office/val.csv"
TEST_CSV, TEST_GT = "p2_data/office/test.csv", "p2_data/office/test_gt.csv"


def render_mini(seed: int, index: int) -> np.ndarray:
    rng = item_rng(seed, "p2", "mini", index)
    n_obj = 1 if rng.random() < 0.7 else 2
    colors = tuple(COLORS)
    objs = [ObjectSpec(SHAPES[rng.integers(len(SHAPES))], colors[rng.integers(len(colors))],
                       TEXTURES[rng.integers(len(TEXTURES))]) for _ in range(n_obj)]
    style = STYLES[int(rng.choice(len(STYLES), p=[0.55, 0.15, 0.15, 0.15]))]
    return render_scene(rng, (MINI_SIZE, MINI_SIZE), objs, style=style, ss=2, scale=(0.22, 0.42))


def render_office(seed: int, split: str, index: int, label: int) -> np.ndarray:
    rng = item_rng(seed, "p2", split, index)
    lo, hi = OFFICE_SIZE_RANGE
    long_side = int(rng.integers(lo, hi + 1))
    short_side = max(lo, round(long_side * rng.uniform(0.6, 1.0)))
    w, h = (long_side, short_side) if rng.random() < 0.7 else (short_side, long_side)
    style = STYLES[int(rng.integers(len(STYLES)))]
    # objects near the centre, as in product/photo collections (a centre crop keeps them)
    return render_scene(rng, (w, h), [OFFICE_CLASSES[label]], style=style, ss=2, max_render=192,
                        scale=(0.25, 0.42), distractors=(0, 4), occlude_p=0.2, spread=0.5)


def _mini_chunk(seed: int, items: list[tuple[int, str]]) -> int:
    for index, path in items:
        save_jpg(Path(path), render_mini(seed, index))
    return len(items)


def _office_chunk(seed: int, split: str, items: list[tuple[int, int, str]]) -> int:
    for index, label, path in items:
        save_jpg(Path(path), render_office(seed, split, index, label))
    return len(items)


def p2_jobs(root: Path, n_mini: int, train_per_class: int, val_per_class: int, n_test: int, seed: int,
            chunk: int = 64) -> tuple[list[Job], dict]:
    for d in (MINI_DIR, OFFICE_TRAIN, OFFICE_VAL, OFFICE_TEST):
        (root / d).mkdir(parents=True, exist_ok=True)
    jobs: list[Job] = []
    mini = [(i, str(root / MINI_DIR / f"n{i:08d}.jpg")) for i in range(n_mini)]
    jobs += [(_mini_chunk, (seed, part)) for part in chunked(mini, chunk)]

    for split, folder, csv_name, first_id, per_class in (
            ("train", OFFICE_TRAIN, TRAIN_CSV, 0, train_per_class),
            ("val", OFFICE_VAL, VAL_CSV, train_per_class, val_per_class)):
        items, rows = [], []
        for label in range(NUM_CLASSES):
            for k in range(per_class):
                name = f"{label}_{first_id + k}.jpg"
                items.append((label * per_class + k, label, str(root / folder / name)))
                rows.append((len(rows), name, label))
        write_csv(root / csv_name, ("id", "filename", "label"), rows)
        jobs += [(_office_chunk, (seed, split, part)) for part in chunked(items, chunk)]

    plan = item_rng(seed, "p2", "plan", 0)
    labels = plan.permutation(np.arange(n_test) % NUM_CLASSES)
    names = [f"{i:04d}.jpg" for i in range(n_test)]
    items = [(i, int(labels[i]), str(root / OFFICE_TEST / names[i])) for i in range(n_test)]
    jobs += [(_office_chunk, (seed, "test", part)) for part in chunked(items, chunk)]
    write_csv(root / TEST_CSV, ("id", "filename", "label"), [(i, names[i], "") for i in range(n_test)])
    write_csv(root / TEST_GT, ("id", "filename", "label"), [(i, names[i], int(labels[i])) for i in range(n_test)])
    counts = {MINI_DIR: n_mini, OFFICE_TRAIN: NUM_CLASSES * train_per_class,
              OFFICE_VAL: NUM_CLASSES * val_per_class, OFFICE_TEST: n_test}
    return jobs, counts


def p2_outputs() -> tuple[str, ...]:
    """Paths this generator owns (never p2_data/pretrain_model_SL.pt)."""
    return (MINI_DIR, OFFICE_TRAIN, OFFICE_VAL, OFFICE_TEST, TRAIN_CSV, VAL_CSV, TEST_CSV, TEST_GT)
