"""Pretrained weights: from the torchvision cache, a local file, or (online) the torchvision enum.

Nothing here downloads silently inside tests or the demo: with DLCV_OFFLINE=1 a missing file is
an immediate, clear error that names the file, its URL and where to put it.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Mapping

import torch
from torch import nn

from dlcv.errors import CheckpointError, WeightsError
from dlcv.io import load_torch


def offline() -> bool:
    return os.environ.get("DLCV_OFFLINE", "") not in ("", "0")


def hub_checkpoint_path(url: str) -> Path:
    """Where torchvision caches the file of a weights enum (honours TORCH_HOME / torch.hub.set_dir)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def enum_state_dict(weights) -> dict:
    """State dict of a torchvision weights enum member: cached file first, then a download."""
    url = weights.url
    cached = hub_checkpoint_path(url)
    how = (f"Download {url}\n  into {cached.parent}/ (any machine with internet: "
           f"python -c \"import torchvision; torchvision.models.get_weight('{weights}').get_state_dict()\"),\n"
           f"  or pass a local file: model.pretrained=/path/to/{cached.name}")
    if cached.is_file():
        return load_state_dict_file(cached)
    if offline():
        raise WeightsError(f"pretrained weights {weights} are not in the local cache and DLCV_OFFLINE is set.\n  {how}")
    try:
        return weights.get_state_dict(progress=True, check_hash=True)
    except Exception as exc:  # URLError, timeouts, hash mismatch: all mean "get the file yourself"
        raise WeightsError(f"could not download pretrained weights {weights}: {exc}\n  {how}") from exc


def load_state_dict_file(path: str | Path) -> dict:
    """A state dict from a local file (safe loading); unwraps {'state_dict': ...} / {'model': ...}."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    try:
        obj = load_torch(path)
    except CheckpointError as exc:
        raise WeightsError(str(exc)) from exc
    for key in ("state_dict", "model", "backbone"):
        if isinstance(obj, Mapping) and key in obj and isinstance(obj[key], Mapping):
            obj = obj[key]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{path}: not a state dict (a mapping of names to tensors)")
    return dict(obj)


def load_matching(module: nn.Module, state: Mapping[str, torch.Tensor], source: str,
                  ignore: Iterable[str] = ()) -> None:
    """Load `state` into `module`, requiring every key to match except those starting with `ignore`.

    A mismatch is a readable report (missing / unexpected / wrong shape), not a wall of keys.
    """
    ignore = tuple(ignore)
    own = module.state_dict()
    want = {k for k in own if not k.startswith(ignore)}
    have = {k for k in state if not k.startswith(ignore)}
    # BatchNorm's num_batches_tracked counters are absent from old torchvision files; torch's own
    # loader treats them as 0 too, so only real weights count as missing
    missing = sorted(k for k in want - have if not k.endswith("num_batches_tracked"))
    unexpected = sorted(have - want)
    shapes = sorted(k for k in want & have if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or shapes:
        def show(keys):
            return ", ".join(keys[:6]) + (f" ... (+{len(keys) - 6})" if len(keys) > 6 else "")
        lines = [f"{source}: does not fit {module.__class__.__name__}:"]
        if missing:
            lines.append(f"  missing {len(missing)}: {show(missing)}")
        if unexpected:
            lines.append(f"  unexpected {len(unexpected)}: {show(unexpected)}")
        if shapes:
            lines.append("  wrong shape: " + ", ".join(
                f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in shapes[:6]))
        raise WeightsError("\n".join(lines))
    module.load_state_dict({k: state[k] for k in want & have}, strict=False)
