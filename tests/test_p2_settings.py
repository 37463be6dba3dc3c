"""`dlcv p2-settings`: the five settings A-E, the frozen-backbone guarantee of D/E, the table."""
import csv

import pytest
import torch
import torch.nn.functional as F
import torchvision
from omegaconf import OmegaConf

from dlcv.config import ModelConfig, load_config
from dlcv.jobs.p2_settings import SETTINGS, setting_config
from dlcv.models.classifiers import build_classifier
from dlcv.optim import build_optimizer
from tests.helpers import run_dlcv

pytestmark = pytest.mark.slow

FAST = ["trainer.epochs=1", "trainer.limit_train_batches=2", "data.batch_size=8", "trainer.progress=false"]


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A stand-in SL file (torchvision resnet18 state_dict WITH its 1000-way fc, like pretrain_model_SL.pt)
    and a BYOL-style backbone file (no fc)."""
    folder = tmp_path_factory.mktemp("weights")
    torch.manual_seed(11)
    sl = torchvision.models.resnet18(weights=None).state_dict()
    torch.save(sl, folder / "pretrain_model_SL.pt")
    torch.manual_seed(12)
    byol = {k: v for k, v in torchvision.models.resnet18(weights=None).state_dict().items() if not k.startswith("fc.")}
    torch.save(byol, folder / "backbone.pt")
    return folder / "pretrain_model_SL.pt", folder / "backbone.pt"


def _model(pretrained, freeze):
    return build_classifier(OmegaConf.structured(ModelConfig(name="resnet18", num_classes=65, input_size=32,
                                                             pretrained=str(pretrained), freeze=freeze)))


@pytest.mark.parametrize("which", [0, 1], ids=["D_supervised", "E_byol"])
def test_frozen_settings_change_only_the_head(weights, which):
    """D/E: after real optimizer steps every backbone weight AND BatchNorm buffer is bit-identical."""
    model = _model(weights[which], "backbone")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = build_optimizer(OmegaConf.create({"name": "adam", "lr": 1e-2, "weight_decay": 0.1}), model.named_parameters())
    model.train()
    for _ in range(3):
        x = torch.randint(0, 256, (8, 3, 48, 48), dtype=torch.uint8)
        loss = F.cross_entropy(model(x), torch.randint(0, 65, (8,)))
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = model.state_dict()
    backbone = [k for k in before if k.startswith("backbone.")]
    assert any("running_mean" in k for k in backbone) and any("num_batches_tracked" in k for k in backbone)
    for k in backbone:
        assert torch.equal(before[k], after[k]), k
    assert not torch.equal(before["head.weight"], after["head.weight"])
    # and the loaded backbone is the file's
    source = torch.load(weights[which], weights_only=True)
    for k, v in source.items():
        if not k.startswith("fc."):
            assert torch.equal(after[f"backbone.net.{k}"], v), k


def test_full_fine_tuning_settings_do_train_the_backbone(weights):
    model = _model(weights[0], "none")
    before = model.backbone.net.bn1.running_mean.clone()
    model.train()
    model(torch.rand(4, 3, 32, 32))
    assert not torch.equal(before, model.backbone.net.bn1.running_mean)


def test_settings_differ_only_in_start_and_freeze(weights):
    base = ["data.root=/data"]
    cfgs = {n: setting_config("configs/p2/finetune_seed.yaml", base, n, *weights) for n in SETTINGS}
    for n, cfg in cfgs.items():
        s = SETTINGS[n]
        assert cfg.run.name == f"p2_setting_{n}" and cfg.model.freeze == s.freeze
        assert cfg.model.pretrained == {"none": "none", "sl": str(weights[0]), "byol": str(weights[1])}[s.start]
        same = OmegaConf.to_container(cfg)
        ref = OmegaConf.to_container(cfgs["A"])
        for d in (same, ref):
            d["run"].pop("name"), d["model"].pop("pretrained"), d["model"].pop("freeze")
        assert same == ref  # the same model, head, optimizer, epochs, data for all five
    seed = load_config("configs/p2/finetune_seed.yaml")
    assert (seed.model.name, seed.optim.name, seed.optim.lr, seed.data.batch_size, seed.trainer.epochs) == \
        ("resnet50", "adam", 5e-4, 64, 100)


def test_p2_settings_command_writes_the_table(demo_root, tmp_path, weights):
    sl, byol = weights
    proc = run_dlcv("p2-settings", "configs/demo/p2_finetune.yaml", f"data.root={demo_root}", f"run.dir={tmp_path}",
                    *FAST, "--sl", str(sl), "--byol", str(byol))
    out = tmp_path / "p2_settings"
    with open(out / "table.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["setting"] for r in rows] == ["A", "B", "C", "D", "E"]
    assert list(rows[0])[:6] == ["setting", "backbone start", "what trains", "our val acc", "seed's val acc",
                                 "best student"]
    assert [float(r["seed's val acc"]) for r in rows] == [41.0, 59.5, 49.6, 53.9, 34.0]
    assert [float(r["best student"]) for r in rows] == [52.7, 59.5, 55.1, 53.9, 43.8]
    assert all(0 <= float(r["our val acc"]) <= 100 for r in rows)
    assert rows[3]["what trains"] == "classifier only (backbone frozen)"
    md = (out / "table.md").read_text()
    assert sum(l.startswith("| ") for l in md.splitlines()) == 6 and "| E | own BYOL backbone |" in md  # header + 5
    assert (out / "val_acc.png").read_bytes()[:4] == b"\x89PNG"
    assert "| C | own BYOL backbone" in proc.stdout

    # D and E as trained by the command: the backbone in model.pt is exactly the file it started from
    for name, source in (("D", sl), ("E", byol)):
        state = torch.load(tmp_path / f"p2_setting_{name}" / "model.pt", weights_only=True)["state_dict"]
        for k, v in torch.load(source, weights_only=True).items():
            if not k.startswith("fc."):
                assert torch.equal(state[f"model.backbone.net.{k}"], v), (name, k)
    state_b = torch.load(tmp_path / "p2_setting_B" / "model.pt", weights_only=True)["state_dict"]
    assert not torch.equal(state_b["model.backbone.net.conv1.weight"], torch.load(sl, weights_only=True)["conv1.weight"])

    # a second call reuses the five finished runs instead of retraining them
    again = run_dlcv("p2-settings", "configs/demo/p2_finetune.yaml", f"data.root={demo_root}",
                     f"run.dir={tmp_path}", *FAST, "--sl", str(sl), "--byol", str(byol))
    assert again.stdout.count("reusing the finished run") == 5


def _cli(capsys, *args):
    """`dlcv ...` in this process (the error paths need no subprocess): (exit code, stderr)."""
    from dlcv.cli import main

    code = main(list(args))
    return code, capsys.readouterr().err


def test_missing_sl_file_is_named_before_any_training(demo_root, tmp_path, weights, capsys):
    code, err = _cli(capsys, "p2-settings", "configs/demo/p2_finetune.yaml", f"data.root={demo_root}",
                     f"run.dir={tmp_path}", *FAST, "--byol", str(weights[1]))
    missing = demo_root / "p2_data" / "pretrain_model_SL.pt"
    assert code == 2
    assert str(missing) in err and "2048 -> 1000" in err and "--sl PATH" in err
    assert not (tmp_path / "p2_setting_A").exists()
    # a base config that is not an Office fine-tuning config is refused
    code, err = _cli(capsys, "p2-settings", "configs/demo/p2_byol.yaml", f"data.root={demo_root}")
    assert code == 2 and "task: classify, dataset: office" in err
    # only setting C: the SL file is not needed, the missing BYOL backbone is named
    code, err = _cli(capsys, "p2-settings", "configs/demo/p2_finetune.yaml", f"data.root={demo_root}",
                     f"run.dir={tmp_path}", "--settings", "C")
    assert code == 2 and "the BYOL backbone is missing" in err


def test_config_argument_is_optional(capsys, tmp_path):
    """`dlcv p2-settings key=value ...` uses configs/p2/finetune.yaml (the README's form)."""
    code, err = _cli(capsys, "p2-settings", f"data.root={tmp_path}", f"run.dir={tmp_path}")
    assert code == 2 and str(tmp_path / "p2_data" / "pretrain_model_SL.pt") in err  # the default config's data.root
