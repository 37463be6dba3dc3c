"""Batched, per-sample random augmentation that runs on the batch's own device.

Why batched: the training data live in decoded uint8 caches and reach the model as whole batches.
Augmenting the batch where it already is (usually the GPU) costs almost nothing there, and on a
CPU it avoids a Python loop over images. Every function below therefore takes a float batch
`x` of shape (N, C, H, W) with values in [0, 1] and returns a batch of the same kind.

Why an explicit generator: every random number is drawn from `generator` (a torch.Generator on
x's device), never from the global RNG. The caller seeds it from (seed, step, rank)
(`dlcv.seeding.generator_for`), so a training run is exactly reproducible and a resumed run
replays the same augmentations. Each call draws a fixed number of values per sample whatever the
outcome (e.g. a colour jitter that is skipped still consumes its factors), so the stream never
depends on the data.

Why per sample: each image gets its own independently drawn parameters (crop box, flip, colour
factors, blur sigma, ...). One draw for the whole batch would make all views of a batch alike,
which for BYOL removes most of the signal.

Geometry is one affine warp per sample (`affine_grid_sample`); colour ops are elementwise or a
depthwise convolution, with a per-sample coin (probability p) choosing between the transformed and
the original image (`torch.where`, no data-dependent indexing, so no GPU synchronisation).
"""
from __future__ import annotations

from dlcv.data.augment.byol import ByolAugmentConfig, byol_views
from dlcv.data.augment.geometric import affine_grid_sample, joint_geometric, pad_crop_flip, random_resized_crop_flip
from dlcv.data.augment.photometric import color_jitter, gaussian_blur, random_grayscale, solarize

__all__ = [
    "ByolAugmentConfig",
    "affine_grid_sample",
    "byol_views",
    "color_jitter",
    "gaussian_blur",
    "joint_geometric",
    "pad_crop_flip",
    "random_grayscale",
    "random_resized_crop_flip",
    "solarize",
]
