"""`dlcv train` segmentation smoke runs (FCN32s and DeepLabv3, 1 epoch, 64 px, batch 2), the
run folder they leave, and a 2-process DDP evaluation whose confusion matrix must equal the
single-process one exactly on a validation set of odd size; `dlcv score-masks`."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dlcv.cli import main as cli_main
from dlcv.data.masks import CLASS_COLORS, write_mask

REPO = Path(__file__).resolve().parent.parent
LEGAL = {tuple(int(v) for v in c) for c in CLASS_COLORS}


@pytest.fixture(scope="module")
def p3_root(tmp_path_factory):
    """P3 demo data with 5 validation images: odd, so 2 processes cannot split it evenly."""
    from dlcv.demo import DemoScale, write_demo_data

    root = tmp_path_factory.mktemp("p3_data_root")
    write_demo_data(root, DemoScale(p3_train=4, p3_val=5, p3_test=3, p3_size=64), seed=3, problems=("p3",),
                    workers=1)
    return root


def _config(tmp_path: Path, model: str) -> Path:
    # FCN32s with plain SGD: no optimizer state, so each checkpoint is "only" its 0.5 GB of weights
    optim = "  name: sgd\n  momentum: 0.0\n  lr: 1.0e-3\n" if model == "fcn32s" else "  name: adam\n  lr: 1.0e-3\n"
    extra = "  aux_loss_weight: 0.4\n" if model != "fcn32s" else ""
    # both losses train end to end: FCN32s with cross entropy (+ a final evaluation with flip TTA),
    # DeepLabv3 with focal loss
    loss = "loss:\n  name: ce\neval:\n  tta: flip\n" if model == "fcn32s" else "loss:\n  name: focal\n"
    path = tmp_path / f"{model}.yaml"
    path.write_text(f"task: segment\nmodel:\n  name: {model}\n{extra}optim:\n{optim}"
                    "data:\n  batch_size: 2\n  crop: 64\n" + loss +
                    "masks:\n  ids: ['0001', '0004']\n"
                    "trainer:\n  epochs: 1\n  limit_train_batches: 1\n  progress: false\n")
    return path


def _train(tmp_path: Path, root: Path, model: str) -> Path:
    code = cli_main(["train", str(_config(tmp_path, model)), f"data.root={root}", f"run.dir={tmp_path / 'runs'}",
                     f"run.name={model}"])
    assert code == 0
    return tmp_path / "runs" / model


@pytest.fixture(scope="module")
def deeplab_run(p3_root, tmp_path_factory):
    return _train(tmp_path_factory.mktemp("deeplab"), p3_root, "deeplabv3_resnet50")


def _assert_legal_mask(path: Path, size: tuple[int, int]) -> None:
    with Image.open(path) as img:
        assert img.mode == "RGB" and img.size == size, (path, img.mode, img.size)
        colours = {tuple(c) for c in np.asarray(img).reshape(-1, 3).tolist()}
    assert colours <= LEGAL, (path, colours - LEGAL)


def _check_run(run: Path, model: str) -> None:
    rows = list(csv.DictReader(open(run / "epochs.csv")))
    assert len(rows) == 1 and rows[0]["epoch"] == "1"
    miou = float(rows[0]["val/miou"])
    assert 0.0 <= miou <= 1.0
    for name in ("urban", "agriculture", "rangeland", "forest", "water", "barren"):
        assert f"val/iou_{name}" in rows[0]
    for name in ("0001", "0004"):
        _assert_legal_mask(run / "masks" / "epoch_001" / f"{name}_mask.png", (64, 64))
        with Image.open(run / "masks" / "epoch_001" / f"{name}_overlay.png") as img:
            assert img.size == (64, 64)
        assert (run / "masks" / "gt" / f"{name}_mask.png").is_file()
        assert (run / "masks" / "inputs" / f"{name}_sat.png").is_file()
    for fig in ("masks_over_epochs.png", "masks_over_epochs_overlay.png"):
        assert (run / "figures" / fig).stat().st_size > 10_000
    assert (run / "model.pt").is_file() and (run / "checkpoints" / "best.ckpt").is_file()
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    cm = np.array(metrics["confusion"])
    assert cm.shape == (7, 7) and cm.sum() == 5 * 64 * 64  # every validation pixel once
    assert metrics["miou"] == pytest.approx(miou, abs=1e-6)  # best epoch == the only epoch
    assert "mIoU" in (run / "eval" / "iou.md").read_text()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["model"] == model and summary["pretrained"] == "random init"
    assert summary["val_miou"] == pytest.approx(metrics["miou"])
    assert summary["loss"] == ("ce" if model == "fcn32s" else "focal")
    if model == "fcn32s":  # eval.tta: flip -> the best epoch evaluated once more, with TTA
        tta = json.loads((run / "eval" / "tta" / "metrics.json").read_text())
        assert tta["tta"] == "flip" and np.sum(tta["confusion"]) == 5 * 64 * 64
        assert summary["val_miou_tta"] == pytest.approx(tta["miou"]) and summary["eval_tta"]["mode"] == "flip"
    else:
        assert "val_miou_tta" not in summary and not (run / "eval" / "tta").exists()


def test_train_deeplab_smoke(deeplab_run):
    _check_run(deeplab_run, "deeplabv3_resnet50")


def test_train_fcn32s_smoke(p3_root, tmp_path):
    _check_run(_train(tmp_path, p3_root, "fcn32s"), "fcn32s")


def test_missing_snapshot_id_is_a_clear_error(p3_root, tmp_path, capsys):
    config = str(_config(tmp_path, "deeplabv3_resnet50"))
    code = cli_main(["train", config, f"data.root={p3_root}", f"run.dir={tmp_path}", "masks.ids=['0013']"])
    assert code == 2
    assert "masks.ids ['0013'] are not in" in capsys.readouterr().err
    # unquoted, YAML reads 0013 as octal 11: the message says so
    assert cli_main(["train", config, f"data.root={p3_root}", f"run.dir={tmp_path}", "masks.ids=[0013]"]) == 2
    assert "['11']" in (err := capsys.readouterr().err) and "octal" in err
    assert not list(tmp_path.glob("*/checkpoints/*.ckpt"))


@pytest.mark.timeout(400)
def test_ddp_evaluation_equals_single_process(deeplab_run, tmp_path):
    model = deeplab_run / "model.pt"
    assert cli_main(["evaluate", str(model), "trainer.accelerator=cpu", "trainer.devices=1",
                     "--out", str(tmp_path / "single")]) == 0
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "MASTER_ADDR": "127.0.0.1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-m", "dlcv", "evaluate", str(model), "trainer.devices=2",
                           "trainer.strategy=ddp", "trainer.accelerator=cpu", "trainer.progress=false",
                           "--out", str(tmp_path / "ddp")], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=360)
    assert proc.returncode == 0, proc.stderr[-3000:]
    single = json.loads((tmp_path / "single" / "metrics.json").read_text())
    ddp = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    assert ddp["world_size"] == 2 and single["world_size"] == 1
    assert ddp["confusion"] == single["confusion"]  # exactly: no image dropped or counted twice
    assert np.sum(ddp["confusion"]) == 5 * 64 * 64
    assert ddp["miou"] == single["miou"]


def test_evaluate_with_tta_and_a_bad_mode(deeplab_run, tmp_path, capsys):
    model = str(deeplab_run / "model.pt")
    assert cli_main(["evaluate", model, "eval.tta=flip_multiscale", "eval.tta_scales=[0.5,1.0]",
                     "--out", str(tmp_path / "tta")]) == 0
    metrics = json.loads((tmp_path / "tta" / "metrics.json").read_text())
    assert metrics["tta"] == "flip_multiscale" and metrics["tta_scales"] == [0.5, 1.0]
    assert np.sum(metrics["confusion"]) == 5 * 64 * 64 and 0.0 <= metrics["miou"] <= 1.0
    assert "TTA flips (h, v) x scales 0.5/1: 6 passes" in capsys.readouterr().out
    assert cli_main(["evaluate", model, "eval.tta=d4", "--out", str(tmp_path / "bad")]) == 2
    assert "eval.tta must be one of none, flip, multiscale, flip_multiscale" in capsys.readouterr().err


# ---------------------------------------------------------------- score-masks
def test_score_masks_command(tmp_path, capsys):
    rng = np.random.default_rng(0)
    for name in ("0000", "0001", "0002"):
        m = rng.integers(0, 7, (8, 8)).astype(np.uint8)
        write_mask(tmp_path / "gt" / f"{name}_mask.png", m)
        write_mask(tmp_path / "pred" / f"{name}_mask.png", m)
    assert cli_main(["score-masks", str(tmp_path / "pred"), str(tmp_path / "gt"), "--out", str(tmp_path / "e")]) == 0
    out = capsys.readouterr().out
    assert "mIoU (6 classes, official): 1.000000" in out
    assert json.loads((tmp_path / "e" / "metrics.json").read_text())["miou"] == pytest.approx(1.0)

    (tmp_path / "pred" / "0001_mask.png").unlink()
    assert cli_main(["score-masks", str(tmp_path / "pred"), str(tmp_path / "gt")]) == 2
    err = capsys.readouterr().err
    assert "missing 1" in err and "0001_mask.png" in err
    # the official script's flags work too
    assert cli_main(["score-masks", "-p", str(tmp_path / "gt"), "-g", str(tmp_path / "gt")]) == 0
