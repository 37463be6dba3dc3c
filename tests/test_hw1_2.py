"""hw1_2.sh end to end: rows of the input CSV in its order, the exact header and byte format,
unreadable images keep their row (empty label) with a non-zero exit."""
import re
import shutil

import numpy as np
import pytest

from dlcv.config import load_config, to_dict
from dlcv.data.office import load_office_csv_images
from dlcv.graded.models import predict_labels
from dlcv.io import export_model
from dlcv.tasks.classification import ClassificationTask
from tests.helpers import REPO, run_graded

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    """A setting-C-shaped model.pt (the demo fine-tune config; weights untrained: format is what matters)."""
    folder = tmp_path_factory.mktemp("p2_model")
    cfg = load_config("configs/demo/p2_finetune.yaml", ["model.pretrained=none"])
    task = ClassificationTask(to_dict(cfg))
    return export_model(folder, to_dict(cfg), task.state_dict())


def test_hw1_2_writes_the_csv_rows_in_order(demo_root, model_file, tmp_path):
    office = demo_root / "p2_data" / "office"
    # the CSV's order is not the folder's: reverse it, with `None` and empty labels mixed
    src = (office / "test.csv").read_text().splitlines()
    rows = [line.split(",") for line in src[1:]][::-1]
    listed = "id,filename,label\n" + "".join(f"{i},{f},{'None' if k % 2 else ''}\n" for k, (i, f, _) in enumerate(rows))
    csv_path = tmp_path / "test.csv"
    csv_path.write_text(listed)
    out = tmp_path / "pred.csv"
    proc = run_graded("hw1_2.sh", csv_path, office / "test", out, ckpt=model_file, home=tmp_path / "home")
    assert proc.returncode == 0, proc.stderr

    data = out.read_bytes()
    assert data.startswith(b"id,filename,label\n") and data.endswith(b"\n") and b"\r" not in data
    lines = data.decode().split("\n")[1:-1]
    assert len(lines) == len(rows) == 12
    for line, (i, f, _) in zip(lines, rows):
        assert re.fullmatch(rf"{i},{re.escape(f)},\d+", line), line
        assert 0 <= int(line.rsplit(",", 1)[1]) < 65
    # the labels are the model's predictions for those images
    _, images = load_office_csv_images(csv_path, office / "test")
    import torch
    obj = torch.load(model_file, weights_only=True)
    expected = predict_labels(obj["config"], obj["state_dict"], images.images, device="cpu")
    assert [int(l.rsplit(",", 1)[1]) for l in lines] == expected.tolist()


def test_hw1_2_unreadable_image_keeps_its_row_empty(demo_root, model_file, tmp_path):
    office = demo_root / "p2_data" / "office"
    images = tmp_path / "images"
    shutil.copytree(office / "test", images)
    (images / "0003.jpg").write_bytes(b"broken")
    (images / "0005.jpg").unlink()
    out = tmp_path / "pred.csv"
    proc = run_graded("hw1_2.sh", office / "test.csv", images, out, ckpt=model_file, home=tmp_path / "home")
    assert proc.returncode == 2
    assert "0003.jpg" in proc.stderr and "0005.jpg" in proc.stderr
    lines = out.read_text().splitlines()
    assert lines[0] == "id,filename,label" and len(lines) == 13
    assert lines[4] == "3,0003.jpg," and lines[6] == "5,0005.jpg,"
    assert all(re.fullmatch(r"\d+,\d{4}\.jpg,\d+", l) for k, l in enumerate(lines[1:]) if k not in (3, 5))


def test_hw1_2_bad_csv_is_an_error_before_writing(demo_root, model_file, tmp_path, capsys):
    office = demo_root / "p2_data" / "office"
    bad = tmp_path / "bad.csv"
    bad.write_text("filename,label\n0000.jpg,\n")
    out = tmp_path / "pred.csv"
    proc = run_graded("hw1_2.sh", bad, office / "test", out, ckpt=model_file, home=tmp_path / "home")
    assert proc.returncode == 2 and "header must be exactly id,filename,label" in proc.stderr
    assert not out.exists()
    from dlcv.cli import main  # the same command in this process: no need for another interpreter

    assert main(["predict", "p2", str(model_file), str(office / "test.csv"), str(office / "test"),
                 str(tmp_path / "no" / "pred.csv")]) == 2
    assert "output folder does not exist" in capsys.readouterr().err


def test_hw1_2_script_style():
    body = (REPO / "hw1_2.sh").read_text()
    code = "\n".join(l for l in body.splitlines() if not l.lstrip().startswith("#"))
    assert body.startswith("#!/bin/bash\n") and "python3 -m dlcv.graded predict p2" in code
    assert "DLCV_P2_CKPT" in code and "checkpoints/p2_model.pt" in code
    assert np.all([w not in code for w in ("rm ", "cp ", "mv ", "mkdir", "cd ", "pip", "sudo", "CUDA_VISIBLE")])
