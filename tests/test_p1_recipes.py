"""The recipes of the "beat the best student" issue: every new config resolves, builds, and its optimizer
has the per-group learning rates its YAML promises; one short run with all the new parts at once
(TrivialAugmentWide, layer-wise LR decay, head/backbone LRs, MixUp/CutMix, EMA) trains and resumes
exactly."""
from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from dlcv.config import load_config, to_dict
from dlcv.data.augment.classify import AUGMENTS
from dlcv.tasks.classification import ClassificationTask
from tests.helpers import run_dlcv, stopped_after

NEW = ["configs/p1/fast_a.yaml", "configs/p1/strong_a_long.yaml", "configs/p1/b_convnext_ft.yaml",
       "configs/p1/b_efficientnet_lite0_ft.yaml", "configs/p2/finetune.yaml", "configs/demo/p1_fast_a.yaml",
       "configs/demo/p1_b_ft.yaml"]


def task_and_optimizer(config: str, *overrides: str):
    cfg = load_config(config, ["data.root=unused", "model.pretrained=none", *overrides])
    task = ClassificationTask(to_dict(cfg))
    task.trainer = SimpleNamespace(estimated_stepping_batches=10 * cfg.trainer.epochs, max_epochs=cfg.trainer.epochs)
    return cfg, task, task.configure_optimizers()["optimizer"]


def lr_by_name(task, optimizer) -> dict[str, float]:
    """Each parameter's LR before the schedule's multiplier (the warm-up has already scaled "lr")."""
    lr = {id(p): g["initial_lr"] for g in optimizer.param_groups for p in g["params"]}
    return {n: lr[id(p)] for n, p in task.model.named_parameters() if id(p) in lr}


@pytest.mark.parametrize("config", NEW)
def test_new_configs_resolve_build_and_describe_themselves(config):
    from dlcv.models.classifiers import describe_classifier
    from dlcv.optim import describe_optimizer

    cfg, task, optimizer = task_and_optimizer(config)
    assert cfg.augment in AUGMENTS
    trainable = sum(p.numel() for p in task.model.parameters() if p.requires_grad)
    assert sum(p.numel() for g in optimizer.param_groups for p in g["params"]) == trainable
    assert describe_classifier(cfg.model) and describe_optimizer(cfg.optim).startswith(("SGD", "AdamW"))


def test_convnext_ft_lrs_are_lr_times_decay_to_the_depth():
    cfg, task, optimizer = task_and_optimizer("configs/p1/b_convnext_ft.yaml")
    lr, decay = cfg.optim.lr, cfg.optim.layer_decay
    got = lr_by_name(task, optimizer)
    assert len(got) == sum(1 for _ in task.model.parameters())  # full fine-tuning: everything trains
    expected = {"head.weight": 0, "backbone.net.classifier.0.bias": 0, "backbone.net.features.7.2.block.5.weight": 1,
                "backbone.net.features.6.1.weight": 3, "backbone.net.features.5.8.layer_scale": 4,
                "backbone.net.features.0.0.weight": 19}
    for name, depth in expected.items():
        assert got[name] == pytest.approx(lr * decay ** depth), name
    assert optimizer.param_groups[0]["initial_lr"] == pytest.approx(lr)  # epochs.csv's lr column: the head's
    decayed = {id(p) for g in optimizer.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    for n, p in task.model.named_parameters():  # no decay on norms, biases, layer scales
        assert (id(p) in decayed) == (p.ndim > 1), n


def test_efficientnet_lite0_ft_lrs():
    cfg, task, optimizer = task_and_optimizer("configs/p1/b_efficientnet_lite0_ft.yaml")
    got = lr_by_name(task, optimizer)
    lr, decay = cfg.optim.lr, cfg.optim.layer_decay
    assert got["head.weight"] == pytest.approx(lr)
    assert got["backbone.net.conv_head.weight"] == pytest.approx(lr * decay)
    assert got["backbone.net.blocks.3.1.conv_pw.weight"] == pytest.approx(lr * decay ** 5)
    assert got["backbone.net.conv_stem.weight"] == pytest.approx(lr * decay ** 9)


@pytest.mark.parametrize("freeze", ["none", "backbone"])
def test_p2_finetune_gives_the_head_and_the_backbone_their_own_rates(freeze):
    """Settings B/C (freeze none): backbone at lr x backbone_lr_scale under the head's lr; D/E (frozen
    backbone): only the head is in the optimizer, at the head's (higher) rate."""
    cfg, task, optimizer = task_and_optimizer("configs/p2/finetune.yaml", f"model.freeze={freeze}",
                                              "model.name=resnet18")
    got = lr_by_name(task, optimizer)
    assert got["head.weight"] == pytest.approx(cfg.optim.lr) == pytest.approx(2e-3)
    backbone = {v for n, v in got.items() if not n.startswith("head.")}
    if freeze == "none":
        assert len(backbone) == 1 and math.isclose(backbone.pop(), 5e-4)  # = lr x backbone_lr_scale
    else:
        assert backbone == set()


def test_fast_recipe_keeps_one_lr_and_nesterov():
    cfg, task, optimizer = task_and_optimizer("configs/p1/fast_a.yaml")
    assert task.lr_scales() is None and len(optimizer.param_groups) == 2  # decay / no decay, as before
    assert all(g["nesterov"] and g["initial_lr"] == cfg.optim.lr for g in optimizer.param_groups)


@pytest.mark.slow
def test_all_new_parts_train_together_and_resume_exactly(demo_root, tmp_path):
    common = ["configs/demo/p1_fast_a.yaml", f"data.root={demo_root}", "trainer.epochs=2", "trainer.progress=false",
              "augment=crop_flip_ta", "optim.layer_decay=0.8", "optim.backbone_lr_scale=0.5",
              "mix.mixup_alpha=0.2", "mix.cutmix_alpha=1.0", "trainer.ema_decay=0.9", "model.width=8",
              "features.enabled=false"]
    run_dlcv("train", *common, f"run.dir={tmp_path}/a")
    full = tmp_path / "a" / "p1_fast_a"
    stopped = stopped_after(full, tmp_path / "b" / "p1_fast_a", 1)
    run_dlcv("train", *common, f"run.dir={tmp_path}/b", "--resume")
    a = torch.load(full / "checkpoints" / "last.ckpt", weights_only=True)
    b = torch.load(stopped / "checkpoints" / "last.ckpt", weights_only=True)
    assert a["global_step"] == b["global_step"] > 0
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k
    groups_a, groups_b = a["optimizer_states"][0]["param_groups"], b["optimizer_states"][0]["param_groups"]
    assert [g["lr"] for g in groups_a] == [g["lr"] for g in groups_b] and len(groups_a) > 4
