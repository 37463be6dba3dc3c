"""P2 Office-Home readers: the CSV rules, the 128 px decoding, the cache, and the CSV-ordered test reader."""
import os

import numpy as np
import pytest
from PIL import Image

from dlcv.data.images import read_rgb, resize_center_crop
from dlcv.data.office import load_office_csv_images, load_office_split, read_office_csv
from dlcv.errors import DataError


def _office(tmp_path, sizes=((200, 100), (90, 160), (128, 128))):
    """An office folder with a `train` split of len(sizes) JPGs (label i % 65) and its CSV."""
    office = tmp_path / "office"
    folder = office / "train"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    lines = ["id,filename,label"]
    for i, (w, h) in enumerate(sizes):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / f"{i}_{i}.jpg")
        lines.append(f"{i},{i}_{i}.jpg,{i % 65}")
    (office / "train.csv").write_text("\n".join(lines) + "\n")
    return office


def _csv(office, text):
    path = office / "test.csv"
    path.write_text(text)
    return path


def test_split_resizes_every_image_to_128_like_torchvision(tmp_path):
    office = _office(tmp_path)
    s = load_office_split(office, "train")
    assert s.images.shape == (3, 3, 128, 128) and s.images.dtype == np.uint8
    assert s.labels.tolist() == [0, 1, 2] and s.names == ["0_0.jpg", "1_1.jpg", "2_2.jpg"]
    # Resize(128) of the shorter side + CenterCrop(128); a 128x128 image is untouched
    expected = read_rgb(office / "train" / "0_0.jpg", resize=resize_center_crop(128)).transpose(2, 0, 1)
    assert np.array_equal(s.images[0], expected)
    assert np.array_equal(s.images[2], read_rgb(office / "train" / "2_2.jpg").transpose(2, 0, 1))
    assert load_office_split(office, "train", image_size=48).images.shape == (3, 3, 48, 48)


def test_split_is_decoded_once_into_the_cache(tmp_path, monkeypatch):
    office = _office(tmp_path)
    first = load_office_split(office, "train", cache_dir=tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("office-train-128px-*.npy"))) == 1
    import dlcv.data.office as office_module

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again although the cache is valid")

    monkeypatch.setattr(office_module, "read_many", no_decoding)
    again = load_office_split(office, "train", cache_dir=tmp_path / "cache")
    assert np.array_equal(first.images, again.images)
    monkeypatch.undo()
    # a changed file changes the key: rebuilt, not served stale
    Image.new("RGB", (64, 64), (255, 0, 0)).save(office / "train" / "1_1.jpg")
    os.utime(office / "train" / "1_1.jpg", (1, 1))
    changed = load_office_split(office, "train", cache_dir=tmp_path / "cache")
    assert (changed.images[1, 0] > 200).all() and not np.array_equal(changed.images[1], first.images[1])


def test_demo_split_has_65_classes(demo_root):
    train = load_office_split(demo_root / "p2_data" / "office", "train")
    val = load_office_split(demo_root / "p2_data" / "office", "val")
    assert train.images.shape == (130, 3, 128, 128) and val.images.shape == (65, 3, 128, 128)
    assert sorted(set(train.labels.tolist())) == list(range(65))


def test_unlabelled_rows_none_or_empty(tmp_path):
    office = _office(tmp_path)
    path = _csv(office, "id,filename,label\n7,2_2.jpg,None\n3,0_0.jpg,\n9,1_1.jpg,none\n")
    rows = read_office_csv(path, office / "train")
    assert [(r.id, r.filename, r.label) for r in rows] == [("7", "2_2.jpg", None), ("3", "0_0.jpg", None),
                                                           ("9", "1_1.jpg", None)]
    rows, images = load_office_csv_images(path, office / "train")
    assert images.names == ["2_2.jpg", "0_0.jpg", "1_1.jpg"]  # CSV order, not name order
    assert images.labels.tolist() == [-1, -1, -1] and images.images.shape == (3, 3, 128, 128)
    # a training split must be labelled
    (office / "train.csv").write_text("id,filename,label\n0,0_0.jpg,None\n")
    with pytest.raises(DataError, match=r"train.csv, line 2: the train split must be labelled"):
        load_office_split(office, "train")


@pytest.mark.parametrize("text, message", [
    ("", "empty CSV"),
    ("id,filename,label\n", "no image rows"),
    ("filename,id,label\n0,0_0.jpg,0\n", "header must be exactly id,filename,label"),
    ("id,filename\n0,0_0.jpg\n", "header must be exactly"),
    ("id,filename,label,domain\n0,0_0.jpg,0,art\n", "header must be exactly"),  # extra columns: rejected
    ("id,filename,label\n0,0_0.jpg\n", "line 2: 2 fields, expected 3"),
    ("id,filename,label\n0,0_0.jpg,0,x\n", "line 2: 4 fields"),
    ("id,filename,label\n0,0_0.jpg,65\n", "line 2: label 65 is outside 0..64"),
    ("id,filename,label\n0,0_0.jpg,cat\n", "line 2: label 'cat' is not an integer"),
    ("id,filename,label\n0,0_0.jpg,1\n1,1_1.jpg,2\n2,0_0.jpg,3\n", "line 4: filename '0_0.jpg' is listed twice \\(first on line 2\\)"),
    ("id,filename,label\n0,,1\n", "line 2: empty filename"),
    ("id,filename,label\n0,/etc/passwd,1\n", "absolute path"),
    ("id,filename,label\n0,../train.csv,1\n", "contains '..'"),
    ("id,filename,label\n0,sub/../../x.jpg,1\n", "contains '..'"),
])
def test_csv_errors_name_the_file_and_the_problem(tmp_path, text, message):
    office = _office(tmp_path)
    path = _csv(office, text)
    with pytest.raises(DataError, match=message) as err:
        read_office_csv(path, office / "train")
    assert str(path) in str(err.value)


def test_bom_and_blank_lines_are_tolerated(tmp_path):
    office = _office(tmp_path)
    path = office / "test.csv"
    path.write_bytes("\ufeffid,filename,label\r\n0,0_0.jpg,5\r\n\r\n1,1_1.jpg,\r\n".encode())
    rows = read_office_csv(path, office / "train")
    assert [(r.filename, r.label, r.line) for r in rows] == [("0_0.jpg", 5, 2), ("1_1.jpg", None, 4)]


def test_symlink_out_of_the_folder_is_rejected(tmp_path):
    office = _office(tmp_path)
    outside = tmp_path / "secret.jpg"
    Image.new("RGB", (8, 8)).save(outside)
    (office / "train" / "link.jpg").symlink_to(outside)
    (office / "train" / "inside.jpg").symlink_to(office / "train" / "0_0.jpg")  # inside: fine
    assert len(read_office_csv(_csv(office, "id,filename,label\n0,inside.jpg,1\n"), office / "train")) == 1
    with pytest.raises(DataError, match="outside .* \\(a symlink\\?\\)"):
        read_office_csv(_csv(office, "id,filename,label\n0,link.jpg,1\n"), office / "train")


def test_missing_file_or_folder(tmp_path):
    office = _office(tmp_path)
    (office / "train" / "1_1.jpg").unlink()
    with pytest.raises(DataError, match=r"1_1.jpg: listed in .*train.csv but not found"):
        load_office_split(office, "train")
    with pytest.raises(DataError, match="val.csv: CSV file not found"):
        load_office_split(office, "val")
    with pytest.raises(DataError, match="image folder not found"):
        read_office_csv(office / "train.csv", office / "nowhere")


def test_prediction_reader_keeps_unreadable_rows_in_place(tmp_path):
    office = _office(tmp_path)
    (office / "train" / "1_1.jpg").write_bytes(b"not a jpeg")
    (office / "train" / "0_0.jpg").unlink()
    path = _csv(office, "id,filename,label\n10,2_2.jpg,\n11,0_0.jpg,\n12,1_1.jpg,None\n")
    rows, images = load_office_csv_images(path, office / "train")
    assert [r.id for r in rows] == ["10", "11", "12"]
    assert images.meta["readable"] == [True, False, False]
    assert images.names == ["2_2.jpg"] and len(images.images) == 1
    errors = " ".join(images.meta["errors"])
    assert "0_0.jpg: file not found" in errors and "1_1.jpg: not a readable image" in errors


# ---------------------------------------------------------------------------------------------
# property-based: the CSV reader (hypothesis)
import csv as csv_module  # noqa: E402
import io as _io  # noqa: E402

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_NAME = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_. -]{0,11}\.(jpg|png|JPG)", fullmatch=True)
_ID = st.text(st.characters(blacklist_categories=("Cs",)), max_size=8)  # anything, kept verbatim
_LABEL = st.one_of(st.none(), st.integers(0, 64))
_ROWS = st.lists(st.tuples(_ID, _NAME, _LABEL, st.sampled_from(["", "None", "none", " "])), min_size=1,
                 max_size=12, unique_by=lambda r: r[1])
_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@_SETTINGS
@given(rows=_ROWS, crlf=st.booleans(), bom=st.booleans())
def test_random_valid_rows_round_trip(tmp_path, rows, crlf, bom):
    """Any ids (commas, quotes, line breaks, unicode: kept verbatim), any safe file names, labels
    0..64 or unlabelled (empty / None / none / blank): written by csv.writer, read back unchanged."""
    (tmp_path / "images").mkdir(exist_ok=True)
    buf = _io.StringIO()
    # csv.writer quotes a cell holding "\r" only if "\r" ends its lines: with "\n" lines, quote all
    writer = csv_module.writer(buf, lineterminator="\r\n" if crlf else "\n",
                         quoting=csv_module.QUOTE_MINIMAL if crlf else csv_module.QUOTE_ALL)
    writer.writerow(["id", "filename", "label"])
    for row_id, name, label, empty in rows:
        writer.writerow([row_id, name, empty if label is None else str(label)])
    path = tmp_path / "rows.csv"
    path.write_bytes(("\ufeff" if bom else "").encode() + buf.getvalue().encode("utf-8"))
    got = read_office_csv(path, tmp_path / "images")
    assert [(r.id, r.filename, r.label) for r in got] == [(i, n, l) for i, n, l, _ in rows]


_CSV_ALPHABET = st.sampled_from(list('id,filename,label0123456789.jpg/\\ "\r\n\t\x00\ufeff:Ne-') + ["..", "None"])


@_SETTINGS
@given(data=st.one_of(
    st.binary(max_size=300),
    st.lists(_CSV_ALPHABET, max_size=120).map(lambda parts: "".join(parts).encode("utf-8", "surrogatepass")),
    st.lists(_CSV_ALPHABET, max_size=80).map(lambda parts: ("id,filename,label\n" + "".join(parts)).encode()),
    # header + rows of three garbage cells: reaches the per-cell checks (file names, labels)
    st.lists(st.lists(st.lists(_CSV_ALPHABET, max_size=6).map("".join), min_size=3, max_size=3).map(",".join),
             min_size=1, max_size=6).map(lambda rows: ("id,filename,label\n" + "\n".join(rows)).encode()),
))
def test_random_garbage_never_crashes_with_anything_but_data_error(tmp_path, data):
    (tmp_path / "images").mkdir(exist_ok=True)
    path = tmp_path / "garbage.csv"
    path.write_bytes(data)
    try:
        rows = read_office_csv(path, tmp_path / "images")
    except DataError as exc:
        assert str(path) in str(exc)  # every message names the CSV
        return
    for r in rows:  # what is accepted obeys the rules
        assert r.filename and ".." not in r.filename.replace("\\", "/").split("/") and not r.filename.startswith("/")
        assert (tmp_path / "images" / r.filename).resolve().is_relative_to((tmp_path / "images").resolve())
        assert r.label is None or 0 <= r.label <= 64
    assert len({r.filename for r in rows}) == len(rows)
