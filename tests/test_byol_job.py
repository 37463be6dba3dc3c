"""P2 BYOL pre-training through `dlcv train`: logs, schedules figure, backbone.pt in torchvision format,
the kNN monitor, the SL checkpoint format, and a 2-process CPU DDP run."""
import csv
import json

import pytest
import torch
import torchvision
from omegaconf import OmegaConf

from dlcv.config import ModelConfig, load_config
from dlcv.errors import WeightsError
from dlcv.models.classifiers import build_classifier
from dlcv.tasks.byol import build_backbone, knn_predict
from tests.helpers import run_dlcv

pytestmark = pytest.mark.slow

TINY = ["trainer.epochs=2", "data.batch_size=8", "data.limit=32", "trainer.progress=false",
        "model.hidden_dim=64", "model.proj_dim=32"]


def _rows(run_dir):
    with open(run_dir / "epochs.csv", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def byol_run(demo_root, tmp_path_factory):
    runs = tmp_path_factory.mktemp("byol_runs")
    run_dlcv("train", "configs/demo/p2_byol.yaml", f"data.root={demo_root}", f"run.dir={runs}", *TINY)
    return runs / "p2_byol"


def test_byol_run_logs_loss_collapse_knn_and_schedules(byol_run):
    rows = _rows(byol_run)
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]  # epoch 0: the random-init kNN reference
    for col in ["train/loss", "train/collapse_std", "train/tau", "knn/acc", "lr", "images_per_s"]:
        assert col in rows[0], col
    assert rows[0]["knn/acc"] != "" and rows[0]["train/loss"] == ""
    for r in rows[1:]:
        assert 0 <= float(r["train/loss"]) <= 8  # two terms of 2 - 2cos
        assert 0 < float(r["train/collapse_std"]) < 1
        assert 0 <= float(r["knn/acc"]) <= 1 and float(r["images_per_s"]) > 0
    assert float(rows[-1]["train/tau"]) == 1.0  # the cosine reaches 1 at the last step
    png = byol_run / "figures" / "schedules.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((byol_run / "summary.json").read_text())
    assert summary["knn_random_init"] == pytest.approx(float(rows[0]["knn/acc"]), abs=1e-6)
    assert summary["images"] == 32 and summary["backbone"] == "resnet18"
    assert "knn/acc" in (byol_run / "log.txt").read_text()


def test_backbone_pt_is_a_torchvision_state_dict_of_the_last_epoch(byol_run):
    sd = torch.load(byol_run / "backbone.pt", weights_only=True)
    net = torchvision.models.resnet18(weights=None)
    result = net.load_state_dict(sd, strict=False)
    assert sorted(result.missing_keys) == ["fc.bias", "fc.weight"] and result.unexpected_keys == []
    # the online backbone of the last checkpoint, buffers (BN running stats) included
    ckpt = torch.load(byol_run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    for k, v in sd.items():
        assert torch.equal(ckpt[f"byol.backbone.{k}"].contiguous(), v.contiguous()), k
    assert not torch.equal(sd["conv1.weight"], ckpt["byol.target_backbone.conv1.weight"])  # online, not target


def test_backbone_pt_loads_into_fine_tuning(byol_run):
    sd = torch.load(byol_run / "backbone.pt", weights_only=True)
    model = build_classifier(OmegaConf.structured(ModelConfig(name="resnet18", num_classes=65,
                                                              pretrained=str(byol_run / "backbone.pt"))))
    loaded = model.backbone.net.state_dict()
    for k, v in sd.items():
        assert torch.equal(loaded[k], v), k
    assert model.pretrained == str(byol_run / "backbone.pt")
    assert model(torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)).shape == (2, 65)


def test_sl_checkpoint_format_loads_and_wrong_files_are_readable_errors(tmp_path):
    """pretrain_model_SL.pt: torchvision resnet50(weights=None).state_dict() WITH fc 2048 -> 1000."""
    torch.manual_seed(3)
    sl = torchvision.models.resnet50(weights=None).state_dict()
    assert sl["fc.weight"].shape == (1000, 2048)
    torch.save(sl, tmp_path / "pretrain_model_SL.pt")
    model = build_classifier(OmegaConf.structured(ModelConfig(name="resnet50", num_classes=65,
                                                              pretrained=str(tmp_path / "pretrain_model_SL.pt"))))
    own = model.backbone.net.state_dict()
    for k, v in sl.items():
        if not k.startswith("fc."):
            assert torch.equal(own[k], v), k
    assert model.head.weight.shape == (65, 2048)  # the 1000-way fc is not used
    # a resnet18 file into a resnet50: a short report, not a wall of keys
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), tmp_path / "r18.pt")
    with pytest.raises(WeightsError, match="wrong shape|missing"):
        build_classifier(OmegaConf.structured(ModelConfig(name="resnet50", pretrained=str(tmp_path / "r18.pt"))))


def test_byol_backbone_never_starts_from_imagenet():
    a, dim = build_backbone("resnet50")
    assert dim == 2048 and isinstance(a.fc, torch.nn.Identity)
    b, _ = build_backbone("resnet50")
    assert not torch.equal(a.conv1.weight, b.conv1.weight)  # random init each time, nothing loaded
    with pytest.raises(ValueError, match="unknown BYOL backbone"):
        build_backbone("vgg16")


def test_knn_predict_cosine_weighted_and_majority():
    bank = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9], [0.2, 0.8]]), dim=1)
    labels = torch.tensor([0, 0, 1, 1, 1])
    q = torch.nn.functional.normalize(torch.tensor([[1.0, 0.05], [0.05, 1.0]]), dim=1)
    assert knn_predict(bank, labels, q, k=1, num_classes=2).tolist() == [0, 1]
    # k = 5: majority says class 1 for both (3 votes vs 2); cosine weighting keeps the near class 0
    assert knn_predict(bank, labels, q, k=5, num_classes=2, weighting="majority").tolist() == [1, 1]
    assert knn_predict(bank, labels, q, k=5, num_classes=2, weighting="cosine").tolist() == [0, 1]
    # majority ties go to the closer neighbours; k larger than the bank is clamped
    tie = knn_predict(bank[1:3], labels[1:3], q, k=9, num_classes=2, weighting="majority")
    assert tie.tolist() == [0, 1]


def test_sync_batchnorm_on_cpu_is_a_clear_error(demo_root, tmp_path, capsys):
    from dlcv.cli import main

    code = main(["train", "configs/demo/p2_byol.yaml", f"data.root={demo_root}", f"run.dir={tmp_path}",
                 "trainer.accelerator=cpu", "trainer.sync_batchnorm=true", *TINY])
    err = capsys.readouterr().err
    assert code == 2 and "sync_batchnorm needs GPUs" in err and "SyncBatchNorm" in err
    assert not (tmp_path / "p2_byol" / "backbone.pt").exists()


def test_byol_config_is_typed():
    cfg = load_config("configs/p2/byol.yaml")
    assert cfg.model.backbone == "resnet50" and cfg.model.hidden_dim == 4096 and cfg.model.proj_dim == 256
    assert cfg.byol.tau_base == 0.996 and cfg.byol.image_size == 128 and list(cfg.byol.blur_p) == [1.0, 0.1]
    seed = load_config("configs/p2/byol_seed.yaml")
    assert (seed.optim.name, seed.optim.lr, seed.data.batch_size, seed.trainer.epochs) == ("adam", 5e-4, 128, 10)
    from dlcv.errors import ConfigError
    with pytest.raises(ConfigError):
        load_config("configs/p2/byol.yaml", ["byol.knn_k=many"])


def test_two_process_cpu_ddp_byol_run(demo_root, tmp_path):
    """`dlcv train` with 2 CPU processes (gloo): Lightning relaunches the command, rank 0 logs and exports."""
    run_dlcv("train", "configs/demo/p2_byol.yaml", f"data.root={demo_root}", f"run.dir={tmp_path}",
             "trainer.devices=2", "trainer.strategy=ddp", "trainer.accelerator=cpu", "trainer.epochs=1",
             "data.batch_size=4", "data.limit=16", "trainer.progress=false", "model.hidden_dim=64",
             "model.proj_dim=32", "byol.knn_max_bank=32", env={"GLOO_SOCKET_IFNAME": "lo"}, timeout=300)
    run = tmp_path / "p2_byol"
    rows = _rows(run)
    assert [int(r["epoch"]) for r in rows] == [0, 1]
    assert int(rows[1]["step"]) == 2  # 16 images / (2 ranks x 4) = 2 steps: each image once per epoch
    assert rows[1]["knn/acc"] != "" and float(rows[1]["train/loss"]) > 0
    sd = torch.load(run / "backbone.pt", weights_only=True)
    assert torchvision.models.resnet18(weights=None).load_state_dict(sd, strict=False).unexpected_keys == []


def test_mini_reader_native_size_resize_and_cache(tmp_path, monkeypatch):
    import numpy as np
    from PIL import Image

    from dlcv.data import mini
    from dlcv.errors import DataError

    folder = tmp_path / "mini" / "train"
    folder.mkdir(parents=True)
    for i in range(3):
        Image.new("RGB", (84, 84), (80 * i, 0, 0)).save(folder / f"n{i:08d}.jpg")
    s = mini.load_mini_folder(folder, tmp_path / "cache")
    assert s.images.shape == (3, 3, 84, 84) and s.labels.tolist() == [-1, -1, -1]
    assert list((tmp_path / "cache").glob("mini-train-84px-*.npy"))
    monkeypatch.setattr(mini, "read_many", lambda *a, **k: (_ for _ in ()).throw(AssertionError("decoded again")))
    assert np.array_equal(mini.load_mini_folder(folder, tmp_path / "cache").images, s.images)  # from the cache
    monkeypatch.undo()
    assert mini.load_mini_folder(folder, tmp_path / "cache", image_size=42).images.shape == (3, 3, 42, 42)
    assert list((tmp_path / "cache").glob("mini-train-84px-*.npy"))  # both sizes kept
    assert len(mini.load_mini_folder(folder, limit=2)) == 2
    Image.new("RGB", (60, 84)).save(folder / "n00000009.jpg")
    with pytest.raises(DataError, match="n00000009.jpg: expected 84x84 pixels, found 60x84"):
        mini.load_mini_folder(folder)


def test_byol_budget_recipe_and_blur_sigma_check():
    from dlcv.errors import ConfigError
    from dlcv.jobs.byol import check_config

    budget = load_config("configs/p2/byol_budget.yaml")
    assert budget.byol.tau_base == 0.99 and list(budget.byol.blur_sigma) == [0.057, 1.143]
    check_config(budget)
    for bad in ("[2.0,1.0]", "[0.0,1.0]", "[1.0]"):
        with pytest.raises(ConfigError, match="blur_sigma"):
            check_config(load_config("configs/p2/byol_budget.yaml", [f"byol.blur_sigma={bad}"]))
