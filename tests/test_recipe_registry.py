"""Recipes, models and augmentations describe themselves from the values they run with: change a
parameter in the registry or the config and the report's text changes with it (no restated prose)."""
from __future__ import annotations

import dataclasses

import torch

from dlcv.config import load_config, to_dict
from dlcv.data.augment import classify as augments
from dlcv.models import classifiers
from dlcv.report import configtext
from dlcv.report.runs import Run
from dlcv.tasks.classification import ClassificationTask


def _run(tmp_path, *overrides: str) -> Run:
    cfg = load_config("configs/p1/strong_a.yaml", ["data.root=unused", *overrides])
    return Run(tmp_path, config=to_dict(cfg))


def test_augmentation_text_follows_the_registry_entry_that_runs(tmp_path, monkeypatch):
    run = _run(tmp_path, "augment=crop_flip_jitter")
    assert "brightness 0.3" in configtext.augment(run)
    stronger = dataclasses.replace(augments.AUGMENTS["crop_flip_jitter"], jitter=augments.Jitter(brightness=0.7))
    monkeypatch.setitem(augments.AUGMENTS, "crop_flip_jitter", stronger)
    assert "brightness 0.7" in configtext.augment(run)
    task = ClassificationTask(load_config("configs/p1/strong_a.yaml", ["augment=crop_flip_jitter", "model.width=8"]))
    assert task.augment is stronger  # what is described is what trains


def test_pad_fraction_changes_both_the_crop_and_the_text(monkeypatch):
    entry = dataclasses.replace(augments.AUGMENTS["crop_flip"], pad_fraction=0.25, flip_p=0.0)
    x = torch.ones(64, 3, 16, 16)
    shifted = entry(x, torch.Generator().manual_seed(0))
    uncovered = (shifted == 0).flatten(1).any(1)  # zeros: the shift uncovered the padding
    assert "zero-pad 0.25" in entry.describe() and "flip p 0" in entry.describe()
    # with pad 4 of 16 some crops move by more than 2 px: rows of zeros wider than pad 1/8 allows
    widest = max(int((s[0] == 0).all(1).sum()) for s in shifted[uncovered])
    assert widest > 2


def test_model_text_follows_the_config_and_the_code(tmp_path, monkeypatch):
    run = _run(tmp_path, "model.name=seed_a", "model.hidden=77", "model.dropout=0.1")
    text = configtext.model(run)
    assert "FC 77" in text and "dropout 0.1" in text and "3→32→64" in text
    monkeypatch.setattr(classifiers.SeedCNN, "CHANNELS", (16, 24))
    assert "3→16→24" in configtext.model(run)
    cfg = load_config("configs/p1/seed_a.yaml", ["data.root=unused"])
    assert classifiers.build_classifier(cfg.model).backbone.conv[0].out_channels == 16


def test_optimizer_and_schedule_text_follow_the_config(tmp_path):
    a = _run(tmp_path, "optim.name=sgd", "optim.lr=0.05", "optim.schedule=poly", "optim.warmup_epochs=2")
    assert configtext.optimizer(a).startswith("SGD (lr 0.05")
    assert configtext.schedule(a).startswith("polynomial (power 0.9)") and "warm-up 2 epochs" in configtext.schedule(a)
    b = _run(tmp_path, "optim.name=adamw", "optim.lr=0.002", "optim.weight_decay=0.05")
    assert "AdamW (lr 0.002" in configtext.optimizer(b) and "weight decay 0.05" in configtext.optimizer(b)


def test_mix_is_part_of_the_augmentation_text(tmp_path):
    run = _run(tmp_path, "mix.mixup_alpha=0.2", "mix.cutmix_alpha=1.0", "mix.switch_prob=0.5")
    text = configtext.augment(run)
    assert "MixUp (lam ~ Beta(0.2, 0.2))" in text and "CutMix (lam ~ Beta(1, 1))" in text


def test_an_unreadable_config_is_a_question_mark_not_a_crash(tmp_path):
    run = Run(tmp_path, config={"task": "classify", "no_such_key": 1})
    assert configtext.model(run) == "?" and configtext.optimizer(run) == "?"
