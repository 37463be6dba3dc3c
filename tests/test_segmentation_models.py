"""P3 models: VGG16-FCN32s (one bilinear-initialised 32x transposed conv) and DeepLabv3-ResNet50.

Small inputs, eval mode, no network: weights come from files the tests write themselves.
"""
from __future__ import annotations

import urllib.error

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from dlcv.errors import WeightsError
from dlcv.models.segmentation import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    FCN32s,
    bilinear_kernel,
    deeplabv3_resnet50,
    load_vgg16_features,
)


@pytest.fixture(scope="module")
def fcn():
    torch.manual_seed(0)
    return FCN32s(num_classes=7).eval()


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to download weights fails the test."""
    def boom(*args, **kwargs):
        raise AssertionError("tried to download weights")
    monkeypatch.setattr(torchvision.models._api.WeightsEnum, "get_state_dict", boom)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", boom)
    monkeypatch.setattr(torch.hub, "download_url_to_file", boom)


@pytest.fixture
def hub_dir(tmp_path):
    """An empty torch hub dir (restored afterwards)."""
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    yield tmp_path / "hub"
    torch.hub.set_dir(old)


def test_constants():
    assert IMAGENET_MEAN == (0.485, 0.456, 0.406) and IMAGENET_STD == (0.229, 0.224, 0.225)


# ---------------------------------------------------------------- FCN32s structure
@pytest.mark.parametrize("size", [(64, 64), (96, 128), (100, 132), (33, 70)])
def test_fcn32s_output_size_equals_input(fcn, size):
    with torch.no_grad():
        y = fcn(torch.randn(2, 3, *size))
    assert y.shape == (2, 7, *size)
    assert torch.isfinite(y).all()


def test_fcn32s_architecture(fcn):
    ups = [m for m in fcn.modules() if isinstance(m, (nn.ConvTranspose2d, nn.Upsample))]
    assert len(ups) == 1
    up = ups[0]
    assert isinstance(up, nn.ConvTranspose2d) and up is fcn.upscore
    assert up.stride == (32, 32) and up.kernel_size == (64, 64) and up.bias is None
    assert up.in_channels == up.out_channels == 7 and up.weight.requires_grad
    assert sum(isinstance(m, nn.MaxPool2d) for m in fcn.features) == 5
    assert fcn.fc6.weight.shape == (4096, 512, 7, 7) and fcn.fc6.padding == (3, 3)
    assert fcn.fc7.weight.shape == (4096, 4096, 1, 1)
    assert fcn.score.weight.shape == (7, 4096, 1, 1)
    # element-wise dropout after fc6 and fc7, as in the paper (not channel-wise Dropout2d)
    assert sum(type(m) is nn.Dropout for m in fcn.modules()) == 2
    # same layout as torchvision's vgg16().features, so ImageNet keys load as they are
    tv = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["D"])
    ours = fcn.features.state_dict()
    assert {k: tuple(v.shape) for k, v in tv.state_dict().items()} == {k: tuple(v.shape) for k, v in ours.items()}


def test_fcn32s_score_map_is_stride_32(fcn):
    seen = {}
    h = fcn.score.register_forward_hook(lambda m, i, o: seen.setdefault("s", o))
    try:
        with torch.no_grad():
            fcn(torch.randn(1, 3, 100, 132))
    finally:
        h.remove()
    assert seen["s"].shape == (1, 7, 4, 5)  # padded to 128x160, /32


# ---------------------------------------------------------------- bilinear upsampling
def test_bilinear_kernel_matches_analytic_formula():
    k, c = 64, 3
    w = bilinear_kernel(c, k)
    assert w.shape == (c, c, k, k)
    ref = np.zeros((k, k))
    for y in range(k):
        for x in range(k):
            ref[y, x] = (1 - abs(y - 31.5) / 32) * (1 - abs(x - 31.5) / 32)
    for i in range(c):
        for j in range(c):
            if i == j:
                assert np.allclose(w[i, j].numpy(), ref, atol=1e-7)
            else:
                assert (w[i, j] == 0).all()
    # odd kernel: peak of exactly 1 at the centre
    w3 = bilinear_kernel(1, 3)
    assert torch.allclose(w3[0, 0], torch.tensor([[0.25, 0.5, 0.25], [0.5, 1.0, 0.5], [0.25, 0.5, 0.25]]))


def test_fcn32s_upscore_starts_bilinear(fcn):
    assert torch.equal(fcn.upscore.weight.detach(), bilinear_kernel(7, 64))


@pytest.mark.parametrize("size", [(64, 96), (100, 132)])
def test_fcn32s_output_is_bilinear_upsampling_of_score_map(fcn, size):
    """The whole alignment: model output == F.interpolate(score map, x32, bilinear) away from the border."""
    saved = fcn.score.weight.detach().clone(), fcn.score.bias.detach().clone()
    seen = {}
    hook = fcn.score.register_forward_hook(lambda m, i, o: seen.__setitem__("s", o))
    try:
        with torch.no_grad():
            nn.init.normal_(fcn.score.weight, 0, 0.05)  # the paper zero-inits it: make the map non-trivial
            nn.init.normal_(fcn.score.bias, 0, 1.0)
            y = fcn(torch.randn(1, 3, *size))
    finally:
        hook.remove()
        with torch.no_grad():
            fcn.score.weight.copy_(saved[0])
            fcn.score.bias.copy_(saved[1])
    s = seen["s"]
    h, w = size
    ref = F.interpolate(s, scale_factor=32, mode="bilinear", align_corners=False)[:, :, :h, :w]
    inner = (slice(None), slice(None), slice(16, min(h, ref.shape[2] - 16)), slice(16, min(w, ref.shape[3] - 16)))
    assert s.abs().max() > 0.1
    torch.testing.assert_close(y[inner], ref[inner], rtol=1e-4, atol=1e-4)
    # no cross-class mixing: zeroing one class of the score map changes only that output channel
    up = fcn.upscore(s.clone().index_fill_(1, torch.tensor([2]), 0.0)).detach()
    full = fcn.upscore(s).detach()
    assert torch.equal(up[:, [0, 1, 3, 4, 5, 6]], full[:, [0, 1, 3, 4, 5, 6]])


def test_fcn32s_head_is_trainable(fcn):
    """Gradients reach the score layer and the (learnable) upsampling from fc7-like features."""
    feat = torch.relu(torch.randn(1, 4096, 2, 3))
    target = torch.randint(0, 7, (1, 64, 96))
    score_w = fcn.score.weight.detach().clone()
    try:
        with torch.no_grad():
            nn.init.normal_(fcn.score.weight, 0, 0.01)
        logits = fcn.upscore(fcn.score(feat))[:, :, 16:16 + 64, 16:16 + 96]
        F.cross_entropy(logits, target).backward()
        assert fcn.score.weight.grad.abs().sum() > 0 and fcn.upscore.weight.grad.abs().sum() > 0
    finally:
        fcn.zero_grad(set_to_none=True)
        with torch.no_grad():
            fcn.score.weight.copy_(score_w)


# ---------------------------------------------------------------- VGG16 weights
def test_vgg16_local_file_sets_features_and_converts_fc6_fc7(tmp_path):
    g = torch.Generator().manual_seed(0)
    feats = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["D"])
    state = {f"features.{k}": torch.rand(v.shape, generator=g) for k, v in feats.state_dict().items()}
    state.update({
        "classifier.0.weight": torch.rand(4096, 25088, generator=g) - 0.5,
        "classifier.0.bias": torch.rand(4096, generator=g),
        "classifier.3.weight": torch.rand(4096, 4096, generator=g),
        "classifier.3.bias": torch.rand(4096, generator=g),
        "classifier.6.weight": torch.rand(1000, 4096, generator=g),
        "classifier.6.bias": torch.rand(1000, generator=g),
    })
    path = tmp_path / "vgg16.pth"
    torch.save(state, path)
    m = FCN32s(num_classes=7, vgg_weights=str(path)).eval()
    assert torch.equal(m.features[0].weight, state["features.0.weight"])
    assert torch.equal(m.features[28].bias, state["features.28.bias"])
    assert m.fc6.weight.shape == (4096, 512, 7, 7)
    # one value: Linear input index c*49 + y*7 + x (torchvision flattens C,H,W)
    o, c, y, x = 17, 300, 2, 5
    assert m.fc6.weight[o, c, y, x] == state["classifier.0.weight"][o, c * 49 + y * 7 + x]
    assert torch.equal(m.fc6.bias, state["classifier.0.bias"])
    assert torch.equal(m.fc7.weight[:, :, 0, 0], state["classifier.3.weight"])
    # and the conv really is the Linear: at the centre of a 7x7 map the padded 7x7 conv sees it all
    f = torch.randn(1, 512, 7, 7, generator=g)
    with torch.no_grad():
        conv = m.fc6(f)[0, :, 3, 3]
        lin = F.linear(f.flatten(1), state["classifier.0.weight"], state["classifier.0.bias"])[0]
    torch.testing.assert_close(conv, lin, rtol=1e-4, atol=1e-3)
    assert str(path) in m.pretrained and "fc6" in m.pretrained
    del state


def test_vgg16_features_only_and_bad_files(tmp_path):
    feats = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["D"])
    state = {f"features.{k}": v for k, v in feats.state_dict().items()}
    torch.save(state, tmp_path / "f.pth")
    out = load_vgg16_features(str(tmp_path / "f.pth"))
    assert set(out) == set(state)  # no fc6/fc7 without a classifier
    assert load_vgg16_features(None) is None and load_vgg16_features("none") is None

    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, tmp_path / "resnet.pth")
    with pytest.raises(WeightsError, match="unexpected"):
        load_vgg16_features(str(tmp_path / "resnet.pth"))
    bad = dict(state, **{"classifier.0.weight": torch.zeros(4096, 100), "classifier.0.bias": torch.zeros(4096)})
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(WeightsError, match="classifier.0"):
        load_vgg16_features(str(tmp_path / "bad.pth"))
    with pytest.raises(WeightsError, match="not found"):
        load_vgg16_features(str(tmp_path / "missing.pth"))


def test_imagenet_offline_without_cache_is_a_clear_error(monkeypatch, hub_dir, no_network):
    monkeypatch.setenv("DLCV_OFFLINE", "1")
    with pytest.raises(WeightsError) as exc:
        load_vgg16_features("imagenet")
    msg = str(exc.value)
    assert "vgg16-397923af.pth" in msg
    assert "https://download.pytorch.org/models/vgg16-397923af.pth" in msg
    assert str(hub_dir / "checkpoints") in msg
    with pytest.raises(WeightsError) as exc:
        deeplabv3_resnet50(backbone_weights="imagenet")
    assert "resnet50-0676ba61.pth" in str(exc.value) and str(hub_dir / "checkpoints") in str(exc.value)


def test_imagenet_download_failure_is_the_same_clear_error(monkeypatch, hub_dir):
    monkeypatch.delenv("DLCV_OFFLINE", raising=False)

    def no_net(*args, **kwargs):
        raise urllib.error.URLError("no route to host")
    monkeypatch.setattr(torchvision.models._api.WeightsEnum, "get_state_dict", no_net)
    with pytest.raises(WeightsError) as exc:
        load_vgg16_features("imagenet")
    assert "vgg16-397923af.pth" in str(exc.value) and "no route to host" in str(exc.value)


# ---------------------------------------------------------------- DeepLabv3-ResNet50
def test_deeplabv3_logits_and_aux():
    torch.manual_seed(0)
    m = deeplabv3_resnet50(num_classes=7, aux_loss=True).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        y = m(x)
        out, aux = m(x, with_aux=True)
    assert isinstance(y, torch.Tensor) and y.shape == (2, 7, 64, 64)
    assert out.shape == aux.shape == (2, 7, 64, 64)
    torch.testing.assert_close(y, out)
    # torchvision's state-dict layout (a torchvision DeepLabV3 checkpoint loads as it is)
    tv = torchvision.models.segmentation.deeplabv3_resnet50(weights=None, weights_backbone=None, num_classes=7,
                                                            aux_loss=True)
    assert set(tv.state_dict()) == set(m.state_dict())
    assert m.pretrained == "random init"


def test_deeplabv3_without_aux_head():
    m = deeplabv3_resnet50(num_classes=7).eval()
    assert m.aux_classifier is None
    with torch.no_grad():
        assert m(torch.randn(2, 3, 96, 96)).shape == (2, 7, 96, 96)
    with pytest.raises(ValueError, match="aux_loss"):
        m(torch.randn(2, 3, 64, 64), with_aux=True)


def _resnet50_state(seed: int) -> dict:
    torch.manual_seed(seed)
    state = torchvision.models.resnet50(weights=None).state_dict()
    state["conv1.weight"] = torch.randn_like(state["conv1.weight"])
    state["layer4.2.bn3.running_mean"] = torch.randn_like(state["layer4.2.bn3.running_mean"])
    state["layer3.5.conv2.weight"] = torch.randn_like(state["layer3.5.conv2.weight"])
    return state


def test_deeplabv3_backbone_from_local_file(tmp_path):
    state = _resnet50_state(3)
    # an old-style checkpoint without BatchNorm's num_batches_tracked still loads
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    torch.save(state, tmp_path / "r50.pth")
    m = deeplabv3_resnet50(backbone_weights=str(tmp_path / "r50.pth"))
    sd = m.backbone.state_dict()
    for key in ("conv1.weight", "layer4.2.bn3.running_mean", "layer3.5.conv2.weight"):
        assert torch.equal(sd[key], state[key]), key
    assert m.pretrained == str(tmp_path / "r50.pth")


def test_deeplabv3_backbone_key_mismatch_is_reported(tmp_path):
    state = _resnet50_state(4)
    del state["layer4.0.conv1.weight"]
    state["extra.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "r50.pth")
    with pytest.raises(WeightsError) as exc:
        deeplabv3_resnet50(backbone_weights=str(tmp_path / "r50.pth"))
    msg = str(exc.value)
    assert "missing 1" in msg and "layer4.0.conv1.weight" in msg and "unexpected 1" in msg and "extra.weight" in msg


def test_deeplabv3_imagenet_from_hub_cache_offline(monkeypatch, hub_dir, no_network):
    monkeypatch.setenv("DLCV_OFFLINE", "1")
    state = _resnet50_state(5)
    (hub_dir / "checkpoints").mkdir(parents=True)
    torch.save(state, hub_dir / "checkpoints" / "resnet50-0676ba61.pth")
    m = deeplabv3_resnet50(backbone_weights="imagenet")
    assert torch.equal(m.backbone.conv1.weight, state["conv1.weight"])
    assert "IMAGENET1K_V1" in m.pretrained


# ---------------------------------------------------------------- fc6 on CPU
def test_fcn32s_cpu_fc6_equals_the_convolution(fcn):
    """On CPU fc6 runs as im2col + matmul (oneDNN's conv backward is pathologically slow on the
    tiny padded map): same outputs and same gradients as the plain convolution."""
    torch.manual_seed(1)
    y = torch.randn(2, 512, 3, 5, requires_grad=True)
    fast = fcn._fc6(y)
    reference = F.conv2d(y, fcn.fc6.weight, fcn.fc6.bias, padding=3)
    assert fast.shape == reference.shape == (2, 4096, 3, 5)
    assert torch.allclose(fast, reference, atol=1e-4, rtol=1e-4)
    g = torch.randn_like(fast)
    grads_fast = torch.autograd.grad(fast, (y, fcn.fc6.weight), g)
    grads_ref = torch.autograd.grad(reference, (y, fcn.fc6.weight), g)
    for a, b in zip(grads_fast, grads_ref):
        assert torch.allclose(a, b, atol=1e-3, rtol=1e-3)


# ---------------------------------------------------------------- other ImageNet weights, descriptions
def test_deeplabv3_imagenet1k_v2_backbone_offline(monkeypatch, hub_dir, no_network):
    """ResNet50_Weights.IMAGENET1K_V2 by name (any case, with or without "imagenet:"), from the hub
    cache file torchvision would download it to, through the config as training builds it."""
    from dlcv.config import load_config, to_dict
    from dlcv.tasks.segmentation import SegmentationTask

    monkeypatch.setenv("DLCV_OFFLINE", "1")
    with pytest.raises(WeightsError) as exc:  # not cached yet: the message names the V2 file
        deeplabv3_resnet50(backbone_weights="IMAGENET1K_V2")
    assert "resnet50-11ad3fa6.pth" in str(exc.value) and "IMAGENET1K_V2" in str(exc.value)
    state = _resnet50_state(6)
    (hub_dir / "checkpoints").mkdir(parents=True)
    torch.save(state, hub_dir / "checkpoints" / "resnet50-11ad3fa6.pth")
    for spec in ("IMAGENET1K_V2", "imagenet:imagenet1k_v2"):
        m = deeplabv3_resnet50(backbone_weights=spec)
        assert torch.equal(m.backbone.conv1.weight, state["conv1.weight"]) and "IMAGENET1K_V2" in m.pretrained
    cfg = load_config(overrides=["task=segment", "model.name=deeplabv3_resnet50", "model.pretrained=IMAGENET1K_V2"])
    task = SegmentationTask(to_dict(cfg))
    assert torch.equal(task.segmenter.net.backbone.layer3[5].conv2.weight, state["layer3.5.conv2.weight"])
    assert task.segmenter.pretrained == "ResNet50_Weights.IMAGENET1K_V2"
    # inference rebuilds never read the file again: the weights are in the checkpoint
    (hub_dir / "checkpoints" / "resnet50-11ad3fa6.pth").unlink()
    assert SegmentationTask(to_dict(cfg), inference=True).segmenter.pretrained == "random init"


def test_vgg16_features_weights_are_refused(no_network):
    with pytest.raises(WeightsError, match="another input normalisation"):
        load_vgg16_features("IMAGENET1K_FEATURES")


def test_describe_segmenter():
    from dlcv.models.segmentation import describe_segmenter

    text = describe_segmenter({"name": "deeplabv3_resnet50", "pretrained": "IMAGENET1K_V2", "aux_loss_weight": 0.4})
    assert "dilated ResNet-50" in text and "IMAGENET1K_V2" in text and "loss weight 0.4" in text
    text = describe_segmenter({"name": "fcn32s", "pretrained": "imagenet", "dropout": 0.5})
    assert "element-wise dropout 0.5" in text and "IMAGENET1K_V1" in text
    assert describe_segmenter({"name": "fcn32s", "pretrained": "none"}).endswith("random init")
    assert "local file /w/vgg.pth" in describe_segmenter({"name": "fcn32s", "pretrained": "/w/vgg.pth"})
