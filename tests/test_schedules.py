from types import SimpleNamespace

import numpy as np
import pytest
import torch

from dlcv.schedules import lr_schedule, lr_schedule_for, plot_schedules, tau_schedule


@pytest.mark.parametrize("kind", ["constant", "cosine", "poly", "step"])
def test_lengths_and_warmup_endpoints(kind):
    m = lr_schedule(100, warmup_steps=10, kind=kind, milestones=[60], min_ratio=0.1)
    assert m.shape == (100,) and m.dtype == np.float64
    assert m[0] == pytest.approx(1 / 10)  # step i of warm-up has (i+1)/W, never 0
    assert m[9] == 1.0  # end of warm-up
    assert np.all(np.diff(m[:10]) > 0)
    assert np.allclose(np.diff(m[:10]), 0.1)


def test_constant():
    assert np.array_equal(lr_schedule(7), np.ones(7))
    m = lr_schedule(7, warmup_steps=3)
    assert np.allclose(m, [1 / 3, 2 / 3, 1, 1, 1, 1, 1])


@pytest.mark.parametrize("min_ratio", [0.0, 0.05])
def test_cosine_endpoints_and_monotone(min_ratio):
    m = lr_schedule(50, warmup_steps=5, kind="cosine", min_ratio=min_ratio)
    assert m[5] == 1.0  # first step after warm-up
    assert m[-1] == pytest.approx(min_ratio, abs=1e-12)
    assert np.all(np.diff(m[5:]) < 0)  # strictly decreasing after warm-up
    assert m.min() >= min_ratio - 1e-12 and m.max() == 1.0
    # midpoint of the cosine is halfway between 1 and min_ratio
    m2 = lr_schedule(11, kind="cosine", min_ratio=min_ratio)
    assert m2[5] == pytest.approx((1 + min_ratio) / 2)


def test_cosine_without_warmup_starts_at_one():
    m = lr_schedule(10, kind="cosine")
    assert m[0] == 1.0 and m[-1] == pytest.approx(0.0, abs=1e-12)


def test_step_decay_values():
    m = lr_schedule(10, kind="step", milestones=[3, 7], gamma=0.5)
    assert np.allclose(m, [1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25])
    # milestones count from step 0 including warm-up, and multiply the ramp
    m = lr_schedule(6, warmup_steps=2, kind="step", milestones=[4], gamma=0.1)
    assert np.allclose(m, [0.5, 1, 1, 1, 0.1, 0.1])
    # unsorted milestones are fine; a milestone beyond the end never fires
    assert np.allclose(lr_schedule(4, kind="step", milestones=[9, 2]), [1, 1, 0.1, 0.1])


def test_step_matches_multisteplr():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[2, 5], gamma=0.3)
    lrs = []
    for _ in range(8):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert np.allclose(lr_schedule(8, kind="step", milestones=[2, 5], gamma=0.3), lrs)


def test_edge_cases():
    assert np.array_equal(lr_schedule(1, kind="cosine"), [1.0])  # a lone step is never zero-LR
    assert np.array_equal(lr_schedule(1, warmup_steps=1, kind="cosine"), [1.0])
    assert np.allclose(lr_schedule(4, warmup_steps=4, kind="cosine"), [0.25, 0.5, 0.75, 1.0])
    assert np.array_equal(lr_schedule(3, warmup_steps=2, kind="cosine", min_ratio=0.2), [0.5, 1, 1])
    with pytest.raises(ValueError):
        lr_schedule(0)
    with pytest.raises(ValueError):
        lr_schedule(5, warmup_steps=6)
    with pytest.raises(ValueError):
        lr_schedule(5, kind="linear")
    with pytest.raises(ValueError):
        lr_schedule(5, kind="cosine", min_ratio=1.5)


def test_lambdalr_usage():
    mult = lr_schedule(6, warmup_steps=2, kind="cosine")
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.4)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: float(mult[min(i, len(mult) - 1)]))
    seen = []
    for _ in range(6):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert np.allclose(seen, 0.4 * mult)


def test_lr_schedule_for_config():
    cfg = SimpleNamespace(schedule="step", warmup_epochs=0.5, min_lr_ratio=0.0, step_epochs=[2],
                          step_gamma=0.1)
    m = lr_schedule_for(cfg, epochs=3, steps_per_epoch=4)
    assert np.allclose(m, [0.5, 1, 1, 1, 1, 1, 1, 1, 0.1, 0.1, 0.1, 0.1])


def test_tau_endpoints_and_monotone():
    tau = tau_schedule(1000)
    assert tau.shape == (1000,)
    assert tau[0] == 0.996
    assert tau[-1] == 1.0
    assert np.all(np.diff(tau) > 0)
    assert np.all((tau >= 0.996) & (tau <= 1.0))
    # the paper's formula with K-1 in the denominator: halfway is the mean of base and 1
    tau = tau_schedule(101, base=0.99)
    assert tau[50] == pytest.approx(0.995)
    k = np.arange(101)
    assert np.allclose(tau, 1 - (1 - 0.99) * (np.cos(np.pi * k / 100) + 1) / 2)


def test_tau_edge_cases():
    assert np.array_equal(tau_schedule(1), [0.996])
    assert np.array_equal(tau_schedule(2, base=0.9), [0.9, 1.0])
    assert np.array_equal(tau_schedule(5, base=1.0), np.ones(5))
    with pytest.raises(ValueError):
        tau_schedule(0)
    with pytest.raises(ValueError):
        tau_schedule(5, base=1.5)


def test_plot_schedules(tmp_path):
    out = plot_schedules(tmp_path / "sub" / "sched.png", title="BYOL",
                         lr=lr_schedule(50, 5, "cosine"), tau=tau_schedule(50))
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
    with pytest.raises(ValueError):
        plot_schedules(tmp_path / "x.png")


def test_poly_endpoints_and_monotone():
    m = lr_schedule(40, warmup_steps=4, kind="poly", min_ratio=0.1)
    assert m[4] == pytest.approx(1.0)
    assert np.all(np.diff(m[4:]) < 0)
    assert m[-1] == pytest.approx(0.1 + 0.9 * (1 / 36) ** 0.9)
