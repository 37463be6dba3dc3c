"""The demo-data generator writes the exact hw1_data layouts (SPEC.md section 1), reproducibly."""
from __future__ import annotations

import csv
import hashlib
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dlcv.data.masks import CLASS_COLORS, read_mask
from dlcv.demo import (MARKER, DemoScale, demo_problems, ensure_demo_data, is_demo_data, read_demo_marker,
                       write_demo_data)
from dlcv.demo.p1 import P1_CLASSES, render_p1
from dlcv.demo.p2 import OFFICE_CLASSES
from dlcv.demo.p3 import class_map, render_p3

TINY = DemoScale.tiny()


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("demo") / "hw1_data"
    counts = write_demo_data(root, TINY, seed=0, workers=2)
    return root, counts


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_file())


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _read_csv(path: Path) -> tuple[str, list[dict]]:
    text = path.read_text()
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    return text.splitlines()[0], rows


def test_counts_and_marker(demo):
    root, counts = demo
    s = TINY
    assert counts == {
        "p1_data/train_50": 50 * s.p1_train_per_class, "p1_data/val_50": 50 * s.p1_val_per_class,
        "p1_data/test": s.p1_test,
        "p2_data/mini/train": s.p2_mini, "p2_data/office/train": 65 * s.p2_office_train_per_class,
        "p2_data/office/val": 65 * s.p2_office_val_per_class, "p2_data/office/test": s.p2_office_test,
        "p3_data/train": 2 * s.p3_train, "p3_data/validation": 2 * s.p3_val, "p3_data/test": s.p3_test,
        "p3_data/test_gt": s.p3_test,
    }
    for rel, n in counts.items():
        assert len(_files(root / rel)) == n, rel
    assert (root / MARKER).is_file()
    assert "demo" in (root / MARKER).read_text().lower()
    assert not (root / ".DEMO_DATA.partial").exists()
    marker = read_demo_marker(root)
    assert set(marker["problems"]) == {"p1", "p2", "p3"}
    assert marker["problems"]["p1"]["seed"] == 0
    assert is_demo_data(root) and is_demo_data(root, "p3") and demo_problems(root) == {"p1", "p2", "p3"}
    assert not list(root.rglob("*.tmp")) and not list(root.rglob("*.pt"))


def test_p1_layout(demo):
    root, _ = demo
    s = TINY
    train = _files(root / "p1_data/train_50")
    assert train == sorted(f"{c}_{i}.png" for c in range(50) for i in range(s.p1_train_per_class))
    val = _files(root / "p1_data/val_50")
    assert val == sorted(f"{c}_{s.p1_train_per_class + i}.png" for c in range(50) for i in range(s.p1_val_per_class))
    for folder, names in (("train_50", train), ("val_50", val)):
        for name in names:
            assert re.fullmatch(r"(\d+)_(\d+)\.png", name)
            with Image.open(root / "p1_data" / folder / name) as img:
                assert img.format == "PNG" and img.mode == "RGB" and img.size == (32, 32)
    header, rows = _read_csv(root / "p1_data/test_gt.csv")
    assert header == "filename,label"
    assert sorted(r["filename"] for r in rows) == _files(root / "p1_data/test")
    assert all(0 <= int(r["label"]) < 50 for r in rows)
    for r in rows:
        with Image.open(root / "p1_data/test" / r["filename"]) as img:
            assert img.mode == "RGB" and img.size == (32, 32)
    per_label = np.bincount([int(r["label"]) for r in rows], minlength=50)
    assert per_label.max() - per_label.min() <= 1  # balanced over the classes


def test_p1_test_names_are_arbitrary():
    from dlcv.demo.p1 import test_names
    names = test_names(np.random.default_rng(0), 400)
    assert len(set(names)) == 400 and all(n.endswith(".png") and "/" not in n for n in names)
    assert any(" " in n for n in names) and any(n.count(".") > 1 for n in names)
    assert sum(bool(re.fullmatch(r"\d+_\d+\.png", n)) for n in names) < 40  # mostly no label prefix


def test_p2_layout(demo):
    root, _ = demo
    s = TINY
    office = root / "p2_data/office"
    mini = _files(root / "p2_data/mini/train")
    assert mini == [f"n{i:08d}.jpg" for i in range(s.p2_mini)]
    for name in mini[:5]:
        with Image.open(root / "p2_data/mini/train" / name) as img:
            assert img.format == "JPEG" and img.mode == "RGB" and img.size == (84, 84)
    sizes = set()
    for split, per_class, first in (("train", s.p2_office_train_per_class, 0),
                                    ("val", s.p2_office_val_per_class, s.p2_office_train_per_class)):
        header, rows = _read_csv(office / f"{split}.csv")
        assert header == "id,filename,label"
        assert [int(r["id"]) for r in rows] == list(range(65 * per_class))
        assert sorted(r["filename"] for r in rows) == _files(office / split)
        assert {r["filename"] for r in rows} == {f"{c}_{first + i}.jpg" for c in range(65) for i in range(per_class)}
        for r in rows:
            assert int(r["filename"].split("_")[0]) == int(r["label"])  # label prefix parse = CSV label
            with Image.open(office / split / r["filename"]) as img:
                assert img.format == "JPEG" and img.mode == "RGB"
                assert 64 <= min(img.size) and max(img.size) <= 300
                sizes.add(img.size)
    assert len(sizes) > 20  # various sizes
    header, rows = _read_csv(office / "test.csv")
    assert header == "id,filename,label"
    assert [r["filename"] for r in rows] == [f"{i:04d}.jpg" for i in range(s.p2_office_test)]
    assert all(r["label"] == "" for r in rows)
    assert _files(office / "test") == [r["filename"] for r in rows]
    header, gt = _read_csv(office / "test_gt.csv")
    assert header == "id,filename,label"
    assert [r["filename"] for r in gt] == [r["filename"] for r in rows]
    assert all(0 <= int(r["label"]) < 65 for r in gt)
    assert not (root / "p2_data/pretrain_model_SL.pt").exists()


def test_p3_layout(demo):
    root, _ = demo
    s = TINY
    legal = {tuple(c) for c in CLASS_COLORS.tolist()}
    for folder, n in (("train", s.p3_train), ("validation", s.p3_val)):
        names = _files(root / "p3_data" / folder)
        assert names == sorted([f"{i:04d}_sat.jpg" for i in range(n)] + [f"{i:04d}_mask.png" for i in range(n)])
    assert _files(root / "p3_data/test") == [f"{i:04d}_sat.jpg" for i in range(s.p3_test)]
    assert _files(root / "p3_data/test_gt") == [f"{i:04d}_mask.png" for i in range(s.p3_test)]
    pairs = [(root / "p3_data/train" / f"{i:04d}_sat.jpg", root / "p3_data/train" / f"{i:04d}_mask.png")
             for i in range(s.p3_train)]
    pairs += [(root / "p3_data/test" / f"{i:04d}_sat.jpg", root / "p3_data/test_gt" / f"{i:04d}_mask.png")
              for i in range(s.p3_test)]
    for sat, mask in pairs:
        with Image.open(sat) as img:
            assert img.format == "JPEG" and img.mode == "RGB" and img.size == (s.p3_size, s.p3_size)
        with Image.open(mask) as img:
            assert img.format == "PNG" and img.mode == "RGB" and img.size == (s.p3_size, s.p3_size)
            colours = {tuple(c) for c in np.unique(np.asarray(img).reshape(-1, 3), axis=0).tolist()}
        assert colours <= legal
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            read_mask(mask)


def test_same_seed_same_bytes_and_different_seed_differs(demo, tmp_path):
    root, _ = demo
    again = tmp_path / "again"
    write_demo_data(again, TINY, seed=0, workers=1)  # other worker count: still the same bytes
    assert _hashes(again) == _hashes(root)
    other = tmp_path / "other"
    write_demo_data(other, TINY, seed=1, problems=("p1", "p3"), workers=1)
    a, b = _hashes(root), _hashes(other)
    for rel in ("p1_data/train_50/0_0.png", "p1_data/val_50/7_2.png", "p3_data/train/0000_sat.jpg",
                "p3_data/train/0001_mask.png"):
        assert a[rel] != b[rel], rel
    assert read_demo_marker(other)["problems"]["p1"]["seed"] == 1


def test_interrupted_generation_is_detected_and_regenerated(tmp_path):
    root = tmp_path / "data"
    scale = DemoScale.tiny()
    write_demo_data(root, scale, seed=3, problems=("p3",), workers=1)
    first = _hashes(root)
    # simulate an interruption: the partial flag is present and a file is missing
    (root / ".DEMO_DATA.partial").write_text("interrupted")
    (root / "p3_data/train/0001_mask.png").unlink()
    assert read_demo_marker(root) is None and not is_demo_data(root)
    counts = ensure_demo_data(root, scale, seed=3, problems=("p3",), workers=1)
    assert counts["p3_data/train"] == 2 * scale.p3_train
    assert _hashes(root) == first
    # complete data with the same seed and scale is kept as it is
    mtime = (root / MARKER).stat().st_mtime_ns
    ensure_demo_data(root, scale, seed=3, problems=("p3",), workers=1)
    assert (root / MARKER).stat().st_mtime_ns == mtime
    # a missing file behind a complete marker is noticed too
    (root / "p3_data/test/0000_sat.jpg").unlink()
    ensure_demo_data(root, scale, seed=3, problems=("p3",), workers=1)
    assert (root / "p3_data/test/0000_sat.jpg").is_file()


def test_regeneration_replaces_only_its_problem(tmp_path):
    root = tmp_path / "data"
    small = DemoScale(p1_train_per_class=1, p1_val_per_class=1, p1_test=3, p3_train=2, p3_val=1, p3_test=1, p3_size=32)
    write_demo_data(root, DemoScale.tiny(), seed=0, problems=("p1", "p3"), workers=1)
    p3_before = {k: v for k, v in _hashes(root).items() if k.startswith("p3_data")}
    counts = write_demo_data(root, small, seed=0, problems=("p1",), workers=1)
    assert counts["p1_data/train_50"] == 50 and len(_files(root / "p1_data/train_50")) == 50  # stale files gone
    assert {k: v for k, v in _hashes(root).items() if k.startswith("p3_data")} == p3_before
    assert demo_problems(root) == {"p1", "p3"}


def test_refuses_to_overwrite_data_without_marker(tmp_path):
    root = tmp_path / "hw1_data"
    real = root / "p1_data/train_50"
    real.mkdir(parents=True)
    (real / "0_0.png").write_bytes(b"real data")
    with pytest.raises(FileExistsError, match="marker"):
        write_demo_data(root, DemoScale.tiny(), problems=("p1",), workers=1)
    assert (real / "0_0.png").read_bytes() == b"real data"
    write_demo_data(root, DemoScale.tiny(), problems=("p3",), workers=1)  # other problems are fine
    assert (real / "0_0.png").read_bytes() == b"real data" and demo_problems(root) == {"p3"}


def test_scale_and_problem_validation(tmp_path):
    with pytest.raises(ValueError):
        DemoScale(p1_train_per_class=0)
    with pytest.raises(ValueError):
        DemoScale(p3_size=8)
    with pytest.raises(ValueError):
        DemoScale(p2_mini=-1)
    with pytest.raises(ValueError):
        write_demo_data(tmp_path, DemoScale.tiny(), problems=("p4",))


def test_class_definitions_are_distinct():
    assert len(set(P1_CLASSES)) == 50 and len(set(OFFICE_CLASSES)) == 65


def test_p1_classes_differ_in_colour_statistics():
    """Learnability sanity: class-mean colour histograms differ between classes, and in the expected
    direction for the colour attribute (red objects are redder than blue ones near the centre)."""
    def hist(label: int) -> np.ndarray:
        imgs = np.stack([render_p1(0, "train", i, label) for i in range(12)])
        centre = imgs[:, 10:22, 10:22].reshape(-1, 3)
        return np.concatenate([np.bincount(centre[:, c] // 32, minlength=8) for c in range(3)]) / len(centre)

    labels = [P1_CLASSES.index(spec) for spec in P1_CLASSES if spec.texture == "solid" and spec.shape == "circle"]
    hists = {lab: hist(lab) for lab in labels}  # the five colours of solid circles
    dists = [np.abs(hists[a] - hists[b]).sum() for a in labels for b in labels if a < b]
    assert min(dists) > 0.1
    red = next(i for i in labels if P1_CLASSES[i].color == "red")
    blue = next(i for i in labels if P1_CLASSES[i].color == "blue")
    red_imgs = np.stack([render_p1(0, "train", i, red) for i in range(12)])[:, 12:20, 12:20].astype(float)
    blue_imgs = np.stack([render_p1(0, "train", i, blue) for i in range(12)])[:, 12:20, 12:20].astype(float)
    assert (red_imgs[..., 0] - red_imgs[..., 2]).mean() > (blue_imgs[..., 0] - blue_imgs[..., 2]).mean() + 40


def test_p3_class_frequencies_and_512():
    maps = [class_map(np.random.default_rng(i), 96) for i in range(40)]
    freq = np.bincount(np.concatenate([m.ravel() for m in maps]), minlength=7) / (40 * 96 * 96)
    assert freq.argmax() == 1  # agriculture most common
    assert freq[6] < 0.1  # a little unknown
    assert (freq[:6] > 0).all()
    sat, classes = render_p3(0, "train", 0, 512)
    assert sat.shape == (512, 512, 3) and sat.dtype == np.uint8 and classes.shape == (512, 512)
    assert classes.max() <= 6
