"""P3 test-time augmentation (dlcv.graded.models.segment_scores) and its use by hw1_3.sh: every view
is mapped back to the input's pixels (flips undone, rescaled logits resized back), flip TTA is the
old one bit for bit, `auto` and its time budget, the autocast precision rule, the CLI options."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from dlcv.errors import ConfigError
from dlcv.graded.models import (
    DEFAULT_TTA_SCALES,
    describe_tta,
    flip_tta_probabilities,
    segment_scores,
    tta_cost,
    tta_views,
)
from dlcv.graded.p3 import Inference, TtaBudget, autocast_dtype, resolve_scales, resolve_tta
from tests.helpers import run_graded


class Pointwise(nn.Module):
    """Logits from each pixel's own colour (a 1x1 conv after the Segmenter's uint8 -> [0, 1]): a model
    that commutes with flips exactly and with bilinear resizing inside regions of one colour."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 7, 1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(7, 3, 1, 1, generator=torch.Generator().manual_seed(0)) * 8)

    def forward(self, x):
        return self.conv(x if x.is_floating_point() else x.float().div(255))


class Recorder(nn.Module):
    """Records the input of every pass; its logits are a marker that moves with the image."""

    def __init__(self):
        super().__init__()
        self.inputs: list[torch.Tensor] = []

    def forward(self, x):
        self.inputs.append(x.clone())
        x = x if x.is_floating_point() else x.float().div(255)
        return torch.cat([x, torch.zeros_like(x[:, :1]).expand(-1, 4, -1, -1)], 1) * 10


def _blocks(h: int = 48, w: int = 80, block: int = 16, seed: int = 0) -> torch.Tensor:
    """(2,3,h,w) uint8 images of flat random-colour 16x16 blocks: no symmetry to hide a wrong mapping."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randint(0, 256, (2, 3, h // block, w // block), generator=g, dtype=torch.uint8)
    return coarse.repeat_interleave(block, 2).repeat_interleave(block, 3)


def _interior(h: int = 48, w: int = 80, block: int = 16, margin: int = 4) -> torch.Tensor:
    """Pixels at least `margin` px from every block edge (where down-and-up resizing is exact)."""
    ys, xs = torch.arange(h) % block, torch.arange(w) % block
    inner = lambda v: (v >= margin) & (v < block - margin)  # noqa: E731
    return inner(ys)[:, None] & inner(xs)[None, :]


# ---------------------------------------------------------------- the views
def test_views_order_cost_and_errors():
    assert tta_views("none") == [(1.0, None)]
    assert tta_views("flip") == [(1.0, None), (1.0, -1), (1.0, -2)]
    assert tta_views("multiscale", (0.5, 1)) == [(0.5, None), (1.0, None)]
    assert len(tta_views("flip_multiscale")) == 9
    assert tta_cost("flip_multiscale", DEFAULT_TTA_SCALES) == pytest.approx(3 * (0.75**2 + 1 + 1.25**2))
    assert "9 passes" in describe_tta("flip_multiscale") and describe_tta("none") == "none"
    with pytest.raises(ValueError, match="unknown TTA mode"):
        tta_views("rot90")
    with pytest.raises(ValueError, match="positive"):
        tta_views("multiscale", (0.0, 1.0))


def test_each_pass_sees_the_right_view():
    x = _blocks()
    model = Recorder()
    out = segment_scores(model, x, "flip_multiscale", (0.75, 1.0, 1.25))
    sizes = [tuple(t.shape[-2:]) for t in model.inputs]
    assert sizes == [(36, 60)] * 3 + [(48, 80)] * 3 + [(60, 100)] * 3
    assert torch.equal(model.inputs[4], x.flip(-1)) and torch.equal(model.inputs[5], x.flip(-2))
    assert out.shape == (2, 7, 48, 80) and torch.allclose(out.sum(1), torch.ones(2, 48, 80))


# ---------------------------------------------------------------- mapped back to the right pixels
def test_flip_tta_equals_the_old_flip_tta_bit_for_bit():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 7, 5, padding=2), nn.Tanh(), nn.Conv2d(7, 7, 3, padding=1)).eval()
    x = torch.rand(2, 3, 40, 56)
    with torch.no_grad():
        assert torch.equal(segment_scores(model, x, "flip"), flip_tta_probabilities(model, x, (-1, -2), dense=True))


@pytest.mark.parametrize("mode", ["flip", "multiscale", "flip_multiscale"])
def test_tta_of_an_equivariant_model_is_its_plain_output(mode):
    """A model that commutes with flips and resizing: every mode must give its plain softmax back at
    the same pixels. Forgetting to undo a flip, undoing the wrong one, or resizing back with H and W
    swapped moves the non-symmetric block pattern and fails this."""
    model, x = Pointwise().eval(), _blocks()
    with torch.no_grad():
        plain = model(x).softmax(1)
        tta = segment_scores(model, x, mode, (0.75, 1.0, 1.25))
    if mode == "flip":
        torch.testing.assert_close(tta, plain, rtol=0, atol=1e-6)
        return
    inner = _interior()
    torch.testing.assert_close(tta[:, :, inner], plain[:, :, inner], rtol=0, atol=1e-4)
    assert (tta.argmax(1)[:, inner] == plain.argmax(1)[:, inner]).all()
    assert plain.argmax(1)[:, inner].unique().numel() > 2  # the pattern really varies


def test_a_view_that_is_not_mapped_back_would_be_caught():
    """The control of the test above: the same model with its output left mirrored differs."""
    model, x = Pointwise().eval(), _blocks()
    with torch.no_grad():
        plain = model(x).softmax(1)
        mirrored = model(x.flip(-1)).softmax(1)
    assert not torch.allclose(mirrored, plain, atol=1e-2)


# ---------------------------------------------------------------- hw1_3's choices
def test_resolve_tta_words_env_and_auto(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    monkeypatch.delenv("DLCV_P3_TTA", raising=False)
    assert resolve_tta(None, cpu) == ("none", False) and resolve_tta(True, cpu) == ("flip", False)
    assert resolve_tta("1", cpu) == ("flip", False) and resolve_tta("off", cpu) == ("none", False)
    assert resolve_tta("Flip_Multiscale", cpu) == ("flip_multiscale", False)
    assert resolve_tta("auto", cuda) == ("flip_multiscale", True) and resolve_tta("auto", cpu) == ("none", False)
    monkeypatch.setenv("DLCV_P3_TTA", "multiscale")
    assert resolve_tta(False, cpu) == ("multiscale", False)
    with pytest.raises(ConfigError, match="unknown P3 TTA mode 'd4'"):
        resolve_tta("d4", cpu)
    assert resolve_scales(None, {}) == DEFAULT_TTA_SCALES
    assert resolve_scales(None, {"eval": {"tta_scales": [0.5, 1.0]}}) == (0.5, 1.0)
    assert resolve_scales("0.75,1,1.5", {}) == (0.75, 1.0, 1.5)
    with pytest.raises(ConfigError, match="positive"):
        resolve_scales("0,1", {})


def test_autocast_dtype_per_gpu_generation(monkeypatch):
    monkeypatch.delenv("DLCV_P3_PRECISION", raising=False)
    assert autocast_dtype(torch.device("cpu")) is None
    cuda = torch.device("cuda")
    for capability, dtype in (((9, 0), torch.bfloat16), ((8, 6), torch.bfloat16), ((7, 5), torch.float16),
                              ((6, 1), None)):
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a, c=capability: c)
        assert autocast_dtype(cuda) is dtype, capability
    assert autocast_dtype(cuda, "fp32") is None and autocast_dtype(cuda, "bf16") is torch.bfloat16
    monkeypatch.setenv("DLCV_P3_PRECISION", "fp16")
    assert autocast_dtype(cuda) is torch.float16 and autocast_dtype(torch.device("cpu")) is None
    with pytest.raises(ConfigError, match="unknown P3 precision"):
        autocast_dtype(cuda, "int8")


def test_non_finite_fp16_scores_are_computed_again_in_fp32():
    class OverflowOnce(nn.Module):
        calls = 0

        def forward(self, x):
            OverflowOnce.calls += 1
            out = torch.zeros(x.shape[0], 7, *x.shape[-2:])
            out[:, 3] = float("inf") if OverflowOnce.calls == 1 else 1.0
            return out

    batch = np.zeros((2, 3, 8, 8), dtype=np.uint8)
    classes = Inference(OverflowOnce(), torch.device("cpu"), False, torch.float16)(batch, "none")
    assert OverflowOnce.calls == 2 and (classes == 3).all()


def test_budget_steps_down_only_when_the_rest_would_not_fit():
    fast = TtaBudget("flip_multiscale", DEFAULT_TTA_SCALES, total=313, budget_s=420, start=0.0)
    for k, now in enumerate((10.0, 12.0, 14.0, 16.0)):  # 0.25 s per image: 313 images in ~90 s
        assert fast.next_mode(8 * k, now) == "flip_multiscale"
    assert fast.steps == []
    slow = TtaBudget("flip_multiscale", DEFAULT_TTA_SCALES, total=313, budget_s=420, start=0.0)
    assert slow.next_mode(0, 5.0) == "flip_multiscale"
    assert slow.next_mode(8, 60.0) == "flip_multiscale"  # the first batch (warm-up) is not measured
    # 16 s per batch of 8 = 2 s per image: 297 images x 2 s ends at ~670 s; flip (x0.32) at ~266 s
    assert slow.next_mode(16, 76.0) == "flip"
    assert "from flip_multiscale to flip after 16 of 313" in slow.steps[0]
    # flip now measures 8 s per batch of 8 (slower than expected): 289 s more ends at 373 s: kept
    assert slow.next_mode(24, 84.0) == "flip"
    # the GPU slows down further: 40 s per batch -> none
    assert slow.next_mode(32, 124.0) == "none" and len(slow.steps) == 2


# ---------------------------------------------------------------- the command line and hw1_3.sh
@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    from dlcv.config import load_config, to_dict
    from dlcv.io import export_model
    from dlcv.tasks.segmentation import SegmentationTask

    torch.manual_seed(0)
    cfg = to_dict(load_config(overrides=["task=segment", "model.name=deeplabv3_resnet50", "eval.tta_scales=[0.5,1.0]"]))
    task = SegmentationTask(cfg)
    task.segmenter.train()
    with torch.no_grad():
        task.segmenter(torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8))
    return export_model(tmp_path_factory.mktemp("p3_tta_model"), cfg, task.state_dict())


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("p3_tta_images")
    for i, shape in enumerate(((64, 64), (64, 64), (40, 56))):
        Image.fromarray(_blocks(*shape, block=8, seed=i)[0].permute(1, 2, 0).numpy()).save(folder / f"{i:04d}_sat.jpg")
    return folder


def test_hw1_3_runs_each_tta_mode(model_file, images, tmp_path):
    from dlcv.data.masks import read_mask

    runs = {"default": {}, "flip_multiscale": {"DLCV_P3_TTA": "flip_multiscale"}, "legacy": {"DLCV_P3_TTA": "1"}}
    logs = {}
    for name, env in runs.items():
        proc = run_graded("hw1_3.sh", images, tmp_path / name, ckpt=model_file, home=tmp_path / "home",
                          extra_env=env)
        assert proc.returncode == 0, proc.stderr[-2000:]
        logs[name] = proc.stderr
        assert sorted(p.name for p in (tmp_path / name).iterdir()) == [f"000{i}_mask.png" for i in range(3)]
        with Image.open(tmp_path / name / "0002_mask.png") as img:
            assert img.size == (56, 40) and img.mode == "RGB"
        read_mask(tmp_path / name / "0000_mask.png")  # legal colours
    assert "TTA" not in logs["default"]  # auto on a CPU: none (one pass is 6-13 min for 313 images on a CPU)
    assert "TTA flip_multiscale at scales 0.5/1" in logs["flip_multiscale"]  # the checkpoint's eval.tta_scales
    assert "TTA flip" in logs["legacy"] and "multiscale" not in logs["legacy"]


def test_predict_options(model_file, images, tmp_path, capsys):
    from dlcv.cli import main as cli_main
    from dlcv.data.masks import read_mask

    base = ["predict", "p3", str(model_file), str(images)]
    assert cli_main([*base, str(tmp_path / "a"), "--tta-mode", "multiscale", "--tta-scales", "1"]) == 0
    assert cli_main([*base, str(tmp_path / "b")]) == 0
    for name in ("0000_mask.png", "0002_mask.png"):  # multiscale at the single scale 1 = no TTA
        assert np.array_equal(read_mask(tmp_path / "a" / name), read_mask(tmp_path / "b" / name))
    assert cli_main([*base, str(tmp_path / "c"), "--tta-mode", "d4"]) == 2
    assert "unknown P3 TTA mode 'd4'" in capsys.readouterr().err
    assert cli_main([*base, str(tmp_path / "c"), "--tta", "--tta-mode", "none"]) == 2
    assert "contradicts" in capsys.readouterr().err
    assert cli_main(["predict", "p1", str(model_file), str(images), str(tmp_path / "o.csv"), "--tta-mode", "flip"]) == 2
    assert "--tta-mode: p3 options" in capsys.readouterr().err
