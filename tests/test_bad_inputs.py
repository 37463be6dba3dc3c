"""The bad-input corpus through every reader and every graded script.

The corpus is generated (scripts/make_bad_corpus.py, deterministic, ~40 files) into a temporary
folder once per session; tests/data/bad/README.md is the table of what each reader and script does
with each item, and these tests are that table, item by item:
  * training/validation readers (P1 train/val, Office train/val, mini, P3 train/val): a DataError
    naming the file and the problem; modes (grayscale, CMYK, RGBA, palette, 16-bit) are converted;
  * prediction readers and hw1_1/2/3.sh: every readable input still gets its row/mask, each
    unreadable one is named on stderr, the exit status is 2;
  * folders, CSVs and output paths: a clear error naming the path before anything is computed.
The graded scripts run once each (bash, as a grader runs them) on a folder holding every image item.
"""
from __future__ import annotations

import csv
import importlib.util
import os
import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dlcv.cli import main as cli_main
from dlcv.data.images import read_rgb
from dlcv.data.masks import CLASS_COLORS, UNKNOWN, decode_mask, read_mask
from dlcv.errors import DataError
from tests.helpers import REPO, run_graded

_spec = importlib.util.spec_from_file_location("make_bad_corpus", REPO / "scripts" / "make_bad_corpus.py")
corpus_script = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(corpus_script)

SIZE = corpus_script.SIZE
IMAGE_ITEMS = sorted(corpus_script.IMAGE_ITEMS)
OK = {"ok_png", "ok_jpg"}
UNREADABLE = {  # item -> what the message says
    "truncated_png": "not a readable image", "corrupt_png": "not a readable image",
    "truncated_jpg": "not a readable image", "corrupt_jpg": "not a readable image",
    "zero_png": "empty file (0 bytes)", "zero_jpg": "empty file (0 bytes)",
    "text_png": "not a readable image", "text_jpg": "not a readable image",
}
CONVERTED = {"gray_png", "gray_jpg", "cmyk_jpg", "rgba_png", "palette_png", "gray16_png", "rgb16_png"}
WRONG_SIZE = {"wrong_size_png", "wrong_size_jpg"}
assert OK | set(UNREADABLE) | CONVERTED | WRONG_SIZE == set(IMAGE_ITEMS)
LEGAL = {tuple(int(v) for v in c) for c in CLASS_COLORS}


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> dict[str, Path]:
    return corpus_script.make_corpus(tmp_path_factory.mktemp("bad") / "corpus")


def _ext(item: str) -> str:
    return "." + item.rsplit("_", 1)[1]


def _place(corpus, item: str, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(corpus[item], dest)
    return dest


def _size(path: Path) -> tuple[int, int]:
    with Image.open(path) as img:
        return img.size


# ---------------------------------------------------------------------------------------- corpus
def test_corpus_is_deterministic_and_refuses_foreign_folders(corpus, tmp_path):
    again = corpus_script.make_corpus(tmp_path / "again")
    for name, path in corpus.items():
        if path.is_file():
            assert path.read_bytes() == again[name].read_bytes(), name
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "precious.txt").write_text("not the corpus's")
    with pytest.raises(FileExistsError):
        corpus_script.make_corpus(tmp_path / "mine")
    assert (tmp_path / "mine" / "precious.txt").exists()


def test_the_readme_table_lists_every_item():
    readme = (REPO / "tests" / "data" / "bad" / "README.md").read_text()
    for name, (rel, _) in corpus_script.ITEMS.items():
        assert f"`{Path(rel).name}`" in readme or f"`{Path(rel).name}/`" in readme, (name, rel)


# ---------------------------------------------------------------------------------------- the decoder
@pytest.mark.parametrize("item", IMAGE_ITEMS)
def test_decoder(corpus, item):
    """dlcv.data.images.read_rgb, under every reader: errors name the file; modes become 8-bit RGB."""
    path = corpus[item]
    if item in UNREADABLE:
        with pytest.raises(DataError, match=re.escape(str(path)) + ": " + re.escape(UNREADABLE[item])):
            read_rgb(path)
        return
    rgb = read_rgb(path)
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
    assert rgb.shape[1::-1] == _size(path)
    ok_png, ok_jpg = read_rgb(corpus["ok_png"]), read_rgb(corpus["ok_jpg"])
    if item in ("gray_png", "gray_jpg"):
        assert (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()
    elif item == "cmyk_jpg":
        assert np.abs(rgb.astype(int) - ok_jpg).mean() < 8  # CMYK -> RGB, up to JPEG loss
    elif item == "rgba_png":  # composited on black: the transparent left half is black
        assert (rgb[:, : SIZE // 2] == 0).all() and (rgb[:, SIZE // 2:] == ok_png[:, SIZE // 2:]).all()
    elif item == "palette_png":
        assert {tuple(p) for p in rgb.reshape(-1, 3).tolist()} <= LEGAL
    elif item == "gray16_png":  # scaled from 0..65535 to 0..255, not clipped at 255
        assert rgb[0, 0, 0] == 0 and rgb[-1, -1, 0] == 255 and 100 < rgb.mean() < 155
    elif item == "rgb16_png":  # 16-bit v * 257 -> 8-bit v exactly
        assert (rgb == ok_png).all()


# ---------------------------------------------------------------------------------------- P1
@pytest.mark.parametrize("item", IMAGE_ITEMS)
def test_p1_train_val_reader(corpus, tmp_path, item):
    """P1 train_50/val_50 (labelled): {label}_{id}.png of exactly 32x32; anything else stops training."""
    from dlcv.data.p1 import load_p1_folder

    folder = tmp_path / "train_50"
    _place(corpus, "ok_png", folder / "0_0.png")
    bad = _place(corpus, item, folder / f"1_1{_ext(item)}")
    if bad.suffix == ".jpg":  # the P1 folders are PNG folders: other files are not listed
        s = load_p1_folder(folder)
        assert s.names == ["0_0.png"]
        return
    if item in UNREADABLE:
        with pytest.raises(DataError, match=re.escape(str(bad)) + ": " + re.escape(UNREADABLE[item])):
            load_p1_folder(folder)
    elif item in WRONG_SIZE:
        with pytest.raises(DataError, match=r"1_1.png: expected 32x32 pixels, found 31x32"):
            load_p1_folder(folder)
    else:
        s = load_p1_folder(folder)
        assert s.images.shape == (2, 3, SIZE, SIZE) and s.labels.tolist() == [0, 1]
        assert (s.images[1] == read_rgb(bad).transpose(2, 0, 1)).all()


@pytest.mark.parametrize("item", IMAGE_ITEMS)
def test_p1_test_reader(corpus, tmp_path, capsys, item):
    """P1 test folder (hw1_1.sh's reader): any name; unreadable -> skipped and reported; other sizes resized."""
    from dlcv.data.p1 import load_p1_folder

    folder = tmp_path / "test"
    _place(corpus, "ok_png", folder / "a.png")
    bad = _place(corpus, item, folder / f"b{_ext(item)}")
    s = load_p1_folder(folder, labelled=False, on_error="collect")
    if item in UNREADABLE:
        assert s.names == ["a.png"] and len(s.images) == 1
        assert len(s.meta["errors"]) == 1 and str(bad) in s.meta["errors"][0]
        return
    assert s.names == ["a.png", bad.name] and s.images.shape == (2, 3, SIZE, SIZE) and not s.meta["errors"]
    if item in WRONG_SIZE:
        assert "were resized" in capsys.readouterr().err


def test_p1_training_stops_on_a_bad_file_before_training(corpus, demo_root, tmp_path, capsys):
    """`dlcv train` on a P1 folder holding a truncated PNG: exit 2, the file named, nothing written."""
    root = tmp_path / "hw1_data"
    for split in ("train_50", "val_50"):
        (root / "p1_data" / split).mkdir(parents=True)
        for src in sorted((demo_root / "p1_data" / split).glob("*.png"))[:4]:
            shutil.copyfile(src, root / "p1_data" / split / src.name)
    bad = _place(corpus, "truncated_png", root / "p1_data" / "train_50" / "3_999.png")
    code = cli_main(["train", "configs/demo/p1_seed_a.yaml", f"data.root={root}", f"run.dir={tmp_path / 'runs'}",
                     "trainer.epochs=1", "trainer.progress=false", "features.enabled=false"])
    assert code == 2
    assert f"{bad}: not a readable image" in capsys.readouterr().err
    assert not list((tmp_path / "runs").glob("*/checkpoints/*.ckpt"))


# ---------------------------------------------------------------------------------------- Office
@pytest.mark.parametrize("item", IMAGE_ITEMS)
def test_office_split_reader(corpus, tmp_path, item):
    """Office train/val: every listed image must decode; any size -> Resize(128) + CenterCrop(128)."""
    from dlcv.data.office import load_office_split

    office = tmp_path / "office"
    _place(corpus, "ok_jpg", office / "train" / "ok.jpg")
    bad = _place(corpus, item, office / "train" / f"item{_ext(item)}")
    (office / "train.csv").write_text(f"id,filename,label\n0,ok.jpg,3\n1,{bad.name},64\n")
    if item in UNREADABLE:
        with pytest.raises(DataError, match=re.escape(str(bad)) + ": " + re.escape(UNREADABLE[item])):
            load_office_split(office, "train")
        return
    s = load_office_split(office, "train", image_size=48)
    assert s.images.shape == (2, 3, 48, 48) and s.labels.tolist() == [3, 64]


@pytest.mark.parametrize("item", IMAGE_ITEMS)
def test_office_prediction_reader(corpus, tmp_path, item):
    """hw1_2.sh's reader: the row of an unreadable image stays (readable False) and is reported."""
    from dlcv.data.office import load_office_csv_images

    folder = tmp_path / "images"
    _place(corpus, "ok_jpg", folder / "ok.jpg")
    bad = _place(corpus, item, folder / f"item{_ext(item)}")
    (tmp_path / "test.csv").write_text(f"id,filename,label\n7,{bad.name},None\n8,ok.jpg,\n")
    rows, s = load_office_csv_images(tmp_path / "test.csv", folder, 48)
    assert [r.id for r in rows] == ["7", "8"]
    if item in UNREADABLE:
        assert s.meta["readable"] == [False, True] and s.names == ["ok.jpg"]
        assert len(s.meta["errors"]) == 1 and str(bad) in s.meta["errors"][0]
    else:
        assert s.meta["readable"] == [True, True] and s.images.shape == (2, 3, 48, 48)


CSV_ERRORS = {  # CSV item -> message, for the training reader and hw1_2.sh alike
    "csv_no_header": "header must be exactly id,filename,label",
    "csv_extra_columns": "header must be exactly id,filename,label",
    "csv_duplicate": "line 4: filename 'ok.jpg' is listed twice (first on line 2)",
    "csv_escaping": "line 3: filename '../ok.csv' contains '..'",
    "csv_absolute": "line 2: filename '/etc/hostname' is an absolute path",
    "csv_empty": "empty CSV",
}


@pytest.mark.parametrize("item", sorted(CSV_ERRORS) + ["csv_ok", "csv_missing_image"])
def test_office_csv_items_in_the_training_reader(corpus, tmp_path, item):
    from dlcv.data.office import load_office_split

    office = tmp_path / "office"
    shutil.copytree(corpus["csv_ok"].parent / "images", office / "train")
    csv_path = _place(corpus, item, office / "train.csv")
    if item == "csv_ok":  # `None`/empty labels: fine for prediction, not for training
        with pytest.raises(DataError, match="line 3: the train split must be labelled"):
            load_office_split(office, "train")
    elif item == "csv_missing_image":
        with pytest.raises(DataError, match=re.escape(str(office / "train" / "not_there.jpg")) + ": listed in"):
            load_office_split(office, "train")
    else:
        with pytest.raises(DataError, match=re.escape(str(csv_path)) + ".*" + re.escape(CSV_ERRORS[item])):
            load_office_split(office, "train")


# ---------------------------------------------------------------------------------------- mini
@pytest.mark.parametrize("item", IMAGE_ITEMS)
def test_mini_reader(corpus, tmp_path, item):
    """BYOL's mini/train: every image decodes and has the size of the first one (84 px real)."""
    from dlcv.data.mini import load_mini_folder

    folder = tmp_path / "mini" / "train"
    _place(corpus, "ok_png", folder / "a.png")
    bad = _place(corpus, item, folder / f"b{_ext(item)}")
    if item in UNREADABLE:
        with pytest.raises(DataError, match=re.escape(str(bad)) + ": " + re.escape(UNREADABLE[item])):
            load_mini_folder(folder)
    elif item in WRONG_SIZE:
        w, h = _size(bad)
        with pytest.raises(DataError, match=f"{bad.name}: expected 32x32 pixels, found {w}x{h}"):
            load_mini_folder(folder)
    else:
        assert load_mini_folder(folder).images.shape == (2, 3, SIZE, SIZE)
        assert load_mini_folder(folder, image_size=16).images.shape == (2, 3, 16, 16)


# ---------------------------------------------------------------------------------------- P3
def _p3_split(corpus, folder: Path, sat_item: str = "ok_jpg", mask_item: str = "ok_mask") -> tuple[Path, Path]:
    _place(corpus, "ok_jpg", folder / "0000_sat.jpg")
    _place(corpus, "ok_mask", folder / "0000_mask.png")
    sat = _place(corpus, sat_item, folder / f"0001_sat{_ext(sat_item)}")
    mask = _place(corpus, mask_item, folder / "0001_mask.png")
    return sat, mask


@pytest.mark.parametrize("item", IMAGE_ITEMS)
def test_p3_split_reader_satellite_images(corpus, tmp_path, item):
    from dlcv.data.satellite import load_satellite_split

    sat, _ = _p3_split(corpus, tmp_path / "train", sat_item=item)
    if item in UNREADABLE:
        with pytest.raises(DataError, match=re.escape(str(sat)) + ": " + re.escape(UNREADABLE[item])):
            load_satellite_split(tmp_path / "train")
    elif item in WRONG_SIZE:
        w, h = _size(sat)
        with pytest.raises(DataError, match=f"0001_sat{sat.suffix}: expected 32x32 pixels, found {w}x{h}"):
            load_satellite_split(tmp_path / "train")
    else:
        s = load_satellite_split(tmp_path / "train", cache_dir=tmp_path / "cache")
        assert s.images.shape == (2, 3, SIZE, SIZE) and s.names == ["0000", "0001"]


MASK_FILE_ITEMS = sorted(i for i in IMAGE_ITEMS if i.endswith("_png")) + sorted(corpus_script.MASK_ITEMS)


@pytest.mark.parametrize("item", MASK_FILE_ITEMS)
def test_p3_masks_in_the_split_reader_and_read_mask(corpus, tmp_path, item):
    """Masks decode one way everywhere (training reader == read_mask == score-masks): modes converted,
    alpha ignored (the official tool reads R, G, B), each channel >= 128, red (code 4) -> unknown, warned."""
    from dlcv.data.satellite import load_satellite_split

    _, mask = _p3_split(corpus, tmp_path / "train", mask_item=item)
    if item in UNREADABLE:
        for load in (lambda: load_satellite_split(tmp_path / "train"), lambda: read_mask(mask)):
            with pytest.raises(DataError, match=re.escape(str(mask)) + ": " + re.escape(UNREADABLE[item])):
                load()
        return
    if item in WRONG_SIZE:
        with pytest.raises(DataError, match="0001_mask.png: mask is 31x32 pixels but the split's images are 32x32"):
            load_satellite_split(tmp_path / "train")
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        s = load_satellite_split(tmp_path / "train", cache_dir=tmp_path / "cache")
        direct = read_mask(mask)
    assert (s.masks[1] == direct).all() and set(np.unique(direct).tolist()) <= set(range(7))
    with Image.open(mask) as img:  # the official rule on the file's own R, G, B (alpha dropped)
        raw = np.asarray(img.convert("RGBA").convert("RGB")) if img.mode in ("RGBA", "P", "RGB", "L") else None
    if raw is not None:
        assert (direct == decode_mask(raw)[0]).all()
    red = [w for w in caught if "red pixel" in str(w.message)]
    if item == "red_mask":
        assert (direct[:4, :4] == UNKNOWN).all() and s.meta["red_pixels"] == {"0001": 19}
        assert red and "0001_mask.png" in str(red[0].message) and "19 red pixel" in str(red[0].message)
    if item == "gray16_png":  # scaled to 8 bits first: the dark half is unknown, the bright half barren
        assert direct[0, 0] == UNKNOWN and direct[-1, -1] == 5


@pytest.mark.parametrize("item", ["sat_without_mask", "mask_without_sat"])
def test_p3_unpaired_files(corpus, item):
    from dlcv.data.satellite import list_sat_images, load_satellite_split

    expected = {"sat_without_mask": "1 image(s) without a mask: 0001_sat.jpg",
                "mask_without_sat": "1 mask(s) without an image: 0001_mask.png"}[item]
    with pytest.raises(DataError, match=re.escape(str(corpus[item])) + ".*\n.*" + re.escape(expected)):
        load_satellite_split(corpus[item])
    # a TEST folder has no masks: hw1_3.sh reads only the *_sat images, masks beside them are ignored
    assert [p.name for p in list_sat_images(corpus[item])] == (
        ["0000_sat.jpg", "0001_sat.jpg"] if item == "sat_without_mask" else ["0000_sat.jpg"])


@pytest.mark.parametrize("item", IMAGE_ITEMS)
def test_p3_test_reader(corpus, tmp_path, item):
    """hw1_3.sh's reader: unreadable images are reported in their batch's errors; any size gets a batch."""
    from dlcv.data.satellite import iter_image_batches

    paths = [_place(corpus, "ok_jpg", tmp_path / "0000_sat.jpg"),
             _place(corpus, item, tmp_path / f"0001_sat{_ext(item)}"),
             _place(corpus, "ok_jpg", tmp_path / "0002_sat.jpg")]
    batches = list(iter_image_batches(paths, batch_size=4, threads=1))
    got = [p.name for b in batches for p in b[0]]
    errors = [e for b in batches for e in b[2]]
    if item in UNREADABLE:
        assert got == ["0000_sat.jpg", "0002_sat.jpg"] and len(errors) == 1 and str(paths[1]) in errors[0]
    else:
        assert got == [p.name for p in paths] and not errors
        sizes = [tuple(b[1].shape[2:]) for b in batches]
        assert len(batches) == (3 if item in WRONG_SIZE else 1), sizes  # a size change closes a batch
        assert sizes[len(sizes) // 2][::-1] == _size(paths[1])


# ---------------------------------------------------------------------------------------- graded scripts
@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Untrained model.pt files of the three graded shapes (the format is what these tests need)."""
    from dlcv.config import load_config, to_dict
    from dlcv.io import export_model
    from dlcv.tasks.classification import ClassificationTask
    from dlcv.tasks.segmentation import SegmentationTask

    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("graded_models")
    p1 = load_config("configs/demo/p1_seed_a.yaml")
    p2 = load_config("configs/demo/p2_finetune.yaml", ["model.pretrained=none"])
    p3 = load_config(overrides=["task=segment", "model.name=deeplabv3_resnet50"])
    return {"p1": export_model(out / "p1", to_dict(p1), ClassificationTask(to_dict(p1)).state_dict()),
            "p2": export_model(out / "p2", to_dict(p2), ClassificationTask(to_dict(p2)).state_dict()),
            "p3": export_model(out / "p3", to_dict(p3), SegmentationTask(to_dict(p3)).state_dict())}


def _item_files(corpus, folder: Path, name) -> dict[str, Path]:
    return {item: _place(corpus, item, folder / name(k, item)) for k, item in enumerate(IMAGE_ITEMS)}


@pytest.fixture(scope="module")
def hw1_1_run(corpus, models, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hw1_1")
    files = _item_files(corpus, tmp / "images", lambda k, item: f"{item}{_ext(item)}")
    (tmp / "out").mkdir()
    proc = run_graded("hw1_1.sh", tmp / "images", tmp / "out" / "pred.csv", ckpt=models["p1"], home=tmp / "home")
    return files, proc, tmp / "out" / "pred.csv"


@pytest.mark.slow
@pytest.mark.parametrize("item", IMAGE_ITEMS)
def test_hw1_1_sh(hw1_1_run, item):
    files, proc, out = hw1_1_run
    assert proc.returncode == 2, proc.stderr[-3000:]
    with open(out, newline="") as fh:
        rows = {r["filename"]: r["label"] for r in csv.DictReader(fh)}
    name = files[item].name
    if item in UNREADABLE:
        assert name not in rows
        assert re.search(rf"unreadable: {re.escape(str(files[item]))}: {re.escape(UNREADABLE[item])}", proc.stderr)
    else:
        assert rows[name].isdigit() and 0 <= int(rows[name]) < 50
    assert f"{len(UNREADABLE)} input(s) could not be read" in proc.stderr
    assert "were not 32x32 and were resized" in proc.stderr  # the wrong-size items


@pytest.fixture(scope="module")
def hw1_2_run(corpus, models, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hw1_2")
    files = _item_files(corpus, tmp / "images", lambda k, item: f"{k:04d}{_ext(item)}")
    names = [files[i].name for i in IMAGE_ITEMS] + ["not_there.jpg"]
    lines = ["id,filename,label"] + [f"{100 + k},{n},{'None' if k % 2 else ''}" for k, n in enumerate(names)]
    (tmp / "test.csv").write_text("\n".join(lines) + "\n")
    (tmp / "out").mkdir()
    proc = run_graded("hw1_2.sh", tmp / "test.csv", tmp / "images", tmp / "out" / "pred.csv", ckpt=models["p2"],
                      home=tmp / "home")
    return files, names, proc, tmp / "out" / "pred.csv"


@pytest.mark.slow
@pytest.mark.parametrize("item", IMAGE_ITEMS + ["csv_missing_image"])
def test_hw1_2_sh(hw1_2_run, item):
    files, names, proc, out = hw1_2_run
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = out.read_text().splitlines()
    assert lines[0] == "id,filename,label" and len(lines) == len(names) + 1  # every row, in order
    assert [l.split(",")[1] for l in lines[1:]] == names
    if item == "csv_missing_image":
        assert lines[-1] == f"{100 + len(names) - 1},not_there.jpg,"
        assert "not_there.jpg: file not found" in proc.stderr
        return
    k = IMAGE_ITEMS.index(item)
    row_id, name, label = lines[1 + k].split(",")
    assert (row_id, name) == (str(100 + k), files[item].name)
    if item in UNREADABLE:
        assert label == "" and f"{files[item]}: {UNREADABLE[item]}" in proc.stderr
    else:
        assert label.isdigit() and 0 <= int(label) < 65
    assert f"{len(UNREADABLE) + 1} input(s) could not be read" in proc.stderr


@pytest.fixture(scope="module")
def hw1_3_run(corpus, models, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hw1_3")
    files = _item_files(corpus, tmp / "images", lambda k, item: f"{k:04d}_sat{_ext(item)}")
    # the output folder does not exist: hw1_3.sh creates it
    proc = run_graded("hw1_3.sh", tmp / "images", tmp / "out" / "masks", ckpt=models["p3"], home=tmp / "home")
    return files, proc, tmp / "out" / "masks"


@pytest.mark.slow
@pytest.mark.parametrize("item", IMAGE_ITEMS)
def test_hw1_3_sh(hw1_3_run, item):
    files, proc, out = hw1_3_run
    assert proc.returncode == 2, proc.stderr[-3000:]
    mask = out / files[item].name.replace(f"_sat{files[item].suffix}", "_mask.png")
    if item in UNREADABLE:
        assert not mask.exists() and f"unreadable: {files[item]}: {UNREADABLE[item]}" in proc.stderr
    else:
        with Image.open(mask) as img:
            assert img.format == "PNG" and img.mode == "RGB" and img.size == _size(files[item])
            assert {tuple(c) for c in np.asarray(img).reshape(-1, 3).tolist()} <= LEGAL
    written = sorted(p.name for p in out.iterdir())
    assert len(written) == len(IMAGE_ITEMS) - len(UNREADABLE) and all(n.endswith("_mask.png") for n in written)


# ---------------------------------------------------------------------------------------- folders, CSVs, outputs
def _predict(problem: str, models, *inputs) -> int:
    return cli_main(["predict", problem, str(models[problem]), *map(str, inputs)])


@pytest.mark.slow
@pytest.mark.parametrize("item", sorted(CSV_ERRORS))
def test_hw1_2_rejects_a_malformed_csv_before_writing(corpus, models, tmp_path, capsys, item):
    out = tmp_path / "pred.csv"
    assert _predict("p2", models, corpus[item], corpus[item].parent / "images", out) == 2
    err = capsys.readouterr().err
    assert str(corpus[item]) in err and CSV_ERRORS[item] in err
    assert not out.exists()


@pytest.mark.slow
def test_empty_folder(corpus, models, tmp_path, capsys):
    empty = corpus["empty_folder"]
    assert _predict("p1", models, empty, tmp_path / "p1.csv") == 2
    assert f"{empty}: no images (.png, .jpg, .jpeg) in this folder" in capsys.readouterr().err
    assert _predict("p3", models, empty, tmp_path / "p3") == 2
    assert f"{empty}: no xxxx_sat.jpg images in this folder" in capsys.readouterr().err
    assert not (tmp_path / "p3").exists() and not (tmp_path / "p1.csv").exists()
    # hw1_2.sh reads the CSV, not the folder: every row is kept, each unreadable, exit 2
    assert _predict("p2", models, corpus["csv_ok"], empty, tmp_path / "p2.csv") == 2
    assert (tmp_path / "p2.csv").read_text() == "id,filename,label\n0,ok.jpg,\n1,ok2.jpg,\n2,ok3.png,\n"
    assert capsys.readouterr().err.count("file not found") == 3
    from dlcv.data.mini import load_mini_folder
    from dlcv.data.satellite import load_satellite_split

    with pytest.raises(DataError, match="no images"):
        load_mini_folder(empty)
    with pytest.raises(DataError, match="no xxxx_sat.jpg \\+ xxxx_mask.png pairs"):
        load_satellite_split(empty)


@pytest.mark.slow
def test_non_existent_paths(corpus, models, tmp_path, capsys):
    missing = tmp_path / "does_not_exist"
    assert _predict("p1", models, missing, tmp_path / "p1.csv") == 2
    assert f"{missing}: folder not found" in capsys.readouterr().err
    assert _predict("p3", models, missing, tmp_path / "p3") == 2
    assert f"{missing}: folder not found" in capsys.readouterr().err
    assert _predict("p2", models, missing / "test.csv", corpus["csv_ok"].parent / "images", tmp_path / "p2.csv") == 2
    assert f"{missing / 'test.csv'}: CSV file not found" in capsys.readouterr().err
    assert _predict("p2", models, corpus["csv_ok"], missing, tmp_path / "p2.csv") == 2
    assert f"{missing}: image folder not found" in capsys.readouterr().err
    assert cli_main(["evaluate", str(missing / "model.pt")]) == 2
    assert f"checkpoint not found: {missing / 'model.pt'}" in capsys.readouterr().err
    assert cli_main(["train", str(missing / "c.yaml")]) == 2
    assert "config file not found" in capsys.readouterr().err
    # a data root that does not exist: the training reader names the folder it looked for
    assert cli_main(["train", "configs/demo/p1_seed_a.yaml", f"data.root={missing}", f"run.dir={tmp_path}"]) == 2
    assert f"{missing / 'p1_data' / 'train_50'}: folder not found" in capsys.readouterr().err


@pytest.mark.slow
def test_unwritable_output(corpus, models, tmp_path, capsys):
    """Root ignores permission bits (chmod 0o500 does not stop it), so the output path goes through a
    regular FILE, which stops everyone (ENOTDIR). Checked before any model or image is loaded."""
    blocker = corpus["not_a_folder"]
    images = tmp_path / "images"
    _place(corpus, "ok_jpg", images / "0000_sat.jpg")
    cases = [("p1", (images, blocker / "pred.csv")),
             ("p2", (corpus["csv_ok"], corpus["csv_ok"].parent / "images", blocker / "pred.csv")),
             ("p3", (images, blocker / "masks" / "out"))]
    for problem, args in cases:
        assert _predict(problem, models, *args) == 2, problem
        err = capsys.readouterr().err
        assert f"{blocker} is a file, not a folder" in err, (problem, err)
    # an existing FOLDER where the output CSV should go
    (tmp_path / "pred.csv").mkdir()
    assert _predict("p1", models, images, tmp_path / "pred.csv") == 2
    assert "is a folder; the output must be a file name" in capsys.readouterr().err
    if os.geteuid() != 0:  # permission bits only stop other users
        ro = tmp_path / "read_only"
        ro.mkdir(mode=0o500)
        assert _predict("p1", models, images, ro / "pred.csv") == 2
        assert "not writable" in capsys.readouterr().err
