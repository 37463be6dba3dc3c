"""P3 reading: sat/mask pairing, the colour rule (red -> unknown, warned), sizes, the decode-once
cache; the test-folder batch reader; the segmentation task's loss, augmentation and normalisation.
No model is trained here (see test_segment_job.py)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from dlcv.data import cache as cache_mod
from dlcv.data import satellite
from dlcv.data.masks import CLASS_COLORS, UNKNOWN, read_mask, write_mask
from dlcv.data.satellite import iter_image_batches, list_pairs, list_sat_images, load_satellite_split, mask_name
from dlcv.errors import DataError


def _pair(folder, name, size=(24, 16), seed=0, classes=None):
    """Write <name>_sat.jpg and <name>_mask.png of `size` (W, H); returns the class map."""
    rng = np.random.default_rng(seed)
    w, h = size
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / f"{name}_sat.jpg")
    if classes is None:
        classes = rng.integers(0, 7, (h, w)).astype(np.uint8)
    write_mask(folder / f"{name}_mask.png", classes)
    return classes


@pytest.fixture
def split(tmp_path):
    folder = tmp_path / "train"
    truth = {f"{i:04d}": _pair(folder, f"{i:04d}", seed=i) for i in (2, 0, 1)}
    return folder, truth


# ------------------------------------------------------------------ pairs
def test_reads_pairs_sorted_with_official_classes(split, tmp_path):
    folder, truth = split
    (folder / "notes.txt").write_text("not data")  # unrelated files are ignored
    s = load_satellite_split(folder, cache_dir=tmp_path / "cache")
    assert s.names == ["0000", "0001", "0002"]
    assert s.images.shape == (3, 3, 16, 24) and s.images.dtype == np.uint8
    assert s.masks.shape == (3, 16, 24) and s.masks.dtype == np.uint8
    for k, name in enumerate(s.names):
        np.testing.assert_array_equal(s.masks[k], truth[name])
        sat = np.asarray(Image.open(folder / f"{name}_sat.jpg").convert("RGB")).transpose(2, 0, 1)
        np.testing.assert_array_equal(s.images[k], sat)
    assert s.meta["red_pixels"] == {}


def test_demo_data_reads(demo_root):
    s = load_satellite_split(demo_root / "p3_data" / "validation")
    assert len(s) == 6 and s.images.shape == (6, 3, 64, 64) and s.names[0] == "0000"
    np.testing.assert_array_equal(s.masks[3], read_mask(demo_root / "p3_data" / "validation" / "0003_mask.png"))


def test_missing_mask_or_image_names_the_id(split):
    folder, _ = split
    (folder / "0001_mask.png").unlink()
    with pytest.raises(DataError, match="0001_sat.jpg") as err:
        list_pairs(folder)
    assert "without a mask" in str(err.value)
    _pair(folder, "0001")
    (folder / "0002_sat.jpg").unlink()
    with pytest.raises(DataError, match="without an image: 0002_mask.png"):
        load_satellite_split(folder)


def test_empty_or_missing_folder(tmp_path):
    with pytest.raises(DataError, match="folder not found"):
        list_pairs(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no xxxx_sat.jpg"):
        list_pairs(tmp_path / "empty")


def test_red_pixels_are_unknown_and_warned_once_per_file(split, tmp_path):
    folder, truth = split
    rgb = CLASS_COLORS[truth["0001"]].copy()
    rgb[0, :5] = (255, 0, 0)  # red: code 4, no class
    rgb[1, 0] = (200, 60, 90)  # binarises to red too
    Image.fromarray(rgb).save(folder / "0001_mask.png")
    for _ in range(2):  # the second read comes from the cache and still reports the file
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            s = load_satellite_split(folder, cache_dir=tmp_path / "cache")
        red = [w for w in caught if "red pixel" in str(w.message)]
        assert len(red) == 1 and "0001_mask.png" in str(red[0].message) and "6 red pixel" in str(red[0].message)
        assert s.meta["red_pixels"] == {"0001": 6}
        assert (s.masks[1, 0, :5] == UNKNOWN).all() and s.masks[1, 1, 0] == UNKNOWN


def test_size_mismatch_names_the_file(split):
    folder, _ = split
    _pair(folder, "0003", size=(20, 16))
    with pytest.raises(DataError, match="0003_sat.jpg: expected 24x16 pixels, found 20x16"):
        load_satellite_split(folder)
    _pair(folder, "0003")
    write_mask(folder / "0003_mask.png", np.zeros((16, 20), np.uint8))
    with pytest.raises(DataError, match="0003_mask.png: mask is 20x16 pixels but the split's images are 24x16"):
        load_satellite_split(folder)


def test_decode_once_cache(split, tmp_path, monkeypatch):
    folder, truth = split
    cache_dir = tmp_path / "cache"
    first = load_satellite_split(folder, cache_dir=cache_dir)
    assert len(list(cache_dir.glob("p3-train-*.npy"))) == 3  # images, masks, red counts

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded a file although the cache is valid")

    monkeypatch.setattr(satellite, "read_rgb", no_decoding)
    monkeypatch.setattr(cache_mod, "MMAP_THRESHOLD_BYTES", 0)  # "big": memory-mapped
    again = load_satellite_split(folder, cache_dir=cache_dir)
    assert isinstance(again.images, np.memmap) and isinstance(again.masks, np.memmap)
    np.testing.assert_array_equal(np.asarray(again.images), first.images)
    np.testing.assert_array_equal(np.asarray(again.masks), first.masks)
    monkeypatch.undo()

    changed = np.full((16, 24), 4, np.uint8)  # a changed file rebuilds the cache
    write_mask(folder / "0002_mask.png", changed)
    rebuilt = load_satellite_split(folder, cache_dir=cache_dir)
    np.testing.assert_array_equal(rebuilt.masks[2], changed)
    assert len(list(cache_dir.glob("p3-train-masks-*.npy"))) == 1  # stale versions removed


def test_masks_are_served_uint8_until_the_device(split):
    from dlcv.data.sets import BatchDataset

    folder, _ = split
    s = load_satellite_split(folder)
    x, y = BatchDataset(s.images, s.masks).__getitems__([2, 0])
    assert x.dtype == torch.uint8 and y.dtype == torch.uint8 and y.shape == (2, 16, 24)
    assert torch.equal(y[0], torch.from_numpy(s.masks[2]))


# ------------------------------------------------------------------ test folders
def test_mask_name_and_listing(tmp_path):
    assert mask_name("0013_sat.jpg") == "0013_mask.png"
    with pytest.raises(ValueError):
        mask_name("0013.jpg")
    _pair(tmp_path, "0001")
    _pair(tmp_path, "0000")
    (tmp_path / "readme.md").write_text("x")
    assert [p.name for p in list_sat_images(tmp_path)] == ["0000_sat.jpg", "0001_sat.jpg"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no xxxx_sat.jpg"):
        list_sat_images(tmp_path / "empty")


def test_iter_image_batches_order_sizes_and_errors(tmp_path):
    for i in range(7):
        _pair(tmp_path, f"{i:04d}", size=(24, 16) if i != 4 else (32, 8), seed=i)
    (tmp_path / "0002_sat.jpg").write_bytes(b"not a jpeg")
    paths = list_sat_images(tmp_path)
    batches = list(iter_image_batches(paths, batch_size=2, threads=2, prefetch_batches=1))
    seen = [p.name[:4] for names, _, _ in batches for p in names]
    assert seen == ["0000", "0001", "0003", "0004", "0005", "0006"]  # file order, 0002 left out
    errors = [e for _, _, errs in batches for e in errs]
    assert len(errors) == 1 and "0002_sat.jpg" in errors[0]
    for names, batch, _ in batches:
        if batch is None:
            continue
        assert batch.dtype == np.uint8 and batch.flags.c_contiguous and len(batch) == len(names) <= 2
        for p, img in zip(names, batch):
            np.testing.assert_array_equal(img, np.asarray(Image.open(p).convert("RGB")).transpose(2, 0, 1))
    assert [b.shape[2:] for _, b, _ in batches if b is not None].count((8, 32)) == 1  # its own batch


# ------------------------------------------------------------------ task pieces
def test_focal_loss_reduces_to_cross_entropy_and_ignores_padding():
    from dlcv.tasks.segmentation import IGNORE, focal_loss, segmentation_loss

    torch.manual_seed(0)
    logits = torch.randn(2, 7, 5, 6)
    target = torch.randint(0, 7, (2, 5, 6))
    target[0, 0] = IGNORE
    ce = F.cross_entropy(logits, target, ignore_index=IGNORE)
    assert torch.allclose(focal_loss(logits, target, gamma=0.0), ce, atol=1e-6)
    assert torch.allclose(segmentation_loss(logits, target, "ce", 2.0), ce)
    # by hand at one pixel: -(1 - p)^2 log p
    one_logits, one_target = logits[:1, :, 1:2, 0:1], target[:1, 1:2, 0:1]
    p = one_logits.softmax(1)[0, one_target[0, 0, 0], 0, 0]
    assert torch.allclose(focal_loss(one_logits, one_target, 2.0), -(1 - p) ** 2 * p.log(), atol=1e-6)
    assert focal_loss(logits, target, 2.0) < ce  # down-weights easy pixels
    with pytest.raises(ValueError, match="unknown loss"):
        segmentation_loss(logits, target, "dice", 2.0)


def test_augment_pair_crops_and_pads_with_ignore():
    from omegaconf import OmegaConf

    from dlcv.jobs.segment import SegAugmentConfig
    from dlcv.tasks.segmentation import IGNORE, augment_pair

    acfg = OmegaConf.structured(SegAugmentConfig(scale=[0.5, 0.5], jitter=0.2))
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 3, 16, 16)
    y = torch.randint(0, 7, (3, 16, 16), dtype=torch.uint8)
    xa, ya = augment_pair(x, y, acfg, crop=24, generator=g)
    assert xa.shape == (3, 3, 24, 24) and ya.shape == (3, 24, 24) and ya.dtype == torch.uint8
    assert (ya == IGNORE).any() and set(ya.unique().tolist()) <= set(range(7)) | {IGNORE}
    assert ((ya == IGNORE) == (xa.sum(1) == 0)).float().mean() > 0.99  # padding is where the image is black
    acfg.enabled = False
    xc, yc = augment_pair(x, y, acfg, crop=8, generator=g)  # a plain random crop
    assert xc.shape == (3, 3, 8, 8) and not (yc == IGNORE).any()
    assert augment_pair(x, y, acfg, crop=0, generator=g)[0] is x


def test_segmenter_normalises_uint8_and_float_the_same():
    from dlcv.models.segmentation import IMAGENET_MEAN, IMAGENET_STD, Segmenter, build_segmenter

    seen = {}

    class Probe(torch.nn.Module):
        def forward(self, x):
            seen["x"] = x
            return x

    seg = Segmenter(Probe(), "probe")
    img = torch.randint(0, 256, (1, 3, 4, 4), dtype=torch.uint8)
    a = seg(img).clone()
    b = seg(img.float() / 255)
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    assert torch.allclose(a, (img.float() / 255 - mean) / std) and torch.allclose(a, b)
    assert "mean" not in seg.state_dict()  # constants, not weights
    with pytest.raises(ValueError, match="unknown segmentation model"):
        build_segmenter("unet")
    with pytest.raises(ValueError, match="no auxiliary head"):
        build_segmenter("fcn32s", aux_loss=True)


def test_overlay_fills_and_outlines():
    from dlcv.analysis.masks_over_epochs import class_boundaries, overlay

    classes = np.zeros((4, 6), np.uint8)
    classes[:, 3:] = 4
    image = np.full((4, 6, 3), 100, np.uint8)
    out = overlay(image, classes, alpha=0.3)
    edge = class_boundaries(classes)
    assert edge[:, 2].all() and edge.sum() == 4  # the pixels left of the class change
    np.testing.assert_array_equal(out[0, 2], CLASS_COLORS[0])  # outline: opaque class colour
    for (r, c), cls in (((0, 0), 0), ((0, 5), 4)):  # fill: 0.7 image + 0.3 class colour, rounded half up
        np.testing.assert_array_equal(out[r, c], np.floor(0.7 * 100 + 0.3 * CLASS_COLORS[cls].astype(float) + 0.5))
