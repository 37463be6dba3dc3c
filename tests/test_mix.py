"""MixUp / CutMix on a batch: torchvision.transforms.v2 semantics, exactly, and the generator rule."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision.transforms import v2

from dlcv.data.augment.mix import cutmix, cutmix_box, mix_batch, mixup, soft_targets


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    return torch.rand(6, 3, 16, 20, generator=g), torch.tensor([0, 1, 2, 3, 4, 1])


def test_mixup_equals_torchvisions(batch):
    x, y = batch
    torch.manual_seed(3)
    want_x, want_y = v2.MixUp(alpha=0.4, num_classes=5)(x, y)
    torch.manual_seed(3)
    lam = float(torch.distributions.Beta(torch.tensor(0.4), torch.tensor(0.4)).sample(()))
    got_x, got_y = mixup(x, soft_targets(y, 5), lam)
    assert torch.equal(got_x, want_x) and torch.equal(got_y, want_y)
    assert torch.allclose(got_y.sum(1), torch.ones(6))
    assert got_y[0, 0] == pytest.approx(lam) and got_y[0, 1] == pytest.approx(1 - lam)  # sample 0 mixes with 5 (class 1)


def test_cutmix_equals_torchvisions_and_its_labels_are_the_kept_area(batch):
    x, y = batch
    torch.manual_seed(5)
    want_x, want_y = v2.CutMix(alpha=1.0, num_classes=5)(x, y)
    torch.manual_seed(5)
    lam = float(torch.distributions.Beta(torch.tensor(1.0), torch.tensor(1.0)).sample(()))
    cx, cy = int(torch.randint(20, (1,))), int(torch.randint(16, (1,)))
    r = 0.5 * (1 - lam) ** 0.5
    box = (max(cy - int(r * 16), 0), max(cx - int(r * 20), 0), min(cy + int(r * 16), 16), min(cx + int(r * 20), 20))
    got_x, got_y = cutmix(x, soft_targets(y, 5), box)
    assert torch.equal(got_x, want_x) and torch.equal(got_y, want_y)
    top, left, bottom, right = box
    pasted = torch.zeros(16, 20, dtype=torch.bool)
    pasted[top:bottom, left:right] = True
    assert torch.equal(got_x[1][:, pasted], x[0][:, pasted]) and torch.equal(got_x[1][:, ~pasted], x[1][:, ~pasted])
    kept = 1 - pasted.float().mean().item()
    assert got_y[1, 1] == pytest.approx(kept) and got_y[1, 0] == pytest.approx(1 - kept)


def test_cutmix_box_area_follows_lam_and_stays_inside():
    rng = np.random.default_rng(0)
    for lam in (0.1, 0.5, 0.9):
        areas = []
        for _ in range(200):
            top, left, bottom, right = cutmix_box(64, 64, lam, rng)
            assert 0 <= top <= bottom <= 64 and 0 <= left <= right <= 64
            areas.append((bottom - top) * (right - left) / 64**2)
        assert max(areas) <= (1 - lam) + 0.05  # clipping only shrinks the box
        assert np.mean(areas) > 0.4 * (1 - lam)


def test_mix_batch_is_a_function_of_the_generator(batch):
    x, y = batch

    def run(seed, **kw):
        return mix_batch(x, y, 5, torch.Generator().manual_seed(seed), **kw)

    a, b = run(1, mixup_alpha=0.2, cutmix_alpha=1.0), run(1, mixup_alpha=0.2, cutmix_alpha=1.0)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    same_x, one_hot = run(1, mixup_alpha=0.2, prob=0.0)
    assert torch.equal(same_x, x) and torch.equal(one_hot, soft_targets(y, 5))
    results = {run(s, mixup_alpha=0.0, cutmix_alpha=1.0)[0].sub(x).ne(0).flatten(1).any(1).sum().item() for s in range(6)}
    assert max(results) > 0  # CutMix alone changes some images
    mixed_x, mixed_y = run(2, mixup_alpha=0.4)
    assert torch.allclose(mixed_y.sum(1), torch.ones(6)) and not torch.equal(mixed_x, x)


@pytest.mark.slow
def test_training_with_mixup_and_cutmix(demo_root, tmp_path):
    """A short `dlcv train` with both on: soft-target cross entropy, the accuracy of the larger share."""
    import json

    from dlcv.cli import main

    args = ["train", "configs/demo/p1_seed_a.yaml", f"data.root={demo_root}", f"run.dir={tmp_path}", "run.name=mixed",
            "mix.mixup_alpha=0.2", "mix.cutmix_alpha=1.0", "trainer.epochs=2", "features.enabled=false",
            "trainer.progress=false"]
    assert main(args) == 0
    summary = json.loads((tmp_path / "mixed" / "summary.json").read_text())
    assert 0 <= summary["val_acc"] <= 1
    assert "mixup_alpha: 0.2" in (tmp_path / "mixed" / "config.yaml").read_text()
