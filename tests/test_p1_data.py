import numpy as np
import pytest
from PIL import Image

from dlcv.data.images import read_rgb
from dlcv.data.p1 import load_p1_folder, parse_label
from dlcv.data.sets import BatchDataset
from dlcv.errors import DataError


def _write(folder, name, arr, mode=None):
    folder.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(arr) if mode is None else Image.fromarray(arr).convert(mode)
    img.save(folder / name)


def test_parse_label_accepts_the_layout_and_rejects_others(tmp_path):
    assert parse_label(tmp_path / "7_123.png") == 7
    assert parse_label(tmp_path / "49_0.png") == 49
    for bad in ["cat_1.png", "7-1.png", "7_1.jpg", "50_1.png", "_1.png", "7_.png"]:
        with pytest.raises(DataError, match=bad.replace(".", r"\.")):
            parse_label(tmp_path / bad)


def test_folder_decodes_labels_names_and_pixels(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {f"{c}_{i}.png": rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for c in (0, 3, 49) for i in (1, 2)}
    for name, arr in arrays.items():
        _write(tmp_path, name, arr)
    s = load_p1_folder(tmp_path)
    assert s.images.shape == (6, 3, 32, 32) and s.images.dtype == np.uint8
    assert sorted(s.labels.tolist()) == [0, 0, 3, 3, 49, 49]
    for i, name in enumerate(s.names):
        assert int(name.split("_")[0]) == s.labels[i]
        assert np.array_equal(s.images[i].transpose(1, 2, 0), arrays[name])


def test_cache_is_reused_and_invalidated(tmp_path):
    data, cache = tmp_path / "d", tmp_path / "cache"
    _write(data, "1_1.png", np.full((32, 32, 3), 10, np.uint8))
    first = load_p1_folder(data, cache_dir=cache)
    assert len(list(cache.glob("*.npy"))) == 1
    again = load_p1_folder(data, cache_dir=cache)
    assert np.array_equal(first.images, again.images)
    _write(data, "2_1.png", np.full((32, 32, 3), 20, np.uint8))  # a new file -> a new cache key
    third = load_p1_folder(data, cache_dir=cache)
    assert len(third) == 2 and len(list(cache.glob("*.npy"))) == 1


def test_modes_are_converted_to_rgb(tmp_path):
    gray = np.arange(32 * 32, dtype=np.uint8).reshape(32, 32)
    _write(tmp_path, "1_1.png", gray, "L")
    rgba = np.zeros((32, 32, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "2_1.png")
    Image.fromarray(np.full((32, 32, 3), 90, np.uint8)).convert("P", palette=Image.ADAPTIVE).save(tmp_path / "3_1.png")
    Image.fromarray(gray.astype(np.uint16) * 256).save(tmp_path / "4_1.png")  # 16-bit grayscale
    s = load_p1_folder(tmp_path)
    assert s.images.shape == (4, 3, 32, 32)
    by_name = dict(zip(s.names, s.images))
    assert np.array_equal(by_name["1_1.png"][0], gray) and np.array_equal(by_name["1_1.png"][2], gray)
    assert by_name["2_1.png"][0].min() == 200 and by_name["2_1.png"][1].max() == 0
    assert by_name["3_1.png"].min() == by_name["3_1.png"].max() == 90
    assert np.abs(by_name["4_1.png"][1].astype(int) - gray).max() <= 1  # 16 bit scaled, not clipped


def test_bad_files_are_named(tmp_path):
    _write(tmp_path, "1_1.png", np.zeros((32, 32, 3), np.uint8))
    (tmp_path / "2_1.png").write_bytes(b"")
    with pytest.raises(DataError, match=r"2_1\.png: empty file"):
        load_p1_folder(tmp_path)
    (tmp_path / "2_1.png").write_bytes(b"not an image at all")
    with pytest.raises(DataError, match=r"2_1\.png: not a readable image"):
        load_p1_folder(tmp_path)
    (tmp_path / "2_1.png").unlink()
    _write(tmp_path, "3_1.png", np.zeros((30, 32, 3), np.uint8))
    with pytest.raises(DataError, match=r"3_1\.png: expected 32x32"):
        load_p1_folder(tmp_path)


def test_missing_and_empty_folders(tmp_path):
    with pytest.raises(DataError, match="folder not found"):
        load_p1_folder(tmp_path / "nope")
    with pytest.raises(DataError, match="no images"):
        load_p1_folder(tmp_path)


def test_test_folder_any_names_resized_and_unreadable_collected(tmp_path):
    _write(tmp_path, "weird name.v2.png", np.zeros((32, 32, 3), np.uint8))
    _write(tmp_path, "big.png", np.full((64, 48, 3), 7, np.uint8))
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    s = load_p1_folder(tmp_path, labelled=False, on_error="collect")
    assert s.names == ["big.png", "weird name.v2.png"]
    assert s.images.shape == (2, 3, 32, 32) and (s.labels == -1).all()
    assert len(s.meta["errors"]) == 1 and "broken.png" in s.meta["errors"][0]


def test_truncated_png_is_an_error(tmp_path):
    _write(tmp_path, "1_1.png", np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    data = (tmp_path / "1_1.png").read_bytes()
    (tmp_path / "1_1.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"1_1\.png"):
        read_rgb(tmp_path / "1_1.png")


def test_batch_dataset_serves_batches_in_sampler_order():
    images = np.arange(5 * 3 * 2 * 2, dtype=np.uint8).reshape(5, 3, 2, 2)
    ds = BatchDataset(images, np.arange(5))
    x, y = ds.__getitems__([4, 0, 2])
    assert y.tolist() == [4, 0, 2] and y.dtype.is_floating_point is False
    assert np.array_equal(x.numpy(), images[[4, 0, 2]])
