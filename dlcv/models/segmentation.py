"""P3 segmentation models: model A = VGG16-FCN32s (Long et al. 2015), model B = DeepLabv3-ResNet50.

Both take ImageNet-normalised float images (N,3,H,W) (see ``IMAGENET_MEAN`` / ``IMAGENET_STD``) and
return logits (N,num_classes,H,W) at the input size, for any H, W.

Pretrained weights are given as a *spec*: ``None`` / ``""`` / ``"none"`` (random init), a path to a
local torchvision state-dict file, or ``"imagenet"`` (the torchvision enum: VGG16_Weights.IMAGENET1K_V1,
ResNet50_Weights.IMAGENET1K_V1; ``"IMAGENET1K_V2"`` / ``"imagenet:IMAGENET1K_V2"`` pick another member:
ResNet50_Weights.IMAGENET1K_V2 is torchvision's newer recipe, 80.9% ImageNet top-1 against 76.1%,
file resnet50-11ad3fa6.pth; VGG16_Weights.IMAGENET1K_FEATURES is refused: it expects another input
normalisation). An enum spec reads
``torch.hub.get_dir()/checkpoints/<file name of the enum url>`` first; when that file is missing and
``DLCV_OFFLINE=1`` it fails at once with a message naming the file, its URL and the folder, and
otherwise tries the torchvision download, turning a network failure into the same message
(see :mod:`dlcv.models.weights`).
"""
from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torchvision.models.segmentation.deeplabv3 import DeepLabV3

from dlcv.errors import WeightsError
from dlcv.models.weights import enum_state_dict, load_matching, load_state_dict_file

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# torchvision's VGG16 configuration "D": conv widths, "M" = 2x2 max-pool (5 pools -> stride 32)
_VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


def _is_random(spec) -> bool:
    return spec is None or (isinstance(spec, str) and spec.strip().lower() in ("", "none", "random", "scratch"))


def _enum_member(enum_cls, spec: str):
    """'imagenet' -> the enum's IMAGENET1K_V1; 'IMAGENET1K_V2' (any case, optional 'imagenet:') -> that member."""
    name = spec.strip()
    if name.lower() == "imagenet":
        return enum_cls.IMAGENET1K_V1
    if name.lower().startswith("imagenet:"):
        name = name.split(":", 1)[1]
    try:
        return enum_cls[name.upper()]
    except KeyError:
        return None


def _resolve_state_dict(spec: str, enum_cls) -> tuple[dict, str]:
    """(state dict, human-readable source) of a non-random weights spec."""
    member = _enum_member(enum_cls, spec) if isinstance(spec, str) else None
    if member is not None and member.name == "IMAGENET1K_FEATURES":
        # amdegroot's SSD VGG16 features take 0..255 inputs minus the mean (std 1/255), not the
        # ImageNet mean/std that Segmenter applies: the features would see inputs 58x too small
        raise WeightsError(f"{enum_cls.__name__}.IMAGENET1K_FEATURES expects another input normalisation "
                           f"than this model's (ImageNet mean/std); use imagenet (IMAGENET1K_V1)")
    if member is not None:
        return enum_state_dict(member), f"{enum_cls.__name__}.{member.name}"
    return load_state_dict_file(spec), str(spec)


def bilinear_kernel(channels: int, kernel_size: int) -> torch.Tensor:
    """(channels, channels, k, k) ConvTranspose2d weight doing per-channel bilinear upsampling.

    The FCN / Caffe ``upsample_filt``: ``factor = (k + 1) // 2``, centre ``factor - 1`` (odd k) or
    ``factor - 0.5`` (even k), weight ``(1 - |y - c| / factor) * (1 - |x - c| / factor)``; it lies on
    the diagonal (channel c -> channel c) and is zero across channels. With ``k = 2 * stride`` it is
    exactly linear interpolation between the centres of neighbouring input cells.
    """
    if channels < 1 or kernel_size < 1:
        raise ValueError("channels and kernel_size must be positive")
    factor = (kernel_size + 1) // 2
    center = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    og = torch.arange(kernel_size, dtype=torch.float64)
    filt1d = 1 - (og - center).abs() / factor
    filt = (filt1d[:, None] * filt1d[None, :]).to(torch.float32)
    weight = torch.zeros(channels, channels, kernel_size, kernel_size)
    idx = torch.arange(channels)
    weight[idx, idx] = filt
    return weight


def _vgg16_features() -> nn.Sequential:
    """torchvision ``vgg16().features`` (same layer indices, so the same state-dict keys)."""
    layers: list[nn.Module] = []
    in_ch = 3
    for v in _VGG16_CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            conv = nn.Conv2d(in_ch, v, kernel_size=3, padding=1)
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")  # as torchvision VGG
            nn.init.zeros_(conv.bias)
            layers += [conv, nn.ReLU(inplace=True)]
            in_ch = v
    return nn.Sequential(*layers)


def load_vgg16_features(spec) -> dict[str, torch.Tensor] | None:
    """VGG16 ImageNet weights as an FCN32s partial state dict, or None for random init.

    ``spec``: None / "" / "none", a local torchvision ``vgg16`` state-dict file, or "imagenet"
    (VGG16_Weights.IMAGENET1K_V1 through the torch hub cache; DLCV_OFFLINE=1 -> clear error).

    Returns ``features.*`` (conv1..conv5) unchanged and, when the file has the classifier, the fully
    connected fc6/fc7 converted to convolutions as in the paper: ``classifier.0`` Linear 25088->4096
    becomes ``fc6`` (4096, 512, 7, 7) (torchvision flattens the 512x7x7 pool output in C, H, W order,
    so a plain reshape is the exact equivalent), ``classifier.3`` Linear 4096->4096 becomes ``fc7``
    (4096, 4096, 1, 1). The 1000-way ``classifier.6`` is dropped.
    """
    if _is_random(spec):
        return None
    state, source = _resolve_state_dict(spec, torchvision.models.VGG16_Weights)
    return _vgg16_state_to_fcn(state, source)


def _vgg16_state_to_fcn(state: Mapping[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
    out = {k: v for k, v in state.items() if k.startswith("features.")}
    unexpected = sorted(k for k in state if not k.startswith(("features.", "classifier.")))
    if unexpected:
        raise WeightsError(f"{source}: not a torchvision vgg16 state dict; unexpected keys: "
                           f"{', '.join(unexpected[:6])}{' ...' if len(unexpected) > 6 else ''}")
    pairs = (("classifier.0", "fc6", (4096, 25088), (4096, 512, 7, 7)),
             ("classifier.3", "fc7", (4096, 4096), (4096, 4096, 1, 1)))
    for src, dst, lin_shape, conv_shape in pairs:
        w, b = state.get(f"{src}.weight"), state.get(f"{src}.bias")
        if w is None and b is None:
            continue
        if w is None or b is None or tuple(w.shape) != lin_shape or tuple(b.shape) != (lin_shape[0],):
            raise WeightsError(f"{source}: {src} should be Linear{lin_shape[::-1]} (weight {lin_shape}), got "
                               f"weight {None if w is None else tuple(w.shape)}, bias {None if b is None else tuple(b.shape)}")
        out[f"{dst}.weight"] = w.reshape(conv_shape)
        out[f"{dst}.bias"] = b
    return out


class FCN32s(nn.Module):
    """VGG16-FCN32s (Long, Shelhamer, Darrell 2015), single-stream, stride 32.

    ``features``: VGG16 conv1..conv5 with the 5 max-pools (torchvision layout) -> (N, 512, H/32, W/32);
    ``fc6``: 7x7 conv 512->4096 + ReLU + Dropout; ``fc7``: 1x1 conv 4096->4096 + ReLU + Dropout
    (element-wise, as the paper's Caffe ``Dropout`` layers on the fc6/fc7 blobs, not channel-wise);
    ``score``: 1x1 conv 4096->num_classes (zero-initialised, as in the paper);
    ``upscore``: ONE learnable ``ConvTranspose2d(C, C, 64, stride=32, bias=False)`` initialised to
    bilinear interpolation (:func:`bilinear_kernel`), then a crop to the input size.

    Documented deviation: the original pads conv1_1 by 100 pixels so that fc6 (a *valid* 7x7 conv)
    works on small inputs, and crops by 19 at the end. Here fc6 uses ``padding=3`` (same-size), so the
    score map is exactly (H/32, W/32) and far less is computed. For sizes that are not multiples of
    32 the input is zero-padded (bottom/right; zero = the mean colour after normalisation) to the
    next multiple of 32 and the output is cropped back, so ANY input size maps to the same output size.

    ``vgg_weights``: None (random init), a local torchvision vgg16 state-dict path, or "imagenet"
    (see :func:`load_vgg16_features`); fc6/fc7 are then converted from the classifier when present.
    """

    STRIDE = 32
    KERNEL = 64
    # Crop offset of the transposed-conv output. Score cell j summarises input pixels
    # 32j .. 32j+31, whose centre is 32j + 15.5. The transposed conv writes cell j to output
    # positions 32j .. 32j+63 with its bilinear peak at tap (64-1)/2 = 31.5, i.e. at output
    # position 32j + 31.5. So output position o corresponds to input position o - 16: crop from
    # 16. Then every input pixel x lies between the centres of the two cells around it and gets
    # exactly F.interpolate(scale_factor=32, mode="bilinear", align_corners=False) (in the interior;
    # within 16 px of the border the missing outer neighbour makes the weights sum to < 1).
    # Output length of the transposed conv: (h - 1) * 32 + 64 = 32h + 32 >= 16 + 32h: always covered.
    OFFSET = (KERNEL // 2 - STRIDE // 2)  # = 16

    def __init__(self, num_classes: int = 7, vgg_weights: str | None = None, dropout: float = 0.5):
        super().__init__()
        self.num_classes = num_classes
        self.features = _vgg16_features()
        # skip_init: the default kaiming init of 100M fc6 weights is redone below anyway
        self.fc6 = nn.utils.skip_init(nn.Conv2d, 512, 4096, kernel_size=7, padding=3)
        self.relu6 = nn.ReLU(inplace=True)
        self.drop6 = nn.Dropout(dropout)
        self.fc7 = nn.utils.skip_init(nn.Conv2d, 4096, 4096, kernel_size=1)
        self.relu7 = nn.ReLU(inplace=True)
        self.drop7 = nn.Dropout(dropout)
        self.score = nn.Conv2d(4096, num_classes, kernel_size=1)
        self.upscore = nn.ConvTranspose2d(num_classes, num_classes, self.KERNEL, stride=self.STRIDE, bias=False)

        for fc in (self.fc6, self.fc7):
            # zero mean, std 0.01 like torchvision VGG's Linear init (normal_); uniform draws the same
            # std about 5x faster on CPU, which matters for 100M fc6 weights
            nn.init.uniform_(fc.weight, -0.01 * 3 ** 0.5, 0.01 * 3 ** 0.5)
            nn.init.zeros_(fc.bias)
        nn.init.zeros_(self.score.weight)
        nn.init.zeros_(self.score.bias)
        with torch.no_grad():
            self.upscore.weight.copy_(bilinear_kernel(num_classes, self.KERNEL))

        self.pretrained = "random init"
        state = load_vgg16_features(vgg_weights)
        if state is not None:
            self._load_vgg(state, str(vgg_weights))

    def _load_vgg(self, state: Mapping[str, torch.Tensor], source: str) -> None:
        feats = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
        load_matching(self.features, feats, source)
        loaded = ["features"]
        with torch.no_grad():
            for name in ("fc6", "fc7"):
                layer = getattr(self, name)
                if f"{name}.weight" in state:
                    layer.weight.copy_(state[f"{name}.weight"])
                    layer.bias.copy_(state[f"{name}.bias"])
                    loaded.append(name)
        self.pretrained = f"{source} ({', '.join(loaded)})"

    def _fc6(self, y: torch.Tensor) -> torch.Tensor:
        """fc6, the 7x7 conv 512->4096 (padding 3) on the stride-32 map.

        On CPU it runs as im2col + one matrix product, the same convolution with the same
        parameters: oneDNN's weight-gradient kernel for a 7x7 conv whose padding is most of a tiny
        map (4x4 at 128 px input) is pathologically slow (measured on a 2-core AVX-512 CPU, batch
        8, 128 px: backward 120 s through the conv, 1.6 s this way; at 512 px this way is also
        ~1.3x faster). GPUs keep the cuDNN convolution.
        """
        if y.device.type != "cpu":
            return self.fc6(y)
        n, _, h, w = y.shape
        k, pad = self.fc6.kernel_size, self.fc6.padding
        cols = F.unfold(y, k, padding=pad)  # (N, 512*7*7, h*w), channel-major like the weight
        # ONE (4096 x 25088) @ (25088 x N*h*w) product for the whole batch: the weight times a batched
        # (N, 25088, h*w) tensor would first copy the 411 MB weight N times (`dlcv bench`: ~20% less
        # time in fc6 at 512 px, same numbers)
        cols = cols.transpose(0, 1).reshape(cols.shape[1], n * h * w)
        out = torch.addmm(self.fc6.bias[:, None], self.fc6.weight.flatten(1), cols)
        return out.view(-1, n, h, w).transpose(0, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"FCN32s expects (N,3,H,W) input, got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        ph, pw = (-h) % self.STRIDE, (-w) % self.STRIDE
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph))
        y = self.features(x)
        y = self.drop6(self.relu6(self._fc6(y)))
        y = self.drop7(self.relu7(self.fc7(y)))
        y = self.upscore(self.score(y))
        o = self.OFFSET
        return y[:, :, o:o + h, o:o + w].contiguous()


class DeepLabV3ResNet50(DeepLabV3):
    """torchvision DeepLabV3 (same modules and state-dict keys) whose ``forward`` returns logits.

    ``forward(x)`` -> (N, num_classes, H, W) logits; ``forward(x, with_aux=True)`` -> (logits, aux
    logits) for training with the auxiliary FCN head (built only with ``aux_loss=True``). The aux head
    is not run when it is not asked for. Note (torchvision behaviour): the ASPP image-pooling branch
    has a BatchNorm over a 1x1 map, so training needs a batch of at least 2 per process.
    """

    def forward(self, x: torch.Tensor, with_aux: bool = False):  # type: ignore[override]
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"DeepLabV3ResNet50 expects (N,3,H,W) input, got {tuple(x.shape)}")
        if with_aux and self.aux_classifier is None:
            raise ValueError("with_aux=True needs the model built with aux_loss=True")
        size = x.shape[-2:]
        feats = self.backbone(x)
        out = F.interpolate(self.classifier(feats["out"]), size=size, mode="bilinear", align_corners=False)
        if not with_aux:
            return out
        aux = F.interpolate(self.aux_classifier(feats["aux"]), size=size, mode="bilinear", align_corners=False)
        return out, aux


def load_resnet50_backbone(backbone: nn.Module, spec) -> str:
    """Load ImageNet ResNet50 weights (``spec``: None / path / "imagenet") into a (dilated) ResNet50
    backbone. Every key must match except ``fc.*`` (readable report otherwise). Returns the source."""
    if _is_random(spec):
        return "random init"
    state, source = _resolve_state_dict(spec, torchvision.models.ResNet50_Weights)
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
    # (load_matching accepts the num_batches_tracked buffers that old torchvision files lack)
    load_matching(backbone, state, source, ignore=("fc.",))
    return source


def deeplabv3_resnet50(num_classes: int = 7, backbone_weights: str | None = None,
                       aux_loss: bool = False) -> DeepLabV3ResNet50:
    """torchvision ``deeplabv3_resnet50(weights=None, weights_backbone=None, num_classes, aux_loss)``
    (ResNet50 with dilated layer3/layer4, output stride 8, ASPP head), returning logits, with the
    ImageNet ResNet50 backbone loaded from ``backbone_weights`` (None / local path / "imagenet")."""
    tv = torchvision.models.segmentation.deeplabv3_resnet50(
        weights=None, weights_backbone=None, num_classes=num_classes, aux_loss=aux_loss)
    model = DeepLabV3ResNet50(tv.backbone, tv.classifier, tv.aux_classifier)
    model.num_classes = num_classes
    model.pretrained = load_resnet50_backbone(model.backbone, backbone_weights)
    return model


SEGMENTATION_MODELS = ("fcn32s", "deeplabv3_resnet50")


class Segmenter(nn.Module):
    """A P3 model behind the one input convention of training, evaluation and prediction.

    ``forward(x)`` takes uint8 images (N,3,H,W) in 0..255 or float images in [0, 1] (what the
    batched augmentation produces), applies the ImageNet mean/std normalisation the backbones were
    trained with, and returns logits (N,7,H,W) at the input size; ``forward(x, with_aux=True)``
    returns (logits, aux logits) for DeepLabv3 built with its auxiliary head. Doing the
    normalisation here (not in a data pipeline) means the three paths cannot disagree about it.
    The mean/std are non-persistent buffers: they follow the module to its device and are not in
    checkpoints (they are constants, not learned).
    """

    def __init__(self, net: nn.Module, name: str):
        super().__init__()
        self.net = net
        self.name = name
        self.pretrained = getattr(net, "pretrained", "random init")
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    @property
    def has_aux(self) -> bool:
        return getattr(self.net, "aux_classifier", None) is not None

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        if not x.is_floating_point():
            x = x.float().div_(255)
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)

    def forward(self, x: torch.Tensor, with_aux: bool = False):
        x = self.normalise(x)
        if with_aux:
            return self.net(x, with_aux=True)
        return self.net(x)


def build_segmenter(name: str, num_classes: int = 7, pretrained: str | None = "none", aux_loss: bool = False,
                    dropout: float = 0.5) -> Segmenter:
    """``name``: fcn32s (model A, ``pretrained`` loads the VGG16 part) | deeplabv3_resnet50 (model B,
    ``pretrained`` loads the ResNet50 backbone; ``aux_loss`` adds the auxiliary FCN head on layer3).
    ``pretrained``: "none" | "imagenet" (torchvision cache, see the module docstring) | a local file."""
    if name == "fcn32s":
        if aux_loss:
            raise ValueError("FCN32s has no auxiliary head: set model.aux_loss_weight=0")
        net: nn.Module = FCN32s(num_classes, vgg_weights=pretrained, dropout=dropout)
    elif name == "deeplabv3_resnet50":
        net = deeplabv3_resnet50(num_classes, backbone_weights=pretrained, aux_loss=aux_loss)
    else:
        raise ValueError(f"unknown segmentation model {name!r}; known: {', '.join(SEGMENTATION_MODELS)}")
    return Segmenter(net, name)


def describe_segmenter(model_cfg) -> str:
    """The report's one-line description of a P3 model from its config section (a dict or a typed
    config): architecture, where its pretrained weights come from, dropout / auxiliary head."""
    def get(key, default):
        return model_cfg.get(key, default) if hasattr(model_cfg, "get") else getattr(model_cfg, key, default)

    name, spec = str(get("name", "?")), get("pretrained", "none")
    if name == "fcn32s":
        text = ("VGG16-FCN32s: VGG16 conv1-5 + pools, fc6/fc7 as convolutions "
                f"(element-wise dropout {float(get('dropout', 0.5)):g}), 1×1 score, one 32× transposed conv "
                "initialised bilinear")
        enum_cls, part = torchvision.models.VGG16_Weights, "VGG16"
    elif name == "deeplabv3_resnet50":
        aux = float(get("aux_loss_weight", 0.0) or 0.0)
        text = ("DeepLabv3 with a dilated ResNet-50 (output stride 8), ASPP head, bilinear upsampling"
                + (f", auxiliary FCN head on layer3 (loss weight {aux:g})" if aux > 0 else ""))
        enum_cls, part = torchvision.models.ResNet50_Weights, "ResNet-50 backbone"
    else:
        return name
    if _is_random(spec):
        return text + "; random init"
    member = _enum_member(enum_cls, str(spec))
    source = f"ImageNet {member.name}" if member is not None else f"local file {spec}"
    return f"{text}; {part} from {source}"


__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "bilinear_kernel", "load_vgg16_features", "FCN32s",
           "DeepLabV3ResNet50", "load_resnet50_backbone", "deeplabv3_resnet50", "Segmenter", "build_segmenter",
           "SEGMENTATION_MODELS", "describe_segmenter"]
