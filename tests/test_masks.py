"""The P3 mask colour codec follows the official rule (binarise at 128, code = 4R + 2G + B)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from dlcv.data.masks import (
    CLASS_COLORS,
    CLASS_NAMES,
    EVAL_CLASSES,
    NUM_CLASSES,
    UNKNOWN,
    decode_mask,
    encode_mask,
    read_mask,
    write_mask,
)
from dlcv.errors import DataError

SPEC_TABLE = {  # class id: (name, RGB, code)
    0: ("urban", (0, 255, 255), 3),
    1: ("agriculture", (255, 255, 0), 6),
    2: ("rangeland", (255, 0, 255), 5),
    3: ("forest", (0, 255, 0), 2),
    4: ("water", (0, 0, 255), 1),
    5: ("barren", (255, 255, 255), 7),
    6: ("unknown", (0, 0, 0), 0),
}


def test_constants_match_spec_table():
    assert NUM_CLASSES == 7 and EVAL_CLASSES == 6 and UNKNOWN == 6
    assert CLASS_COLORS.shape == (7, 3) and CLASS_COLORS.dtype == np.uint8
    for cid, (name, rgb, code) in SPEC_TABLE.items():
        assert CLASS_NAMES[cid] == name
        assert tuple(int(v) for v in CLASS_COLORS[cid]) == rgb
        r, g, b = (int(v >= 128) for v in rgb)
        assert 4 * r + 2 * g + b == code


def test_round_trip_all_colours():
    classes = np.arange(7, dtype=np.uint8).reshape(1, 7).repeat(3, axis=0)
    rgb = encode_mask(classes)
    assert rgb.dtype == np.uint8 and rgb.shape == (3, 7, 3)
    decoded, n_red = decode_mask(rgb)
    assert n_red == 0
    assert decoded.dtype == np.uint8
    np.testing.assert_array_equal(decoded, classes)


@pytest.mark.parametrize("channel", [0, 1, 2])
def test_threshold_at_128_every_channel(channel):
    for value, bit in ((0, 0), (127, 0), (128, 1), (255, 1)):
        pixel = np.zeros((1, 1, 3), np.uint8)
        pixel[0, 0, channel] = value
        code = bit << (2 - channel)  # R weighs 4, G 2, B 1
        expected = {3: 0, 6: 1, 5: 2, 2: 3, 1: 4, 7: 5, 0: 6, 4: 6}[code]
        classes, n_red = decode_mask(pixel)
        assert classes[0, 0] == expected, (channel, value)
        assert n_red == (1 if code == 4 else 0)


def test_threshold_all_channels_together():
    assert decode_mask(np.full((1, 1, 3), 127, np.uint8))[0][0, 0] == 6
    assert decode_mask(np.full((1, 1, 3), 128, np.uint8))[0][0, 0] == 5


def test_red_and_near_red_are_unknown_and_counted():
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[0, 0] = (255, 0, 0)
    rgb[0, 1] = (200, 127, 30)  # near red: still code 4
    rgb[0, 2] = (128, 0, 127)
    rgb[1, :] = (0, 255, 255)   # urban
    classes, n_red = decode_mask(rgb)
    assert n_red == 3
    np.testing.assert_array_equal(classes, [[6, 6, 6], [0, 0, 0]])


def test_off_palette_colours_follow_binarisation():
    cases = {(200, 100, 30): 6,    # code 4 -> unknown (red)
             (200, 130, 30): 1,    # code 6 -> agriculture
             (10, 140, 250): 0,    # code 3 -> urban
             (129, 20, 200): 2,    # code 5 -> rangeland
             (90, 128, 5): 3,      # code 2 -> forest
             (3, 4, 131): 4,       # code 1 -> water
             (250, 240, 128): 5,   # code 7 -> barren
             (127, 127, 127): 6}   # code 0 -> unknown
    rgb = np.array([list(cases)], np.uint8)
    classes, n_red = decode_mask(rgb)
    assert classes[0].tolist() == list(cases.values())
    assert n_red == 1


@pytest.mark.parametrize("bad", [7, -1, 255])
def test_encode_rejects_out_of_range(bad):
    classes = np.array([[0, 1], [bad, 6]], dtype=np.int64)
    with pytest.raises(ValueError, match=str(bad)):
        encode_mask(classes)


def test_decode_rejects_wrong_shape():
    with pytest.raises(ValueError):
        decode_mask(np.zeros((4, 4), np.uint8))


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.uint8, hnp.array_shapes(min_dims=3, max_dims=3, min_side=1, max_side=12)
                  .map(lambda s: (s[0], s[1], 3))))
def test_decode_encode_decode_is_stable(rgb):
    classes, n_red = decode_mask(rgb)
    assert classes.shape == rgb.shape[:2]
    assert classes.dtype == np.uint8
    assert set(np.unique(classes).tolist()) <= set(range(7))
    assert 0 <= n_red <= classes.size
    again, red_again = decode_mask(encode_mask(classes))
    np.testing.assert_array_equal(again, classes)
    assert red_again == 0


@settings(max_examples=30, deadline=None)
@given(hnp.arrays(np.int64, st.tuples(st.integers(1, 10), st.integers(1, 10)), elements=st.integers(0, 6)))
def test_encode_gives_only_legal_colours(classes):
    rgb = encode_mask(classes)
    legal = {tuple(c) for c in CLASS_COLORS.tolist()}
    assert {tuple(p) for p in rgb.reshape(-1, 3).tolist()} <= legal


def test_png_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    classes = rng.integers(0, 7, size=(37, 53)).astype(np.uint8)
    path = tmp_path / "sub" / "0000_mask.png"
    write_mask(path, classes)
    assert path.is_file()
    assert [p.name for p in path.parent.iterdir()] == ["0000_mask.png"]  # no temp files left
    with Image.open(path) as img:
        assert img.mode == "RGB" and img.size == (53, 37) and img.format == "PNG"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(read_mask(path), classes)


def test_read_mask_warns_once_for_red(tmp_path):
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[:2, :2] = (255, 0, 0)
    path = tmp_path / "red_mask.png"
    Image.fromarray(rgb).save(path)
    with pytest.warns(UserWarning, match=r"red_mask\.png.*\b4 red") as record:
        classes = read_mask(path)
    assert len([w for w in record if "red" in str(w.message)]) == 1
    assert (classes == UNKNOWN).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_mask(path, warn=False)


def test_read_mask_palette_and_grey_png(tmp_path):
    pal = Image.fromarray(np.array([[0, 1], [1, 0]], np.uint8), "P")
    pal.putpalette([0, 255, 0, 0, 0, 255] + [0] * 762)
    pal.save(tmp_path / "p.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "p.png"), [[3, 4], [4, 3]])
    Image.fromarray(np.array([[0, 255]], np.uint8), "L").save(tmp_path / "l.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "l.png"), [[6, 5]])


def test_read_mask_errors_name_the_file(tmp_path):
    bad = tmp_path / "broken_mask.png"
    bad.write_bytes(b"not a png at all")
    with pytest.raises(DataError, match="broken_mask.png"):
        read_mask(bad)
    with pytest.raises(DataError, match="missing_mask.png"):
        read_mask(tmp_path / "missing_mask.png")


def test_write_mask_rejects_bad_ids_without_leaving_files(tmp_path):
    with pytest.raises(ValueError):
        write_mask(tmp_path / "x.png", np.full((2, 2), 9))
    assert list(tmp_path.iterdir()) == []
