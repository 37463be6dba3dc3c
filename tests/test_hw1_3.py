"""hw1_3.sh end to end: one legal-colour 8-bit RGB mask per `*_sat.jpg`, of the input's size, into
an output folder that may not exist; unreadable inputs listed, the others still written, non-zero
exit; flip TTA; the prediction path agrees with the training-time model wrapper."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dlcv.data.masks import CLASS_COLORS, read_mask
from tests.helpers import REPO, run_graded

LEGAL = {tuple(int(v) for v in c) for c in CLASS_COLORS}


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    """An exported (untrained, random-init) DeepLabv3 model.pt: prediction needs no training."""
    from dlcv.config import load_config, to_dict
    from dlcv.io import export_model
    from dlcv.tasks.segmentation import SegmentationTask

    torch.manual_seed(0)
    cfg = load_config(overrides=["task=segment", "model.name=deeplabv3_resnet50"])
    task = SegmentationTask(to_dict(cfg))
    # nudge the BatchNorm statistics off their defaults so the classes vary across the image
    task.segmenter.train()
    with torch.no_grad():
        task.segmenter(torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8))
    run = tmp_path_factory.mktemp("p3_model")
    return export_model(run, to_dict(cfg), task.state_dict())


@pytest.fixture
def test_dir(demo_root, tmp_path):
    folder = tmp_path / "test images"  # a space in the path, as users have
    shutil.copytree(demo_root / "p3_data" / "test", folder)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)).save(folder / "0100_sat.jpg")  # other size
    (folder / "notes.txt").write_text("not an image")
    return folder


def _check_outputs(image_dir: Path, out_dir: Path, skip: set[str] = frozenset()) -> None:
    expected = {p.name.replace("_sat.jpg", "_mask.png") for p in image_dir.glob("*_sat.jpg")} - skip
    assert {p.name for p in out_dir.iterdir()} == expected  # no temporary files left either
    for name in expected:
        with Image.open(image_dir / name.replace("_mask.png", "_sat.jpg")) as sat:
            size = sat.size
        with Image.open(out_dir / name) as img:
            assert img.format == "PNG" and img.mode == "RGB" and img.size == size
            colours = {tuple(c) for c in np.asarray(img).reshape(-1, 3).tolist()}
        assert colours <= LEGAL


def test_script_follows_the_rules():
    text = (REPO / "hw1_3.sh").read_text()
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    for word in ("rm", "cp", "mv", "mkdir", "cd", "pip", "sudo", "CUDA_VISIBLE_DEVICES"):
        assert not re.search(rf"(^|[\s;&|(]){word}(\s|$)", code), word
    assert "python3 -m dlcv.graded predict p3" in code and not re.search(r"(^|\s)python(\s|$)", code)
    assert "DLCV_P3_CKPT" in code


def test_hw1_3_end_to_end_with_an_unreadable_image(model_file, test_dir, tmp_path):
    (test_dir / "0099_sat.jpg").write_bytes(b"\xff\xd8 truncated jpeg")
    out_dir = tmp_path / "does" / "not exist"
    proc = run_graded("hw1_3.sh", test_dir, out_dir, ckpt=model_file, home=tmp_path / "home")
    assert proc.returncode != 0
    assert "0099_sat.jpg" in proc.stderr and "1 input(s) could not be read" in proc.stderr
    _check_outputs(test_dir, out_dir, skip={"0099_mask.png"})
    assert len(list(out_dir.iterdir())) == 5  # the 4 demo test images + the odd-sized one


def test_predict_matches_the_model_and_tta(model_file, test_dir, tmp_path, monkeypatch):
    from dlcv.analysis.masks_over_epochs import predict_classes
    from dlcv.graded.models import load_segmenter
    from dlcv.graded.p3 import predict
    from dlcv.io import load_model_file

    monkeypatch.delenv("DLCV_P3_TTA", raising=False)
    assert predict(model_file, test_dir, tmp_path / "plain", batch_size=3) == 0
    _check_outputs(test_dir, tmp_path / "plain")
    # the graded path (threads, batches, channels_last) == the masks-over-epochs path, image by image
    config, state = load_model_file(model_file)
    segmenter, _ = load_segmenter(config, state, torch.device("cpu"))
    sats = sorted(test_dir.glob("*_sat.jpg"))
    images = [np.asarray(Image.open(p).convert("RGB")).transpose(2, 0, 1) for p in sats]
    for p, img in zip(sats, images):
        expected = predict_classes(segmenter, img[None], "cpu")[0]
        got = read_mask(tmp_path / "plain" / p.name.replace("_sat.jpg", "_mask.png"))
        assert (got == expected).mean() > 0.999, p.name  # batched vs single: float rounding at ties only
    assert len({m.tobytes() for m in (read_mask(f) for f in (tmp_path / "plain").iterdir())}) > 1

    monkeypatch.setenv("DLCV_P3_TTA", "1")
    assert predict(model_file, test_dir, tmp_path / "tta") == 0
    _check_outputs(test_dir, tmp_path / "tta")


def test_predicted_folder_scores_against_ground_truth(model_file, demo_root, tmp_path):
    from dlcv.graded.p3 import predict
    from dlcv.score_masks import score_folders

    assert predict(model_file, demo_root / "p3_data" / "test", tmp_path / "pred") == 0
    result = score_folders(tmp_path / "pred", demo_root / "p3_data" / "test_gt")
    assert result["num_files"] == 4 and result["num_pixels"] == 4 * 64 * 64


def test_wrong_checkpoint_or_folder_is_a_clear_error(tmp_path, demo_root, capsys):
    from dlcv.cli import main as cli_main
    from dlcv.io import export_model

    other = export_model(tmp_path, {"task": "classify"}, {})
    assert cli_main(["predict", "p3", str(other), str(demo_root / "p3_data" / "test"), str(tmp_path / "o")]) == 2
    assert "not a segmentation checkpoint" in capsys.readouterr().err
    assert cli_main(["predict", "p3", str(other), str(tmp_path / "missing"), str(tmp_path / "o")]) == 2
    assert "folder not found" in capsys.readouterr().err
    proc = run_graded("hw1_3.sh", home=tmp_path / "home")
    assert proc.returncode == 2 and "usage: bash hw1_3.sh <image_dir> <out_dir>" in proc.stderr
