"""The engine's weight EMA (dlcv.callbacks.WeightEMA, on Lightning's EMAWeightAveraging): the update
rule against the hand-computed average, the warm-up, the weights validation sees, what a
checkpoint holds, and a later `trainer.validate` evaluating the weights it is given.
(Exact kill/resume with EMA on: tests/test_resume_all_jobs.py.)"""
from __future__ import annotations

import lightning.pytorch as L
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from dlcv.callbacks import WeightEMA
from dlcv.engine import Trainer

STEPS_PER_EPOCH = 3


class Tiny(L.LightningModule):
    """A linear layer and a BatchNorm (so buffers are averaged too), plain SGD. Records the raw
    weights after every optimizer step and the weights each validation sees."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
        self.raw: list[dict] = []  # after optimizer step k (k = 1, 2, ...)
        self.validated: list[dict] = []  # the weights of each validation epoch

    def snapshot(self) -> dict:
        return {k: v.detach().clone().double() for k, v in self.net.state_dict().items() if v.is_floating_point()}

    def training_step(self, batch, batch_idx):
        (x,) = batch
        return (self.net(x) ** 2).mean() + self.net[0].weight.sum()

    def on_train_batch_end(self, outputs, batch, batch_idx):  # after the callbacks' (the EMA update)
        self.raw.append(self.snapshot())

    def validation_step(self, batch, batch_idx):
        if batch_idx == 0:
            self.validated.append(self.snapshot())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _loader():
    x = torch.randn(STEPS_PER_EPOCH * 4, 4, generator=torch.Generator().manual_seed(1))
    return DataLoader(TensorDataset(x), batch_size=4, shuffle=False)


def _fit(tmp_path, ema: WeightEMA, epochs: int, **kwargs) -> tuple[Tiny, L.Trainer, list[dict]]:
    saved = []

    class SaveEachEpoch(L.Callback):
        def on_train_epoch_end(self, trainer, pl_module):
            path = tmp_path / f"epoch{trainer.current_epoch}.ckpt"
            trainer.save_checkpoint(path)
            saved.append(torch.load(path, weights_only=True))

    model = Tiny()
    trainer = Trainer(accelerator="cpu", max_epochs=epochs, callbacks=[ema, SaveEachEpoch()], logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        num_sanity_val_steps=0, default_root_dir=str(tmp_path), **kwargs)
    trainer.fit(model, train_dataloaders=_loader(), val_dataloaders=_loader())
    return model, trainer, saved


def _ema_by_hand(raw: list[dict], decay: float, first: int = 0) -> dict:
    """e = w_first after step first+1, then e = d_k * e + (1 - d_k) * w_k with the warmed-up decay
    d_k = min(decay, k / (9 + k)), k = 2, 3, ... (1-based over raw[first:])."""
    ws = [{key: v.double() for key, v in w.items()} for w in raw[first:]]
    e = dict(ws[0])
    for k, w in enumerate(ws[1:], start=2):
        d = min(decay, k / (9 + k))
        e = {key: d * e[key] + (1 - d) * w[key] for key in e}
    return e


def test_decay_warms_up_then_holds():
    from dlcv.callbacks import warmup_ema_avg_fn

    avg = warmup_ema_avg_fn(0.9)
    one, zero = torch.ones(3), torch.zeros(3)
    for n, expected in ((1, 2 / 11), (10, 11 / 20), (100, 0.9)):  # k = n + 1: min(0.9, k / (9 + k))
        assert torch.allclose(avg(one, zero, torch.tensor(n)), torch.full((3,), expected))


def _close(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.allclose(a[k].double(), b[k].double(), rtol=1e-5, atol=1e-6) for k in a)


def test_ema_after_k_steps_equals_the_hand_computed_average(tmp_path):
    decay = 0.8
    model, _, saved = _fit(tmp_path, WeightEMA(decay), epochs=2)
    raw = model.raw
    assert len(raw) == 2 * STEPS_PER_EPOCH
    # each validation (end of epoch e) saw the EMA of the steps so far, not the raw weights
    for epoch, seen in enumerate(model.validated):
        k = (epoch + 1) * STEPS_PER_EPOCH
        assert _close(seen, _ema_by_hand(raw[:k], decay))
        assert not _close(seen, raw[k - 1])
    # every checkpoint: state_dict = the average, current_model_state = the raw weights, and the
    # AveragedModel's counter (n_averaged = steps) in averaging_state
    for epoch, ckpt in enumerate(saved):
        k = (epoch + 1) * STEPS_PER_EPOCH
        ema = {k_[len("net."):]: v.double() for k_, v in ckpt["state_dict"].items() if v.is_floating_point()}
        current = {k_[len("net."):]: v.double() for k_, v in ckpt["current_model_state"].items()
                   if v.is_floating_point()}
        assert _close(ema, _ema_by_hand(raw[:k], decay)) and _close(current, raw[k - 1])
        assert int(ckpt["averaging_state"]["n_averaged"]) == k
    # after fit the module holds the average (what a job exports)
    assert _close(model.snapshot(), _ema_by_hand(raw, decay))


def test_warmup_epochs_copy_the_weights_then_average(tmp_path):
    decay = 0.5
    model, _, saved = _fit(tmp_path, WeightEMA(decay, warmup_epochs=1), epochs=2)
    raw = model.raw
    # epoch 1 (warm-up): the "average" is the weights themselves
    assert _close(model.validated[0], raw[STEPS_PER_EPOCH - 1])
    # epoch 2: the EMA starts from the warm-up's last weights
    assert _close(model.validated[1], _ema_by_hand(raw, decay, first=STEPS_PER_EPOCH - 1))


def test_validate_after_fit_evaluates_the_weights_it_is_given(tmp_path):
    model, trainer, _ = _fit(tmp_path, WeightEMA(0.8), epochs=1)
    given = {k: torch.full_like(v, 0.25) if v.is_floating_point() else v for k, v in model.state_dict().items()}
    model.load_state_dict(given)  # e.g. a job loading best.ckpt before its final evaluation
    model.validated.clear()
    trainer.validate(model, dataloaders=_loader(), verbose=False)
    assert all(torch.all(v == 0.25) for v in model.validated[0].values())


def test_ema_decay_out_of_range_is_a_config_error(tmp_path):
    from dlcv.config import load_config
    from dlcv.engine import build_trainer
    from dlcv.errors import ConfigError

    cfg = load_config("configs/demo/p1_seed_a.yaml", ["trainer.ema_decay=1.0"])
    with pytest.raises(ConfigError, match="ema_decay"):
        build_trainer(cfg, tmp_path, monitor=None)
